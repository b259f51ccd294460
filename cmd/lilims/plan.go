package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/stages/runtime/coreml"
)

func newPlanCmd() *cobra.Command {
	var (
		pf     pipelineFlags
		units  string
		asJSON bool
		perOp  bool
	)
	cmd := &cobra.Command{
		Use:   "plan PACKAGE [--units all] [--json]",
		Short: "Where Core ML would run each op (MLComputePlan), and static ANE checks",
		Long: `On macOS 14.4 or later (15 for lilims packages), ask Core ML through MLComputePlan
where it prefers to run each op of the prefill and decode functions (ANE, GPU or CPU) with
the given compute units, and its estimated cost, summarised per layer and per op type
(--ops lists every op).

Everywhere, run the static ANE checks: the package's tensors, states and ops compared with
documented limits of the Neural Engine (dimensions ≤ 65536, fp16 only, fp16 states whose last
dimension is a multiple of 32, no large gathers). They are static checks, not a measurement:
only MLComputePlan (or running the model) says where ops actually go.

PACKAGE is an .mlpackage or the directory of a chunked export.`,
		Example: `  lilims plan out/model.mlpackage
  lilims plan out/model.mlpackage --units cpu_and_ne --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := coreml.ParseComputeUnits(units); err != nil {
				return usagef("--units: %q is not a compute-unit setting; valid: %s", units, strings.Join(allUnits, ", "))
			}
			if !isPackagePath(a[0]) {
				return usagef("%s is not an .mlpackage or a chunked export (build one with lilims build)", a[0])
			}
			static, err := coreml.CheckStatic(a[0])
			if err != nil {
				return err
			}
			rep := planReport{Package: a[0], Units: units, Static: static,
				StaticNote: "from documented ANE limits; not a measurement"}
			cacheDir, _ := compiledCacheDir(&pf)
			plan, err := coreml.LoadComputePlan(a[0], coreml.Options{ComputeUnits: units, CacheDir: cacheDir})
			if err != nil {
				rep.ComputePlanError = err.Error()
			} else {
				rep.ByLayer, rep.ByOpType = plan.ByLayer(), plan.ByOpType()
				if perOp || asJSON {
					rep.Ops = plan.Ops
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			rep.writeText(cmd.OutOrStdout(), perOp)
			return nil
		},
	}
	cmd.Flags().StringVar(&units, "units", "all", "compute units Core ML may use: cpu_only, cpu_and_gpu, cpu_and_ne or all")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&perOp, "ops", false, "list every op's device and cost")
	cmd.Flags().StringVar(&pf.cacheDir, "cache-dir", "", "where compiled models are kept (default: $LILIMS_CACHE_DIR, else lilims under the user cache directory)")
	return cmd
}

type planReport struct {
	Package          string               `json:"package"`
	Units            string               `json:"units"`
	StaticNote       string               `json:"static_note"`
	Static           *coreml.StaticReport `json:"static_ane_checks"`
	ComputePlanError string               `json:"compute_plan_error,omitempty"`
	ByLayer          []coreml.PlanSummary `json:"by_layer,omitempty"`
	ByOpType         []coreml.PlanSummary `json:"by_op_type,omitempty"`
	Ops              []coreml.OpPlan      `json:"ops,omitempty"`
}

var planDevices = []coreml.Device{coreml.DeviceANE, coreml.DeviceGPU, coreml.DeviceCPU}

func (r *planReport) writeText(w io.Writer, perOp bool) {
	fmt.Fprintf(w, "package: %s\n\n", r.Package)
	fmt.Fprintf(w, "Static ANE checks (%s):\n", r.StaticNote)
	if len(r.Static.Findings) == 0 {
		fmt.Fprintln(w, "  none failed")
	}
	for _, l := range r.Static.Lines() {
		fmt.Fprintf(w, "  %s\n", l)
	}
	fmt.Fprintln(w)
	if r.ComputePlanError != "" {
		fmt.Fprintf(w, "MLComputePlan (%s): not run: %s\n", r.Units, r.ComputePlanError)
		return
	}
	fmt.Fprintf(w, "MLComputePlan with compute units %s (Core ML's preferred device and estimated cost per op):\n", r.Units)
	for _, t := range []struct {
		title string
		rows  []coreml.PlanSummary
	}{{"per layer", r.ByLayer}, {"per op type", r.ByOpType}} {
		fmt.Fprintf(w, "\n%s:\n", t.title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "function\t\tops\tANE\tGPU\tCPU\tcost\tcost on ANE")
		for _, s := range t.rows {
			fmt.Fprintf(tw, "%s\t%s\t%d", s.Function, s.Key, s.Ops)
			for _, d := range planDevices {
				fmt.Fprintf(tw, "\t%d", s.ByDevice[d])
			}
			share := 0.0
			if s.Cost > 0 {
				share = s.CostOn[coreml.DeviceANE] / s.Cost
			}
			fmt.Fprintf(tw, "\t%.4f\t%.0f%%\n", s.Cost, 100*share)
		}
		tw.Flush()
	}
	if perOp {
		fmt.Fprintln(w, "\nops:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, o := range r.Ops {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.5f\n", o.Function, o.Where, o.Op, o.Output, o.Device, o.Cost)
		}
		tw.Flush()
	}
}
