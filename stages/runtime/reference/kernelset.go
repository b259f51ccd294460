package reference

import "runtime"

// Kernels names the kernel set the reference runtime runs on this machine: "avx512",
// "avx2", "neon" or "portable" (narrowed by LILIMS_KERNELS=simd|portable). Benchmarks and
// `lilims doctor` report it, since speeds differ several-fold between sets while results
// agree to float32 rounding.
func Kernels() string {
	switch {
	case wideKernels():
		return "avx512"
	case useSIMD && runtime.GOARCH == "amd64":
		return "avx2"
	case useSIMD && runtime.GOARCH == "arm64":
		return "neon"
	}
	return "portable"
}
