//go:build darwin

package coreml

// MLComputePlan (macOS 14.4; Apple's documentation of MLComputePlan, MLModelStructure and
// MLComputePlanDeviceUsage / MLComputePlanCost):
//
//	+[MLComputePlan loadContentsOfURL:configuration:completionHandler:]   handler (MLComputePlan *, NSError *)
//	-[MLComputePlan modelStructure]                                      → MLModelStructure
//	-[MLComputePlan computeDeviceUsageForMLProgramOperation:]            → MLComputePlanDeviceUsage (nullable)
//	-[MLComputePlan estimatedCostOfMLProgramOperation:]                 → MLComputePlanCost (nullable)
//	-[MLComputePlanDeviceUsage preferredComputeDevice]                  → id<MLComputeDeviceProtocol>
//	-[MLComputePlanCost weight]                                         → double
//	-[MLModelStructure program] → -[MLModelStructureProgram functions] (NSDictionary) →
//	-[MLModelStructureProgramFunction block] → -[MLModelStructureProgramBlock operations] →
//	-[MLModelStructureProgramOperation operatorName], -outputs (→ -name)
//
// The completion handler is an Objective-C block (purego/objc NewBlock) that Core ML calls
// on a queue of its own; the handler only retains its arguments and hands them over a
// channel, and the waiting goroutine reads the plan on a locked thread in a pool. No Mac
// has run this yet (docs/mac.md).

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
	"golang.org/x/sys/unix"

	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/runtime"
)

var (
	planOnce sync.Once
	planErr  error

	classMLComputePlan        objc.ID
	classMLCPUComputeDevice   objc.ID
	classMLGPUComputeDevice   objc.ID
	classMLNeuralEngineDevice objc.ID
	sendDouble                func(objc.ID, objc.SEL) float64       // weight
	sendIsKindOfClass         func(objc.ID, objc.SEL, objc.ID) bool // isKindOfClass:
	selLoadComputePlan        = objc.RegisterName("loadContentsOfURL:configuration:completionHandler:")
	selModelStructure         = objc.RegisterName("modelStructure")
	selProgram                = objc.RegisterName("program")
	selFunctions              = objc.RegisterName("functions")
	selObjectForKey           = objc.RegisterName("objectForKey:")
	selBlock                  = objc.RegisterName("block")
	selOperations             = objc.RegisterName("operations")
	selOperatorName           = objc.RegisterName("operatorName")
	selOutputs                = objc.RegisterName("outputs")
	selComputeDeviceUsage     = objc.RegisterName("computeDeviceUsageForMLProgramOperation:")
	selEstimatedCost          = objc.RegisterName("estimatedCostOfMLProgramOperation:")
	selPreferredComputeDevice = objc.RegisterName("preferredComputeDevice")
	selWeight                 = objc.RegisterName("weight")
	selIsKindOfClass          = objc.RegisterName("isKindOfClass:")
	computePlanTimeout        = 10 * time.Minute
)

func loadPlanAPI() error {
	planOnce.Do(func() {
		if v, err := unix.Sysctl("kern.osproductversion"); err == nil {
			if planErr = requireMacOS(v, macOSForComputePlan, "MLComputePlan (lilims plan)"); planErr != nil {
				return
			}
		}
		if planErr = loadFramework(); planErr != nil {
			return
		}
		if planErr = lookupClasses(map[string]*objc.ID{
			"MLComputePlan":               &classMLComputePlan,
			"MLCPUComputeDevice":          &classMLCPUComputeDevice,
			"MLGPUComputeDevice":          &classMLGPUComputeDevice,
			"MLNeuralEngineComputeDevice": &classMLNeuralEngineDevice,
		}, fmt.Sprintf("MLComputePlan needs macOS %s or later", macOSForComputePlan)); planErr != nil {
			return
		}
		purego.RegisterFunc(&sendDouble, msgSend)
		purego.RegisterFunc(&sendIsKindOfClass, msgSend)
	})
	return planErr
}

// LoadComputePlan asks Core ML, through MLComputePlan, where it would run each op of both
// functions of the package (or every package of the chunked export) at path with
// opts.ComputeUnits, and at what estimated cost. The packages are compiled first (into
// opts.CacheDir when set).
func LoadComputePlan(path string, opts Options) (*ComputePlan, error) {
	if err := loadPlanAPI(); err != nil {
		return nil, err
	}
	units, err := ParseComputeUnits(opts.ComputeUnits)
	if err != nil {
		return nil, err
	}
	pkgs, err := mlpackage.PackagesAt(path)
	if err != nil {
		return nil, err
	}
	plan := &ComputePlan{Units: units}
	for _, pkg := range pkgs {
		where, err := placements(pkg)
		if err != nil {
			return nil, err
		}
		compiled, cleanup, err := compileForPlan(pkg, opts)
		if err != nil {
			return nil, err
		}
		for _, fn := range []string{runtime.PrefillFunction, runtime.DecodeFunction} {
			ops, err := computePlanOf(compiled, fn, units, where[fn])
			if err != nil {
				cleanup()
				return nil, err
			}
			plan.Ops = append(plan.Ops, ops...)
		}
		cleanup()
	}
	return plan, nil
}

// placements maps each op's first output to its place in the model, per function.
func placements(pkg string) (map[string]map[string]string, error) {
	p, err := mlpackage.Open(pkg)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	out := map[string]map[string]string{}
	for name, f := range p.Model.GetMlProgram().GetFunctions() {
		out[name] = map[string]string{}
		for _, op := range OpsInOrder(f) {
			if outs := op.Op.GetOutputs(); len(outs) > 0 {
				out[name][outs[0].GetName()] = op.Where
			}
		}
	}
	return out, nil
}

func compileForPlan(pkg string, opts Options) (string, func(), error) {
	if opts.CacheDir != "" {
		compiled, _, err := cachedModel(objcFramework{}, pkg, "", opts.CacheDir)
		return compiled, func() {}, err
	}
	dir, err := os.MkdirTemp("", "lilims-plan-")
	if err != nil {
		return "", nil, err
	}
	compiled, err := objcFramework{}.compileModel(pkg, dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("coreml: compile %s: %w", pkg, err)
	}
	return compiled, func() { os.RemoveAll(dir) }, nil
}

func computePlanOf(compiled, fn string, units ComputeUnits, where map[string]string) ([]OpPlan, error) {
	abs, err := filepath.Abs(compiled)
	if err != nil {
		return nil, err
	}
	const name = "+[MLComputePlan loadContentsOfURL:configuration:completionHandler:]"
	type result struct{ plan, nsErr objc.ID }
	done := make(chan result, 1)
	handler := objc.NewBlock(func(_ objc.Block, plan, nsErr objc.ID) {
		// Both arguments live only as long as the handler: keep them.
		if plan != 0 {
			plan.Send(selRetain)
		}
		if nsErr != 0 {
			nsErr.Send(selRetain)
		}
		done <- result{plan, nsErr}
	})
	err = withPool(func() error {
		cfg, err := newConfiguration(fn, units)
		if err != nil {
			return err
		}
		defer cfg.Send(selRelease)
		defer call(name)()
		classMLComputePlan.Send(selLoadComputePlan, fileURL(abs), cfg, handler)
		return nil
	})
	if err != nil {
		handler.Release()
		return nil, err
	}
	var r result
	select {
	case r = <-done:
		handler.Release() // Core ML copied the block when it took it; ours goes now
	case <-time.After(computePlanTimeout):
		// The handler may still run: the block is left alive for it.
		return nil, fmt.Errorf("coreml: %s: no answer after %v", name, computePlanTimeout)
	}
	defer release(r.plan)
	if r.plan == 0 {
		e := errorOf(name, r.nsErr)
		release(r.nsErr)
		return nil, e
	}
	release(r.nsErr)
	var out []OpPlan
	err = withPool(func() error {
		program := r.plan.Send(selModelStructure).Send(selProgram)
		if program == 0 {
			return fmt.Errorf("coreml: %s: the compute plan of %s describes no ML Program", name, compiled)
		}
		f := program.Send(selFunctions).Send(selObjectForKey, nsString(fn))
		if f == 0 {
			return fmt.Errorf("coreml: %s: the compute plan of %s has no function %s", name, compiled, fn)
		}
		ops := f.Send(selBlock).Send(selOperations)
		n := sendUint(ops, selCount)
		for i := uint(0); i < n; i++ {
			op := ops.Send(selObjectAtIndex, i)
			o := OpPlan{Function: fn, Op: goString(op.Send(selOperatorName)), Device: DeviceNone}
			if outs := op.Send(selOutputs); outs != 0 && sendUint(outs, selCount) > 0 {
				o.Output = goString(outs.Send(selObjectAtIndex, uint(0)).Send(selName))
			}
			o.Where = where[o.Output]
			if u := r.plan.Send(selComputeDeviceUsage, op); u != 0 {
				o.Device = deviceOf(u.Send(selPreferredComputeDevice))
			}
			if c := r.plan.Send(selEstimatedCost, op); c != 0 {
				o.Cost = sendDouble(c, selWeight)
			}
			out = append(out, o)
		}
		return nil
	})
	return out, err
}

func deviceOf(d objc.ID) Device {
	switch {
	case d == 0:
		return DeviceNone
	case sendIsKindOfClass(d, selIsKindOfClass, classMLNeuralEngineDevice):
		return DeviceANE
	case sendIsKindOfClass(d, selIsKindOfClass, classMLGPUComputeDevice):
		return DeviceGPU
	case sendIsKindOfClass(d, selIsKindOfClass, classMLCPUComputeDevice):
		return DeviceCPU
	}
	return DeviceNone
}
