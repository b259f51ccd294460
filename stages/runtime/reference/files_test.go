package reference

import (
	"path/filepath"
	"testing"

	"github.com/lilims/lilims/stages/runtime/reference/npy"
)

// TestPredictFiles runs the second KV-cache call from .npy files, starting from the state the
// fixture records before it, and compares the written output and state with the fixture
// (rtol 0.01, atol 0.01 as its ref.json suggests).
func TestPredictFiles(t *testing.T) {
	ref := filepath.Join(coremlDir, "kv_cache_state.ref")
	stateIn := t.TempDir()
	for _, s := range []string{"k_cache", "v_cache"} {
		a, err := npy.ReadFile(filepath.Join(ref, "step1_state_before_"+s+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		if err := npy.WriteFile(filepath.Join(stateIn, s+".npy"), a); err != nil {
			t.Fatal(err)
		}
	}
	in := map[string]string{}
	for _, n := range []string{"q", "k_new", "v_new", "pos", "mask"} {
		in[n] = filepath.Join(ref, "step1_in_"+n+".npy")
	}
	outDir, stateOut := t.TempDir(), t.TempDir()
	if err := PredictFiles(filepath.Join(coremlDir, "kv_cache_state.mlpackage"), "", in, stateIn, stateOut, outDir); err != nil {
		t.Fatal(err)
	}
	allClose(t, "attn_out", readTensor(t, filepath.Join(outDir, "attn_out.npy")), readTensor(t, filepath.Join(ref, "step1_out_attn_out.npy")), 0.01, 0.01)
	for _, s := range []string{"k_cache", "v_cache"} {
		allClose(t, s, readTensor(t, filepath.Join(stateOut, s+".npy")), readTensor(t, filepath.Join(ref, "step1_state_after_"+s+".npy")), 0.01, 0.01)
	}
	if err := PredictFiles(filepath.Join(coremlDir, "kv_cache_state.mlpackage"), "", map[string]string{"q": in["q"]}, "", "", outDir); err == nil {
		t.Error("PredictFiles with missing inputs succeeded")
	}
}
