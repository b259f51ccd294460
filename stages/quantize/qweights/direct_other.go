//go:build !(amd64 || arm64) || purego

package qweights

// haveNibbleKernels is false: the repacks are amd64 and arm64 assembly; elsewhere the
// blocks take the Go loops of direct.go.
const haveNibbleKernels = false

var nibbleKernels = false

func repackQ4_0(raw, dst *byte, scale *uint16, n int) int {
	panic("unreachable: repackQ4_0 is amd64 and arm64 only")
}

func repackQ4_K(raw, dst *byte, n int) {
	panic("unreachable: repackQ4_K is amd64 and arm64 only")
}

func repackQ6_K(raw, dst *byte, n int) {
	panic("unreachable: repackQ6_K is amd64 and arm64 only")
}
