//go:build !amd64 || purego

package quantize

// haveInt4Strip is false: the strip kernel is amd64 assembly; elsewhere int4 blocks take
// the portable path (decodeRows, quantizeRow, pack4).
var haveInt4Strip = false

func int4Strip(a *int4Args) { panic("unreachable: int4Strip is amd64 only") }
