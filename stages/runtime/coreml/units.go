package coreml

import (
	"fmt"
	"strings"
)

// ComputeUnits is MLComputeUnits: the hardware Core ML may use. It is a permission, not a
// guarantee of placement (Apple's MLComputeUnits documentation).
type ComputeUnits int

// The NSInteger values of MLComputeUnits (Apple's MLModelConfiguration.h).
const (
	CPUOnly            ComputeUnits = 0
	CPUAndGPU          ComputeUnits = 1
	All                ComputeUnits = 2
	CPUAndNeuralEngine ComputeUnits = 3 // needs macOS 13
)

// computeUnitNames are the spellings a pipeline uses (compute_units in the YAML).
var computeUnitNames = []struct {
	name string
	cu   ComputeUnits
}{
	{"cpu_only", CPUOnly},
	{"cpu_and_gpu", CPUAndGPU},
	{"cpu_and_ne", CPUAndNeuralEngine},
	{"all", All},
}

// ParseComputeUnits reads a pipeline's compute_units value: cpu_only, cpu_and_gpu,
// cpu_and_ne or all. The empty string means all, Core ML's own default.
func ParseComputeUnits(s string) (ComputeUnits, error) {
	if s == "" {
		return All, nil
	}
	for _, n := range computeUnitNames {
		if s == n.name {
			return n.cu, nil
		}
	}
	names := make([]string, len(computeUnitNames))
	for i, n := range computeUnitNames {
		names[i] = n.name
	}
	return 0, fmt.Errorf("coreml: compute units %q is not one of %s", s, strings.Join(names, ", "))
}

// String returns the pipeline spelling of c.
func (c ComputeUnits) String() string {
	for _, n := range computeUnitNames {
		if c == n.cu {
			return n.name
		}
	}
	return fmt.Sprintf("ComputeUnits(%d)", int(c))
}
