package eval

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"io"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
)

// sampleRows are a comparison as compare would produce it; the values are made up for the
// drawing and formatting tests only (they exercise a negative Δ and a scheme name with XML
// metacharacters).
func sampleRows() []SchemeResult {
	return []SchemeResult{
		{Scheme: "fp16", BitsPerWeight: 16, PackageBytes: 1 << 20, Perplexity: 4.2174, LayerRelRMSE: []float64{0, 0, 0, 0, 0}},
		{Scheme: "block:32", BitsPerWeight: 4.5, PackageBytes: 300 << 10, Perplexity: 4.70, DeltaPPLPct: 11.4, KL: 0.05, Top1Agreement: 0.9,
			QuantizeSeconds: 0.2, LayerRelRMSE: []float64{0.08, 0.09, 0.085, 0.1, 0.07}},
		{Scheme: "lut4", BitsPerWeight: 4.1, PackageBytes: 280 << 10, Perplexity: 4.20, DeltaPPLPct: -0.4, KL: 0.01, Top1Agreement: 0.95,
			QuantizeSeconds: 1.5, LayerRelRMSE: []float64{0.05, 0.06, 0.05, 0.07, 0.04}},
		{Scheme: `x<&"y>`, BitsPerWeight: 8, LayerRelRMSE: []float64{math.NaN(), 0.01}},
	}
}

func TestSVGWellFormed(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSVG(&buf, sampleRows()); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	var texts []string
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, buf.String())
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	all := strings.Join(texts, "\n")
	for _, r := range sampleRows() {
		if !strings.Contains(all, r.Scheme) {
			t.Errorf("the chart's text does not name scheme %q", r.Scheme)
		}
	}
	if os.Getenv("LILIMS_KEEP_CHART") != "" {
		os.WriteFile("chart.svg", buf.Bytes(), 0o644)
	}
}

func TestPNG(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePNG(&buf, sampleRows()); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w, h := chartSize(len(sampleRows()))
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("image %v, want %d×%d", b, w, h)
	}
	// The first scheme's bar in the bits panel is drawn in the first palette colour.
	found := false
	for y := 0; y < h && !found; y++ {
		for x := 0; x < w; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == palette[0].R && uint8(g>>8) == palette[0].G && uint8(b>>8) == palette[0].B {
				found = true
				break
			}
		}
	}
	if !found {
		t.Error("no pixel in the first scheme's colour")
	}
	if os.Getenv("LILIMS_KEEP_CHART") != "" {
		var out bytes.Buffer
		WritePNG(&out, sampleRows())
		os.WriteFile("chart.png", out.Bytes(), 0o644)
	}
}

// The JSON row has exactly the keys the issue lists.
func TestSchemeResultJSON(t *testing.T) {
	data, err := json.Marshal(sampleRows()[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"bits_per_weight", "delta_ppl_pct", "kl", "package_bytes", "perplexity", "quantize_seconds", "scheme", "top1_agreement"}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slicesSort(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	if m["scheme"] != "block:32" || m["bits_per_weight"] != 4.5 || m["package_bytes"] != float64(300<<10) {
		t.Errorf("values %v", m)
	}
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestBitsAndLayers(t *testing.T) {
	tensors := []TensorError{
		// Block 0: a 4.5-bit tensor of 1000 weights with error 0.1 and a 16-bit one of 100.
		{Name: "blk.0.attn_q.weight", Elements: 1000, BitsPerWeight: 4.5, RelRMSE: 0.1},
		{Name: "blk.0.attn_norm.weight", Elements: 100, BitsPerWeight: 16, RelRMSE: 0},
		// Block 2 only (block 1 absent): error 0.2.
		{Name: "blk.2.ffn_up.weight", Elements: 900, BitsPerWeight: 4.5, RelRMSE: 0.2},
		{Name: "token_embd.weight", Elements: 1000, BitsPerWeight: 16},
	}
	// Bits: (1000·4.5 + 100·16 + 900·4.5 + 1000·16) / 3000 = 26150 / 3000 ≈ 8.7167.
	if got := BitsPerWeight(tensors); math.Abs(got-26150.0/3000) > 1e-12 {
		t.Errorf("bits per weight %g, want %g", got, 26150.0/3000)
	}
	// Block 0: sqrt((1000·0.01 + 100·0) / 1100) = sqrt(1/110); block 1: 0; block 2: 0.2.
	want := []float64{math.Sqrt(1.0 / 110), 0, 0.2}
	got := LayerErrors(tensors)
	if len(got) != len(want) {
		t.Fatalf("layers %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("layer %d: %g, want %g", i, got[i], want[i])
		}
	}
	if BitsPerWeight(nil) != 0 || len(LayerErrors(nil)) != 0 {
		t.Error("no tensors should give 0 bits and no layers")
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, sampleRows()[:3]); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want a header and 3 rows:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{"block:32", "4.50", "300.0 KiB", "4.7000", "+11.40%", "0.050000", "90.0%", "0.20s"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("row %q lacks %q", lines[2], want)
		}
	}
	if !strings.Contains(lines[3], "-0.40%") {
		t.Errorf("row %q lacks -0.40%%", lines[3])
	}
}

// A row that quantized nothing prints its note below the table, marked in the row.
func TestTableNotes(t *testing.T) {
	rows := []SchemeResult{
		{Scheme: "fp16", BitsPerWeight: 16, Perplexity: 4.2174, Top1Agreement: 1},
		{Scheme: "gguf", BitsPerWeight: 16, Perplexity: 4.2174, Top1Agreement: 1, Note: "nothing quantized, every weight stays fp16"},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "gguf *") || !strings.Contains(out, "* gguf: nothing quantized") {
		t.Errorf("table does not mark and explain the unquantized row:\n%s", out)
	}
}

// A Δ of −1e−13 (two fp16 runs summing in another order) must not pull the Δ axis a tick
// step below zero: every Δ here is ≥ 0, so no tick label is negative.
func TestChartAxisIgnoresRounding(t *testing.T) {
	rows := []SchemeResult{
		{Scheme: "fp16", BitsPerWeight: 16},
		{Scheme: "gguf", BitsPerWeight: 16, DeltaPPLPct: -1e-13},
		{Scheme: "block:32", BitsPerWeight: 4.5, DeltaPPLPct: 5},
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, rows); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&b)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if cd, ok := tok.(xml.CharData); ok && strings.HasPrefix(strings.TrimSpace(string(cd)), "-") {
			t.Errorf("negative label %q on a chart whose Δs are ≥ 0", cd)
		}
	}
}
