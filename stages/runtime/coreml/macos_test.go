package coreml

import (
	"errors"
	"strings"
	"testing"
)

func TestRequireMacOS(t *testing.T) {
	for _, tc := range []struct {
		running string
		need    macOSVersion
		fail    bool
	}{
		{"15.0", macOSForPackages, false},
		{"15.1.1", macOSForPackages, false},
		{"26.0", macOSForPackages, false},
		{"14.7.2", macOSForPackages, true},
		{"13.6", macOSForPackages, true},
		{"14.4", macOSForComputePlan, false},
		{"14.3.1", macOSForComputePlan, true},
		{"garbage", macOSForPackages, false}, // left to the selector checks
	} {
		err := requireMacOS(tc.running, tc.need, "lilims packages")
		if (err != nil) != tc.fail {
			t.Errorf("%s needing %s: err = %v, want failure %v", tc.running, tc.need, err, tc.fail)
			continue
		}
		if err == nil {
			continue
		}
		// One line naming both the running version and the needed one.
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.running) || !strings.Contains(msg, tc.need.String()) || !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: error %q should be one line naming %s and %s, wrapping ErrUnavailable", tc.running, msg, tc.running, tc.need)
		}
	}
}
