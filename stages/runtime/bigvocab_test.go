package runtime_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/lilims/lilims/internal/oracle"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/coreml"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// bigVocabDir holds tiny-bigvocab-f16.gguf and its llama.cpp recording (testdata/README.md).
const bigVocabDir = "../../testdata/bigvocab"

// TestBigVocab: tiny-bigvocab has 70000 tokens, over the Neural Engine's 65536 per
// dimension. Its ANE-layout export splits the embedding and the LM head into two parts of
// 35008 and 34992 rows, and the last package outputs logits_0 and logits_1, which the host
// joins: the joined logits are the standard single package's (fp32 activations; measured
// difference 0). Both stay within llama.cpp's 0.005 on the next-token probabilities, with
// fp32 and fp16-faithful activations (5 of the 34 recorded argmaxes are above 65536); over
// two chunks they are the single ANE package's (fp16-faithful, as
// TestChunks: the fp16 hidden state crosses the boundary as it leaves an op). The static
// ANE checks find no dimension over 65536 in either — and do find the standard layout's
// 70000-row embedding table.
func TestBigVocab(t *testing.T) {
	const file = "tiny-bigvocab-f16.gguf"
	o, err := oracle.Load(bigVocabDir)
	if err != nil {
		t.Fatal(err)
	}
	std := exportPath(t, filepath.Join(bigVocabDir, file), export.Options{ContextLength: 64, PrefillChunk: 16})
	ls := promptLogits(t, o, file, std, reference.FP32)
	if d := maxOracleDiff(o, file, ls); d > 0.005 {
		t.Errorf("standard layout, fp32: max |Δp| vs llama.cpp %g > 0.005", d)
	}
	if !hasDimensionFinding(t, std) {
		t.Errorf("standard layout: the static checks report no dimension over 65536 in 70000-wide logits")
	}
	var one string
	for _, chunks := range []int{1, 2} {
		ane := exportPath(t, filepath.Join(bigVocabDir, file), export.Options{ContextLength: 64, PrefillChunk: 16, Layout: arch.ANE, Chunks: chunks})
		s, err := runtime.OpenReference(ane)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Meta().Logits(); !slices.Equal(got, []string{"logits_0", "logits_1"}) {
			t.Errorf("ane, %d chunks: logits outputs %v, want logits_0 and logits_1", chunks, got)
		}
		s.Close()
		if hasDimensionFinding(t, ane) {
			t.Errorf("ane, %d chunks: the static checks find a dimension over 65536", chunks)
		}
		if chunks == 1 {
			one = ane
			la := promptLogits(t, o, file, ane, reference.FP32)
			d := maxDiff(ls, la, false)
			t.Logf("ane: max |Δlogit| vs standard %.2g; vs llama.cpp max |Δp| %.4f", d, maxOracleDiff(o, file, la))
			if d > 1e-3 {
				t.Errorf("ane: logits differ from the standard layout's by %g > 1e-3", d)
			}
			lf := promptLogits(t, o, file, ane, reference.FP16Faithful)
			d = maxOracleDiff(o, file, lf)
			t.Logf("ane, fp16-faithful: vs llama.cpp max |Δp| %.4f", d)
			if d > 0.005 {
				t.Errorf("ane, fp16-faithful: max |Δp| vs llama.cpp %g > 0.005", d)
			}
			for i, pr := range o.Models[file].Prompts { // the same argmax wherever llama.cpp's margin is decisive
				for j, st := range pr.Steps {
					if _, got, ok := st.Check(lf[i][j]); !ok {
						t.Errorf("ane: prompt %d position %d: argmax %d, llama.cpp %d", i, j, got, st.Argmax)
					}
				}
			}
			continue
		}
		d := maxDiff(promptLogits(t, o, file, one, reference.FP16Faithful), promptLogits(t, o, file, ane, reference.FP16Faithful), false)
		t.Logf("ane, %d chunks: max |Δlogit| vs one package %g", chunks, d)
		if d != 0 {
			t.Errorf("ane, %d chunks: logits differ from one package's by %g", chunks, d)
		}
	}
}

// hasDimensionFinding runs the static ANE checks on the export at path and reports whether
// any tensor has a dimension over the ANE's limit.
func hasDimensionFinding(t *testing.T, path string) bool {
	t.Helper()
	r, err := coreml.CheckStatic(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		if f.Check == "dimension" {
			t.Logf("%s", f)
			return true
		}
	}
	return false
}
