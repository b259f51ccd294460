//go:build !amd64 || purego

package qweights

// haveQ6KKernel is false: repackQ6_K is amd64 assembly only; elsewhere Q6_K blocks take
// the Go loop of q6KDirect.
const haveQ6KKernel = false

func repackQ6_K(raw, dst *byte, n int) { panic("unreachable: repackQ6_K is amd64 only") }
