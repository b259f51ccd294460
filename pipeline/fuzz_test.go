package pipeline_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
)

// FuzzParse feeds arbitrary YAML to the pipeline parser and resolves whatever parses against
// the built-in registry, then expands the sweep and applies an override: every step must
// return a value or an error, never panic, whatever the text (tabs, aliases, duplicate keys,
// odd scalars, deep nesting). The registry has no plugin host, so plugin: stages are refused
// rather than started.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("../pipelines/*.yaml")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil && len(data) <= 4096 {
			f.Add(data, "sample.temperature=0")
		}
	}
	f.Add([]byte("name: x\nstages:\n\t- id: a\n"), "a.b=1")
	f.Add([]byte("a: &x [1]\nb: *x\nstages: [{id: s, uses: sampler/default, with: {<<: *x}}]\n"), "s.seed=1")
	f.Add([]byte("name: x\nname: y\nstages:\n  - {id: q, uses: quantize/int4, with: {scheme: lut4}}\nsweep:\n  q.scheme: [block, ${X:-lut4}]\n"), "q.group_size=4")
	f.Add([]byte("---\na: 1\n---\nb: 2\n"), "")
	registry := builtin.Registry()
	env := func(name string) (string, bool) {
		if name == "LILIMS_MODEL" {
			return "m.gguf", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte, set string) {
		spec, err := pipeline.Parse("fuzz.yaml", data, env)
		if spec == nil {
			if err == nil {
				t.Fatal("Parse returned neither a spec nor an error")
			}
			return
		}
		if err != nil && !strings.Contains(err.Error(), "fuzz.yaml") {
			t.Errorf("error does not name the file: %v", err)
		}
		if set != "" {
			spec.Clone().Set(set)
		}
		pipeline.Resolve(spec, registry)
		variants, err := spec.Variants()
		if err == nil {
			for _, v := range variants {
				pipeline.Resolve(v.Spec, registry)
			}
		}
	})
}
