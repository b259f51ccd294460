package main

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// Every exported variant of every fixture — standard layout, ANE layout, chunked — passes the
// compile stage's static validator (the compile stage of the default pipeline validates what
// export wrote; a failure exits non-zero naming the problem).
func TestExportVariantsValidate(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(oracle, "models", "*.gguf"))
	variants := map[string][]string{
		"standard": nil,
		"ane":      {"--set", "export.layout=ane"},
		"chunks":   {"--set", "export.chunks=2"},
	}
	n := 0
	for _, p := range paths {
		for name, extra := range variants {
			a := append([]string{"build", p, "-o", t.TempDir(), "--json", "--set", "export.context=32",
				"--set", "export.prefill_chunk=8"}, extra...)
			out, errOut, code := runCLI(t, "", a...)
			if code != 0 {
				t.Errorf("%s %s: exit %d: %s", filepath.Base(p), name, code, errOut)
				continue
			}
			var res struct{ Artifacts map[string]string }
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.Artifacts["compile"] == "" {
				t.Errorf("%s %s: no compile artifact in %q", filepath.Base(p), name, out)
			}
			n++
		}
	}
	if n < 3*17 {
		t.Errorf("validated %d variants, want every fixture × 3", n)
	}
}
