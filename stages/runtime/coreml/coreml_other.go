//go:build !darwin

package coreml

import "fmt"

var errNotMac = fmt.Errorf("coreml: Core ML is only available on macOS; use runtime/reference (%w)", ErrUnavailable)

// Open returns an error wrapping ErrUnavailable: Core ML exists only on macOS.
func Open(path, computeUnits string) (*Session, error) {
	return nil, errNotMac
}

// OpenOptions returns an error wrapping ErrUnavailable: Core ML exists only on macOS.
func OpenOptions(path string, opts Options) (*Session, error) {
	return nil, errNotMac
}
