package coreml

import (
	"fmt"
	"strconv"
	"strings"
)

// The macOS releases the Core ML calls of this package need (Apple's documentation of each
// API gives its first release).
var (
	// MLState, -[MLModel newState], predictionFromFeatures:usingState:error: and
	// MLModelConfiguration.functionName: the stateful multifunction ML Programs lilims
	// exports (Core ML specification 9).
	macOSForPackages = macOSVersion{15, 0}
	// MLComputePlan and its device usage and cost.
	macOSForComputePlan = macOSVersion{14, 4}
)

// macOSVersion is a macOS release, major.minor.
type macOSVersion struct{ major, minor int }

func (v macOSVersion) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

func (v macOSVersion) atLeast(w macOSVersion) bool {
	return v.major > w.major || v.major == w.major && v.minor >= w.minor
}

// parseMacOSVersion reads a product version such as "15.1" or "14.4.1" (the
// kern.osproductversion sysctl).
func parseMacOSVersion(s string) (macOSVersion, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	var v macOSVersion
	var err error
	if v.major, err = strconv.Atoi(parts[0]); err != nil || v.major < 10 {
		return v, fmt.Errorf("coreml: %q is not a macOS version", s)
	}
	if len(parts) > 1 {
		if v.minor, err = strconv.Atoi(parts[1]); err != nil {
			return v, fmt.Errorf("coreml: %q is not a macOS version", s)
		}
	}
	return v, nil
}

// requireMacOS is the one-line error for a Mac older than need, wrapping ErrUnavailable;
// nil when running is at least need. An unreadable version is not an error here: the
// selector checks of the framework loader still stop an older system.
func requireMacOS(running string, need macOSVersion, what string) error {
	v, err := parseMacOSVersion(running)
	if err != nil || v.atLeast(need) {
		return nil
	}
	return fmt.Errorf("coreml: this Mac runs macOS %s; %s needs macOS %s or later (%w)", strings.TrimSpace(running), what, need, ErrUnavailable)
}
