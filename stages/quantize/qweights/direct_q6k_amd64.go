//go:build amd64 && !purego

package qweights

// haveQ6KKernel reports that repackQ6_K exists (direct_amd64.s, SSE2); q6KDirect runs it
// when nibbleKernels is on.
const haveQ6KKernel = true

// repackQ6_K writes the data of n (≥ 1) Q6_K blocks at raw to dst (192 bytes a block) as
// q6KDirect's Go loop does.
//
//go:noescape
func repackQ6_K(raw, dst *byte, n int)
