package quantize

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
)

// TestRows splits tensors into row ranges, as the exporter does with a fused qkv, and checks
// each part dequantizes to the same rows of the whole — including odd offsets into packed
// 4-bit arrays (ffn_down blocks of 43 give 172/43 = 4 scales per row, attn_k rows of 64).
func TestRows(t *testing.T) {
	for _, p := range []stage.Params{
		{"scheme": "block", "symmetric": false},
		{"scheme": "channel"},
		{"scheme": "lut4", "group_size": int64(4)},
		{"scheme": "block", "overrides": []string{"*=8"}},
	} {
		s, _ := quantizeModel(t, "stories260K.gguf", p)
		for _, name := range []string{"blk.1.ffn_down.weight", "blk.1.attn_k.weight", "token_embd.weight"} {
			qt, _ := s.Lookup(name)
			in := qt.Info.Shape[1]
			all := qt.Dequantize()
			for _, rr := range [][2]int{{0, 4}, {4, 12}, {8, qt.Info.Shape[0]}} {
				part, err := qt.Rows(rr[0], rr[1])
				if err != nil {
					t.Fatalf("%v %s %v: %v", p, name, rr, err)
				}
				if !slices.Equal(part.Dequantize(), all[rr[0]*in:rr[1]*in]) {
					t.Errorf("%v %s rows %v differ", p, name, rr)
				}
			}
		}
	}
	s, _ := quantizeModel(t, "stories260K.gguf", stage.Params{"scheme": "lut4", "group_size": int64(4)})
	qt, _ := s.Lookup("blk.0.attn_q.weight")
	if _, err := qt.Rows(2, 8); err == nil || !strings.Contains(err.Error(), "not multiples of its palette group 4") {
		t.Errorf("lut rows off group: %v", err)
	}
	if _, err := qt.Rows(8, 200); err == nil {
		t.Error("rows past the end accepted")
	}
}

// TestOpenCorrupt: a manifest that disagrees with the weights file is an error naming the tensor.
func TestOpenCorrupt(t *testing.T) {
	f := openModel(t, "stories260K.gguf")
	cfg, _ := ParseConfig(stage.Params{"scheme": "block"})
	dir := t.TempDir()
	if _, err := Quantize(context.Background(), f, cfg, dir, nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	weights, _ := os.ReadFile(filepath.Join(dir, WeightsFile))
	for _, tc := range []struct {
		name     string
		manifest string
		weights  []byte
		want     string
	}{
		{"dtype", strings.Replace(string(raw), `"dtype": "int4"`, `"dtype": "int8"`, 1), weights,
			`tensor "token_embd.weight": array "token_embd.weight.data" is U8[16384], want I8[512 64]`},
		{"block", strings.Replace(string(raw), "\"block_size\": 32,\n      \"bits_per_weight\"", "\"block_size\": 48,\n      \"bits_per_weight\"", 1), weights,
			`tensor "token_embd.weight": block size 48 does not divide in = 64`},
		{"missing", strings.Replace(string(raw), `"name": "blk.0.attn_q.weight"`, `"name": "blk.9.attn_q.weight"`, 1), weights,
			`has no array "blk.9.attn_q.weight.data"`},
		{"encoding", strings.Replace(string(raw), `"encoding": "blockwise"`, `"encoding": "sparse"`, 1), weights,
			`encoding "sparse" has no stored arrays`},
		{"json", string(raw[:100]), weights, "unexpected end of JSON"},
		{"truncated weights", string(raw), weights[:len(weights)/2], "outside the"},
	} {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, ManifestFile), []byte(tc.manifest), 0o644)
		os.WriteFile(filepath.Join(d, WeightsFile), tc.weights, 0o644)
		_, err := Open(d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
