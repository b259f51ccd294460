package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Regression tests for mistakes a new user makes on the command line: each names what the
// user typed and exits as `go` does (2 for a bad command line, 1 for bad input).

var stories = filepath.Join(oracle, "models", "stories260K.gguf")

// A --set the pipeline refuses is a usage error (exit 2) whichever part is wrong: the stage
// id, the parameter name, its type or its value (the stage's own range checks included). The
// message names the --set as typed and lists what is known; it never starts with an empty
// position ("lilims: : stage …").
func TestSetErrorsAreUsageErrors(t *testing.T) {
	t.Setenv("LILIMS_MODEL", stories)
	for _, c := range []struct {
		cmd  []string
		want []string
	}{
		{[]string{"validate", "../../pipelines/phi2-ane.yaml", "--set", "quantise.scheme=lut4"},
			[]string{`--set quantise.scheme=lut4: no stage with id "quantise"`, "stages: load, quantize, export"}},
		{[]string{"validate", "../../pipelines/phi2-ane.yaml", "--set", "quantize.schme=lut4"},
			[]string{`--set quantize.schme=lut4: quantize/int4 has no parameter "schme"`, "it has: scheme, block_size"}},
		{[]string{"validate", "../../pipelines/phi2-ane.yaml", "--set", "quantize.block_size=48"},
			[]string{`--set quantize.block_size=48: parameter block_size: 48 is not one of 32, 64, 128`}},
		{[]string{"validate", "../../pipelines/stories.yaml", "--set", "export.prefill_chunk=0"},
			[]string{`--set export.prefill_chunk=0: stage "export": export: prefill_chunk 0 out of range`}},
		{[]string{"run", stories, "-p", "x", "--set", "quantize.schme=lut4"},
			[]string{`--set quantize.schme=lut4: quantize/int4 has no parameter "schme"`}},
		{[]string{"run", stories, "-p", "x", "--set", "sample.temperature=abc"},
			[]string{`--set sample.temperature=abc: parameter temperature: "abc" is not a number`}},
		// Refused when the pipeline is resolved, before any stage runs (it used to fail the build).
		{[]string{"run", stories, "-p", "x", "--set", "export.context=1000000"},
			[]string{`--set export.context=1000000: stage "export": export: context 1000000 out of range [0, 2048]`}},
		{[]string{"build", stories, "-o", t.TempDir(), "--set", "export.layout=wide"},
			[]string{`--set export.layout=wide: parameter layout: "wide" is not one of standard, ane`}},
	} {
		_, errOut, code := runCLI(t, "", c.cmd...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", c.cmd, code, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: missing %q in %q", c.cmd, w, errOut)
			}
		}
		if strings.HasPrefix(errOut, ":") || strings.Contains(errOut, ": : ") {
			t.Errorf("%v: empty position in %q", c.cmd, errOut)
		}
	}
}

// validate runs each stage's own parameter checks: a value the build would refuse, written in
// the file, is a problem at its line (exit 1), not a pass followed by a failed build.
func TestValidateRunsStageChecks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	os.WriteFile(p, []byte(`name: p
model: `+stories+`
stages:
  - id: load
    uses: loader/gguf
  - id: quantize
    uses: quantize/int4
    with: {block_size: 48}
  - id: export
    uses: export/mil
    with: {prefill_chunk: 5000}
  - id: compile
    uses: compile/coreml
`), 0o644)
	_, errOut, code := runCLI(t, "", "validate", p)
	for _, want := range []string{
		p + `:8:12: stage "quantize": parameter block_size: 48 is not one of 32, 64, 128`,
		p + `:9:5: stage "export": export: prefill_chunk 5000 out of range [1, 4096]`,
		"2 problems",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q in:\n%s", want, errOut)
		}
	}
	if code != exitError {
		t.Errorf("exit %d, want 1", code)
	}
}

// A pipeline whose model is not on disk validates with a warning that says how to get one;
// --strict makes it a problem.
func TestValidateMissingModel(t *testing.T) {
	t.Setenv("LILIMS_MODEL", filepath.Join(t.TempDir(), "phi-2.Q4_0.gguf"))
	out, errOut, code := runCLI(t, "", "validate", "../../pipelines/phi2-ane.yaml")
	if code != 0 || out != "" || !strings.Contains(errOut, "warning: model ") ||
		!strings.Contains(errOut, "lilims pull") || !strings.Contains(errOut, "LILIMS_MODEL") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and a warning with the ways to get a model", code, out, errOut)
	}
	_, errOut, code = runCLI(t, "", "validate", "--strict", "../../pipelines/phi2-ane.yaml")
	if code != exitError || !strings.Contains(errOut, "no such file") {
		t.Errorf("--strict: exit %d, stderr %q; want 1", code, errOut)
	}
	out, _, code = runCLI(t, "", "validate", "--json", "../../pipelines/phi2-ane.yaml")
	var doc struct {
		Problems, Warnings []struct{ File, Message string }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 || len(doc.Problems) != 0 || len(doc.Warnings) != 1 {
		t.Errorf("--json: exit %d, %v, %s", code, err, out)
	}
}
