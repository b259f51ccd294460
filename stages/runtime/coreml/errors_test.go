package coreml

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorTranslation(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *Error
		want string
	}{
		{"nserror", nsError("+[MLModel modelWithContentsOfURL:configuration:error:]", "com.apple.CoreML", 0, "Failed to load the model"),
			"coreml: +[MLModel modelWithContentsOfURL:configuration:error:]: Failed to load the model (com.apple.CoreML error 0)"},
		{"cocoa domain", nsError("+[MLModel compileModelAtURL:error:]", "NSCocoaErrorDomain", 260, "The file “x.mlpackage” couldn’t be opened"),
			"coreml: +[MLModel compileModelAtURL:error:]: The file “x.mlpackage” couldn’t be opened (NSCocoaErrorDomain error 260)"},
		{"no description", nsError("-[MLModel predictionFromFeatures:usingState:error:]", "com.apple.CoreML", 1, ""),
			"coreml: -[MLModel predictionFromFeatures:usingState:error:]: no description (com.apple.CoreML error 1)"},
		{"nil result", nilResult("-[MLModel newState]"),
			"coreml: -[MLModel newState]: returned nil without an NSError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			// Callers reach the fields through wrapping.
			var e *Error
			if !errors.As(fmt.Errorf("runtime: decode at position 3: %w", tc.err), &e) || e.Code != tc.err.Code || e.Domain != tc.err.Domain || e.Call != tc.err.Call {
				t.Errorf("errors.As lost the NSError fields: %+v", e)
			}
		})
	}
}
