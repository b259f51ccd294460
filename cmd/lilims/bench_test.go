package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBenchJSON runs `lilims bench` on stories260K with the llama.cpp reference figures
// given, and checks the keys the issue names, the speeds' consistency with their samples,
// and that each ratio is ours over (or, for the build, over) the figure given.
func TestBenchJSON(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	out, errOut, code := runCLI(t, "", "bench", model, "-p", "8", "-n", "4", "-r", "2", "--no-cache",
		"--llama-pp", "1000", "--llama-tg", "500", "--llama-quantize", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench --json is not one JSON object: %v\n%s", err, out)
	}
	num := func(k string) float64 {
		v, ok := r[k].(float64)
		if !ok {
			t.Fatalf("key %q missing or not a number in %s", k, out)
		}
		return v
	}
	if k, _ := r["kernels"].(string); k == "" {
		t.Errorf("bench --json lacks the kernel set: %s", out)
	}
	for _, k := range []string{"pp_tps", "tg_tps", "build_seconds", "peak_rss_mb"} {
		if num(k) <= 0 {
			t.Errorf("%s = %v, want > 0", k, num(k))
		}
	}
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-3*max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("pp_ratio", num("pp_ratio"), num("pp_tps")/1000)
	near("tg_ratio", num("tg_ratio"), num("tg_tps")/500)
	near("build_ratio", num("build_ratio"), num("build_seconds")/2)
	if s, ok := r["pp_samples"].([]any); !ok || len(s) != 2 {
		t.Errorf("pp_samples = %v, want 2 repetitions", r["pp_samples"])
	}
	// The reference runtime maps the whole package (Core ML, on a Mac, loads it elsewhere).
	if runtime.GOOS == "linux" && num("runtime_peak_rss_mb") < num("package_mb") {
		t.Errorf("runtime peak RSS %v MB below the package's %v MB: the weights are not all mapped?",
			num("runtime_peak_rss_mb"), num("package_mb"))
	}
}

func TestBenchTextAndUsage(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	out, errOut, code := runCLI(t, "", "bench", model, "-p", "4", "-n", "0", "-r", "1", "--llama-pp", "100")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"build:", "pp4", "×", "peak RSS:"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "tg0") {
		t.Errorf("-n 0 still prints a tg row:\n%s", out)
	}
	for _, bad := range [][]string{{"-p", "-1"}, {"-r", "0"}, {"-p", "9999"}} {
		_, errOut, code := runCLI(t, "", append([]string{"bench", model}, bad...)...)
		if code != exitUsage {
			t.Errorf("bench %v: exit %d (%s), want %d", bad, code, errOut, exitUsage)
		}
	}
}

// TestBenchContexts: --ctx measures each exported context in turn and reports them side by
// side, as text and as one JSON object per context.
func TestBenchContexts(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	out, errOut, code := runCLI(t, "", "bench", model, "--ctx", "64,512", "-p", "8", "-n", "4", "-r", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r struct {
		Contexts []map[string]any `json:"contexts"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench --ctx --json is not one JSON object: %v\n%s", err, out)
	}
	if len(r.Contexts) != 2 {
		t.Fatalf("%d contexts, want 2: %s", len(r.Contexts), out)
	}
	for i, want := range []float64{64, 512} {
		c := r.Contexts[i]
		if c["context"] != want {
			t.Errorf("context %d is %v, want %v", i, c["context"], want)
		}
		for _, k := range []string{"pp_tps", "tg_tps", "runtime_peak_rss_mb", "pp_cpu_ms_per_token", "tg_cpu_ms_per_token"} {
			if v, _ := c[k].(float64); v <= 0 {
				t.Errorf("context %v: %s = %v, want > 0", want, k, c[k])
			}
		}
	}
	out, errOut, code = runCLI(t, "", "bench", model, "--ctx", "64,512", "-p", "8", "-n", "0", "-r", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"context", "pp8 t/s", "runtime peak RSS", "\n      64 ", "\n     512 "} {
		if !strings.Contains(out, want) {
			t.Errorf("bench --ctx output lacks %q:\n%s", want, out)
		}
	}
	if _, _, code := runCLI(t, "", "bench", model, "--ctx", "0"); code != exitUsage {
		t.Errorf("--ctx 0: exit %d, want %d", code, exitUsage)
	}
}
