package coreml

import (
	"strings"
	"testing"
)

// The numbers are MLComputeUnits' NSInteger values (Apple's MLModelConfiguration.h): CPUOnly 0,
// CPUAndGPU 1, All 2, CPUAndNeuralEngine 3.
func TestParseComputeUnits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"cpu_only", 0}, {"cpu_and_gpu", 1}, {"all", 2}, {"cpu_and_ne", 3}, {"", 2},
	} {
		got, err := ParseComputeUnits(tc.in)
		if err != nil || int(got) != tc.want {
			t.Errorf("ParseComputeUnits(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if tc.in != "" && got.String() != tc.in {
			t.Errorf("%d.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
	for _, bad := range []string{"ane", "CPU_ONLY", "cpuandne", "neural_engine"} {
		_, err := ParseComputeUnits(bad)
		if err == nil || !strings.Contains(err.Error(), "cpu_only, cpu_and_gpu, cpu_and_ne, all") {
			t.Errorf("ParseComputeUnits(%q): error %v, want one listing the valid values", bad, err)
		}
	}
	if s := ComputeUnits(7).String(); s != "ComputeUnits(7)" {
		t.Errorf("String of an unknown value = %q", s)
	}
}
