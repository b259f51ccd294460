//go:build !darwin

package coreml

import (
	"errors"
	"testing"
)

func TestOpenUnavailable(t *testing.T) {
	_, err := Open("model.mlpackage", "cpu_and_ne")
	if !errors.Is(err, ErrUnavailable) || err.Error() != "coreml: Core ML is only available on macOS; use runtime/reference (Core ML is unavailable)" {
		t.Errorf("Open: %v, want ErrUnavailable", err)
	}
	if _, err := OpenOptions("model.mlmodelc", Options{Package: "model.mlpackage"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("OpenOptions: %v, want ErrUnavailable", err)
	}
}
