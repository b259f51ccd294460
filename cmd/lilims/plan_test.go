package main

import (
	"encoding/json"
	goruntime "runtime"
	"strings"
	"testing"
)

// plan's static checks on real exports: stories260K's KV states are [1, 4, C, 8] (4 KV
// heads, head dim 64/8 = 8, testdata/oracle/README.md), so each breaks the multiple-of-32
// rule; tiny-phi2's (head dim 32) do not. Off macOS the MLComputePlan part says in one line why it did not run.
func TestPlanStatic(t *testing.T) {
	for _, tc := range []struct {
		file       string
		stateFinds bool
	}{{"stories260K.gguf", true}, {"tiny-phi2-f16.gguf", false}} {
		pkg := exportForVerify(t, tc.file, 1)
		out, errOut, code := runCLI(t, "", "plan", pkg, "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.file, code, errOut)
		}
		var rep planReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		states := 0
		for _, f := range rep.Static.Findings {
			if f.Check == "state" && strings.Contains(f.Msg, "not a multiple of 32 (coremltools issue 2631)") {
				states++
			}
		}
		if (states > 0) != tc.stateFinds {
			t.Errorf("%s: %d state findings %v", tc.file, states, rep.Static.Findings)
		}
		if !strings.Contains(rep.StaticNote, "not a measurement") {
			t.Errorf("static note %q", rep.StaticNote)
		}
		if goruntime.GOOS != "darwin" && (!strings.Contains(rep.ComputePlanError, "only available on macOS") || rep.ByLayer != nil) {
			t.Errorf("%s: compute plan error %q, by layer %v", tc.file, rep.ComputePlanError, rep.ByLayer)
		}
	}
	text, _, code := runCLI(t, "", "plan", exportForVerify(t, "stories260K.gguf", 1))
	if code != 0 || !strings.Contains(text, "Static ANE checks (from documented ANE limits; not a measurement)") {
		t.Errorf("exit %d, text:\n%s", code, text)
	}
}
