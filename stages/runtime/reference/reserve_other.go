//go:build !unix

package reference

// reserveFloats returns n zero floats (from the Go heap on this system).
func reserveFloats(n int) (v []float32, free func() error, err error) {
	return make([]float32, n), func() error { return nil }, nil
}
