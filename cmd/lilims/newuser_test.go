package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
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
		{[]string{"run", stories, "-p", "x", "--set", "export.context=2000000"},
			[]string{`--set export.context=2000000: stage "export": export: context 2000000 out of range [0, 1048576]`}},
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

// A typed flag with a bad value names the flag and what it wants, as the sampling flags do
// (--temperature: "abc" is not a number), instead of pflag's strconv message.
func TestFlagValueErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"score", stories, "--prompt", "x", "--top", "abc"}, `--top: "abc" is not a whole number`},
		// A float flag, as the typed sampling flags are (--temperature abc).
		{[]string{"bench", stories, "--llama-pp", "abc"}, `--llama-pp: "abc" is not a number`},
		{[]string{"cache", "prune", "--older-than", "7x"}, `--older-than: "7x" is not a duration (e.g. 7d, 2w, 36h, 90m)`},
		{[]string{"--isolation", "maybe", "stages"}, `--isolation: "maybe" is not process or inprocess`},
	} {
		_, errOut, code := runCLI(t, "", c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "strconv") {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, errOut, c.want)
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

// `stages plugin:DIR` builds the plugin (saying so on stderr, with the time it took) and lists
// its stage and parameters; the built binary shows in `cache ls` with its source, survives a
// prune of older entries and goes with one that covers it.
func TestPluginStagesAndCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("LILIMS_CACHE_DIR", cache)
	out, errOut, code := runCLI(t, "", "stages", "plugin:../../plugins/quant-nf4")
	if code != 0 || !strings.Contains(out, "plugin:../../plugins/quant-nf4") || !strings.Contains(out, "(quantize)") {
		t.Fatalf("stages plugin: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "lilims: building plugin ../../plugins/quant-nf4 (go build) …") ||
		!strings.Contains(errOut, "lilims: built plugin ../../plugins/quant-nf4 in ") {
		t.Errorf("no build progress on stderr: %q", errOut)
	}
	// Built once: the second listing starts the cached binary, silently.
	if _, errOut, code = runCLI(t, "", "stages", "plugin:../../plugins/quant-nf4"); code != 0 || errOut != "" {
		t.Errorf("second listing: exit %d, stderr %q", code, errOut)
	}
	var ls struct {
		Plugins []struct {
			Path, Source string
			Size         int64
		}
	}
	out, _, _ = runCLI(t, "", "cache", "ls", "--json")
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls.Plugins) != 1 ||
		!strings.HasSuffix(ls.Plugins[0].Source, filepath.Join("plugins", "quant-nf4")) || ls.Plugins[0].Size < 1<<20 {
		t.Fatalf("cache ls --json: %v %s", err, out)
	}
	out, _, _ = runCLI(t, "", "cache", "ls")
	if !strings.Contains(out, "PLUGIN") || !strings.Contains(out, "quant-nf4") {
		t.Errorf("cache ls: %s", out)
	}
	out, _, code = runCLI(t, "", "cache", "prune", "--older-than", "7d", "--json")
	if code != 0 || !strings.Contains(out, `"plugins": 0`) {
		t.Errorf("prune --older-than 7d: exit %d, %s", code, out)
	}
	// Last used ten days ago: a week-old cutoff removes it.
	old := time.Now().Add(-10 * 24 * time.Hour)
	os.Chtimes(filepath.Dir(ls.Plugins[0].Path), old, old)
	out, _, code = runCLI(t, "", "cache", "prune", "--older-than", "1w", "--json")
	if code != 0 || !strings.Contains(out, `"plugins": 1`) {
		t.Errorf("prune --older-than 1w: exit %d, %s", code, out)
	}
	if _, err := os.Stat(ls.Plugins[0].Path); err == nil {
		t.Errorf("%s still there after prune", ls.Plugins[0].Path)
	}
	if _, errOut, code = runCLI(t, "", "cache", "prune", "--older-than", "7x"); code != exitUsage || !strings.Contains(errOut, "7d, 2w") {
		t.Errorf("prune --older-than 7x: exit %d, %q", code, errOut)
	}
}

// age reads days and weeks as well as Go durations.
func TestAgeFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "0.5d": 12 * time.Hour} {
		var a age
		if err := a.Set(in); err != nil || time.Duration(a) != want {
			t.Errorf("%s: %v %v, want %v", in, time.Duration(a), err, want)
		}
	}
	for _, in := range []string{"7x", "-1d", "d"} {
		var a age
		if a.Set(in) == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}

// doctor says whether the go command that plugin directories need is there, and new enough.
func TestDoctorGoToolchain(t *testing.T) {
	for _, c := range []struct {
		g    goToolchain
		want string
	}{
		{goToolchain{}, "not found: plugin directories (uses: plugin:DIR) need Go ≥ 1.26; prebuilt plugin executables do not"},
		{goToolchain{Path: "/usr/bin/go", Version: "go1.22.1"}, "go1.22.1 at /usr/bin/go is too old"},
		{goToolchain{Path: "/usr/local/go/bin/go", Version: "go1.26.0", OK: true}, "found go1.26.0 at /usr/local/go/bin/go"},
	} {
		var b strings.Builder
		c.g.writeText(&b)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%+v: %q, want %q", c.g, b.String(), c.want)
		}
	}
	for v, ok := range map[string]bool{"go1.26.0": true, "go1.27rc1": true, "go1.25.9": false, "go2.0": true, "devel": false} {
		if goAtLeast(v, "1.26") != ok {
			t.Errorf("goAtLeast(%s) = %v", v, !ok)
		}
	}
	out, _, code := runCLI(t, "", "doctor")
	if code != 0 || !strings.Contains(out, "go toolchain:") {
		t.Errorf("doctor: exit %d\n%s", code, out)
	}
}

// Small commands refuse what would print nothing useful, and say what they know.
func TestSmallCommands(t *testing.T) {
	// detokenize with no ids: a usage error, not an empty line.
	out, errOut, code := runCLI(t, "", "detokenize", stories)
	if code != exitUsage || out != "" || !strings.Contains(errOut, "no token ids") {
		t.Errorf("detokenize without ids: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// --version and version: the module version and the Go that built it.
	for _, a := range [][]string{{"--version"}, {"version"}} {
		out, _, code := runCLI(t, "", a...)
		if code != 0 || !strings.HasPrefix(out, "lilims ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("%v: exit %d, %q", a, code, out)
		}
	}
	out, _, _ = runCLI(t, "", "version", "--json")
	var v buildVersion
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version == "" || v.Go != runtime.Version() {
		t.Errorf("version --json: %v %s", err, out)
	}
	// Every file an example of --help names is in the repository.
	for _, c := range newRootCmd().Commands() {
		for _, f := range regexp.MustCompile(`pipelines/[\w.-]+\.yaml`).FindAllString(c.Example, -1) {
			if _, err := os.Stat(filepath.Join("../..", f)); err != nil {
				t.Errorf("lilims %s --help names %s: %v", c.Name(), f, err)
			}
		}
	}
}

// perplexity checks the text against the chunk size before building: the text of
// testdata/oracle/eval has 961 tokens, too few for two chunks of stories260K's exported
// context of 2048 (the default pipeline keeps the model's) or of --ctx 600.
func TestPerplexityChecksBeforeBuilding(t *testing.T) {
	t.Setenv("LILIMS_MODEL", stories)
	text := filepath.Join(oracle, "eval", "little-stories.txt")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "little-stories.txt: too few tokens (961) for two chunks of 2048 tokens (the exported context; --ctx not given): pass --ctx 480 or less"},
		{[]string{"--ctx", "600"}, "too few tokens (961) for two chunks of 600 tokens (--ctx): pass --ctx 480 or less"},
		{[]string{"--ctx", "4096"}, "--ctx 4096 exceeds the exported context of 2048 tokens"},
	} {
		work := t.TempDir()
		_, errOut, code := runCLI(t, "", append([]string{"perplexity", stories, "--file", text, "--work-dir", work, "--no-cache"}, c.args...)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.want)
		}
		if ents, _ := os.ReadDir(work); len(ents) != 0 {
			t.Errorf("%v: built %d stages before refusing", c.args, len(ents))
		}
	}
	// stories.yaml exports 128 tokens of context: the default is said on stderr, and the
	// result is llama.cpp's (testdata/oracle/perplexity.json: 4.2179 at ctx 128; ±0.5%).
	out, errOut, code := runCLI(t, "", "perplexity", "../../pipelines/stories.yaml", "--file", text, "--json")
	var r struct {
		Ctx        int
		Perplexity float64
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || r.Ctx != 128 || math.Abs(r.Perplexity/4.2179-1) > 0.005 {
		t.Errorf("perplexity stories.yaml: exit %d, %v, %+v\n%s", code, err, r, errOut)
	}
	_, errOut, _ = runCLI(t, "", "perplexity", "../../pipelines/stories.yaml", "--file", text, "--chunks", "1")
	if !strings.Contains(errOut, "lilims: perplexity: chunks of 128 tokens (the exported context; --ctx not given)") {
		t.Errorf("no note of the default chunk size: %q", errOut)
	}
}

// score prints each token's text beside its id, as llama.cpp's tools do, and --json carries
// it as "piece" and "top_pieces". stories260K: "Once upon a time" is 1 403 407 261 378, and
// the most likely token after BOS is 403 " Once" (testdata/oracle/llamacpp-reference.json).
func TestScorePieces(t *testing.T) {
	out, errOut, code := runCLI(t, "", "score", stories, "--prompt", "Once upon a time", "--top", "1")
	if code != 0 || !strings.Contains(out, `tokens: 1 "<s>" 403 " Once" 407 " upon" 261 " a" 378 " time"`) ||
		!strings.Contains(out, `pos 0 (after 1 "<s>"):  403 " Once" `) {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = runCLI(t, "", "score", stories, "--prompt", "Once", "--top", "2", "--json")
	var doc struct {
		Steps []struct {
			Piece     string
			Top       [][2]float64
			TopPieces []string `json:"top_pieces"`
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Steps) != 2 || doc.Steps[1].Piece != " Once" ||
		doc.Steps[0].Top[0][0] != 403 || doc.Steps[0].TopPieces[0] != " Once" {
		t.Errorf("--json: %v %s", err, out)
	}
}

// --json output is machine-readable to the end: stdout one JSON document, stderr NDJSON
// events only, with -v too, and a failure is an {"event": "error"} line with its exit status.
func TestJSONIsClean(t *testing.T) {
	t.Setenv("LILIMS_MODEL", stories)
	text := filepath.Join(oracle, "eval", "little-stories.txt")
	run := func(a ...string) (string, string, int) {
		root := newRootCmd()
		var out, errOut strings.Builder
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetIn(strings.NewReader(""))
		root.SetArgs(a)
		ctx := context.Background()
		err := execute(ctx, root)
		code := 0
		if err != nil {
			code = exitCode(ctx, err)
			errOut.WriteString(errorReport(err, code))
		}
		return out.String(), errOut.String(), code
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"build", stories, "-o", t.TempDir(), "--json", "-v", "--no-cache"}, 0},
		{[]string{"score", stories, "--prompt", "Once", "--top", "2", "--json", "-v"}, 0},
		{[]string{"perplexity", "../../pipelines/stories.yaml", "--file", text, "--chunks", "2", "--json", "-v"}, 0},
		{[]string{"validate", "../../pipelines/stories.yaml", "--json"}, 0},
		{[]string{"inspect", stories, "--json"}, 0},
		{[]string{"tokenize", stories, "--text", "Hello", "--json"}, 0},
		{[]string{"stages", "--json"}, 0},
		{[]string{"cache", "ls", "--json"}, 0},
		{[]string{"doctor", "--json"}, 0},
		{[]string{"version", "--json"}, 0},
		// Failures: the error is an NDJSON event too, and stdout holds nothing or JSON.
		{[]string{"score", stories, "--json"}, exitUsage},
		{[]string{"build", filepath.Join(t.TempDir(), "none.gguf"), "-o", t.TempDir(), "--json"}, exitError},
		{[]string{"build", stories, "-o", t.TempDir(), "--json", "--set", "quantize.schme=lut4"}, exitUsage},
	} {
		out, errOut, code := run(c.args...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d: %s", c.args, code, c.code, errOut)
		}
		if out != "" && !json.Valid([]byte(out)) {
			t.Errorf("%v: stdout is not JSON: %q", c.args, out)
		}
		var last struct {
			Event string
			Exit  int
		}
		for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
			if line == "" {
				continue
			}
			if err := json.Unmarshal([]byte(line), &last); err != nil {
				t.Errorf("%v: stderr line %q is not JSON", c.args, line)
			}
		}
		if c.code != 0 && (last.Event != "error" || last.Exit != c.code) {
			t.Errorf("%v: last stderr event %+v, want an error with exit %d", c.args, last, c.code)
		}
	}
}

// A pull under --json (pull itself, or a command that pulls a model on first use) reports as
// NDJSON events on stderr, not text lines.
func TestPullJSONEvents(t *testing.T) {
	storiesHub(t)
	for _, a := range [][]string{
		{"score", "karpathy/stories-GGUF", "--prompt", "Once", "--top", "1", "--json"},
		{"pull", "karpathy/stories-GGUF:F32", "--json"},
	} {
		if a[0] == "pull" {
			runCLI(t, "", "rm", "karpathy/stories-GGUF")
		}
		out, errOut, code := runCLI(t, "", a...)
		if code != 0 || !json.Valid([]byte(out)) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %s", a, code, out, errOut)
		}
		var pulled bool
		for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
			var e struct{ Stage, Event string }
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Errorf("%v: stderr line %q is not JSON", a, line)
			}
			pulled = pulled || e.Stage == "pull" && e.Event == "done"
		}
		if !pulled {
			t.Errorf("%v: no pull done event in %s", a, errOut)
		}
	}
}
