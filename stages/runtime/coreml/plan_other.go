//go:build !darwin

package coreml

// LoadComputePlan returns an error wrapping ErrUnavailable: MLComputePlan exists only on
// macOS 14.4 and later.
func LoadComputePlan(path string, opts Options) (*ComputePlan, error) {
	return nil, errNotMac
}
