//go:build amd64 && !purego

package reference

// hasAVX512 is what the CPU offers, before any test flips useAVX512.
var hasAVX512 = useAVX512

// setAVX512 turns the 512-bit kernels on or off, reporting whether that state is available.
func setAVX512(on bool) bool {
	if on && !hasAVX512 {
		return false
	}
	useAVX512 = on
	return true
}
