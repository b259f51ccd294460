package coreml

import (
	"cmp"
	"slices"
)

// Device is where Core ML prefers to run an op (MLComputePlanDeviceUsage
// preferredComputeDevice: MLNeuralEngineComputeDevice, MLGPUComputeDevice or
// MLCPUComputeDevice).
type Device string

const (
	DeviceANE Device = "ANE"
	DeviceGPU Device = "GPU"
	DeviceCPU Device = "CPU"
	// DeviceNone: Core ML reported no usage (consts and other ops it does not place).
	DeviceNone Device = "-"
)

// OpPlan is Core ML's plan for one op of a function.
type OpPlan struct {
	Function string  `json:"function"`
	Op       string  `json:"op"`     // operatorName, e.g. "ios18.linear"
	Output   string  `json:"output"` // its first output's name
	Where    string  `json:"where"`  // "input", "layer N", "head" (OpsInOrder)
	Device   Device  `json:"device"`
	Cost     float64 `json:"cost"` // MLComputePlanCost weight: the op's estimated share of the function's cost
}

// ComputePlan is what MLComputePlan reports for every op of a compiled model, with the
// compute units it was asked about.
type ComputePlan struct {
	Units ComputeUnits `json:"-"`
	Ops   []OpPlan     `json:"ops"`
}

// PlanSummary is one row of a summary: ops grouped by layer or by op type.
type PlanSummary struct {
	Function string             `json:"function"`
	Key      string             `json:"key"` // the layer ("layer 3") or the op type
	Ops      int                `json:"ops"`
	ByDevice map[Device]int     `json:"by_device"`
	Cost     float64            `json:"cost"`
	CostOn   map[Device]float64 `json:"cost_by_device"`
}

// ByLayer sums the plan per function and layer, in program order.
func (p *ComputePlan) ByLayer() []PlanSummary {
	return p.summarise(func(o OpPlan) string { return o.Where }, false)
}

// ByOpType sums the plan per function and op type, costliest first.
func (p *ComputePlan) ByOpType() []PlanSummary {
	return p.summarise(func(o OpPlan) string { return o.Op }, true)
}

func (p *ComputePlan) summarise(key func(OpPlan) string, byCost bool) []PlanSummary {
	var out []PlanSummary
	index := map[[2]string]int{}
	for _, o := range p.Ops {
		if o.Device == DeviceNone {
			continue
		}
		k := [2]string{o.Function, key(o)}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, PlanSummary{Function: k[0], Key: k[1], ByDevice: map[Device]int{}, CostOn: map[Device]float64{}})
		}
		s := &out[i]
		s.Ops++
		s.ByDevice[o.Device]++
		s.Cost += o.Cost
		s.CostOn[o.Device] += o.Cost
	}
	if byCost {
		slices.SortStableFunc(out, func(a, b PlanSummary) int {
			if c := cmp.Compare(a.Function, b.Function); c != 0 {
				return c
			}
			return cmp.Compare(b.Cost, a.Cost)
		})
	}
	return out
}
