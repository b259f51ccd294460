//go:build !amd64 || purego

package reference

const hasAVX512 = false

func setAVX512(on bool) bool { return !on }
