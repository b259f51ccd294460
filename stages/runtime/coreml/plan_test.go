package coreml

import (
	"math"
	"testing"
)

// The summaries group the per-op plan by layer (program order kept) and by op type
// (costliest first), counting ops per device and summing their cost; ops Core ML does not
// place are left out.
func TestPlanSummaries(t *testing.T) {
	p := &ComputePlan{Ops: []OpPlan{
		{Function: "decode", Op: "ios18.gather", Where: "input", Device: DeviceCPU, Cost: 0.05},
		{Function: "decode", Op: "ios18.const", Where: "layer 0", Device: DeviceNone},
		{Function: "decode", Op: "ios18.linear", Where: "layer 0", Device: DeviceANE, Cost: 0.30},
		{Function: "decode", Op: "ios18.softmax", Where: "layer 0", Device: DeviceANE, Cost: 0.05},
		{Function: "decode", Op: "ios18.linear", Where: "layer 1", Device: DeviceGPU, Cost: 0.30},
		{Function: "decode", Op: "ios18.linear", Where: "head", Device: DeviceANE, Cost: 0.30},
	}}
	layers := p.ByLayer()
	if len(layers) != 4 || layers[0].Key != "input" || layers[1].Key != "layer 0" || layers[3].Key != "head" {
		t.Fatalf("layers %+v, want input, layer 0, layer 1, head", layers)
	}
	if l := layers[1]; l.Ops != 2 || l.ByDevice[DeviceANE] != 2 || math.Abs(l.Cost-0.35) > 1e-12 {
		t.Errorf("layer 0: %+v, want 2 ops on the ANE costing 0.35", l)
	}
	types := p.ByOpType()
	if types[0].Key != "ios18.linear" || types[0].Ops != 3 || types[0].ByDevice[DeviceGPU] != 1 || math.Abs(types[0].CostOn[DeviceANE]-0.60) > 1e-12 {
		t.Errorf("costliest op type %+v, want 3 linears, one on the GPU, 0.60 of cost on the ANE", types[0])
	}
	if types[len(types)-1].Key == "ios18.const" {
		t.Error("ops without a device are summarised")
	}
}
