package eval

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"text/tabwriter"
)

// SchemeResult is one row of a quantization-scheme comparison: what the scheme costs (bits,
// bytes, time) and what it loses (perplexity, divergence from the base run).
type SchemeResult struct {
	Scheme          string  `json:"scheme"`
	BitsPerWeight   float64 `json:"bits_per_weight"`  // over every weight of the model, fp16 tensors included
	PackageBytes    int64   `json:"package_bytes"`    // size of the exported .mlpackage
	Perplexity      float64 `json:"perplexity"`       // llama-perplexity's method
	DeltaPPLPct     float64 `json:"delta_ppl_pct"`    // 100 · (PPL − PPL_base) / PPL_base
	KL              float64 `json:"kl"`               // mean KL(base ‖ scheme), nats
	Top1Agreement   float64 `json:"top1_agreement"`   // share of scored tokens with the base's argmax
	QuantizeSeconds float64 `json:"quantize_seconds"` // wall time of the quantize stage
	// Note says what the row is when its figures alone would mislead: a scheme that
	// quantized nothing, a GGUF quantized by llama.cpp. The table prints it below.
	Note string `json:"note,omitempty"`

	// LayerRelRMSE[i] is the quantization error of block i (see LayerErrors); it is drawn in
	// the chart and not part of the JSON row.
	LayerRelRMSE []float64 `json:"-"`
}

// TensorError is what the comparison needs to know of one quantized tensor.
type TensorError struct {
	Name          string  // GGUF tensor name, "blk.N.…" inside transformer block N
	Elements      int64   // number of weights
	BitsPerWeight float64 // storage bits per weight, scales and offsets included
	RelRMSE       float64 // ‖W − Ŵ‖ / ‖W‖ over the tensor
}

// blockTensor matches GGUF's names for tensors of transformer block N ("blk.N.attn_q.weight").
var blockTensor = regexp.MustCompile(`^blk\.(\d+)\.`)

// BitsPerWeight is the storage cost over all tensors: their bits summed and divided by their
// weights. Tensors with no element count are weighed equally with each other instead, so a
// manifest without shapes still gives a sensible figure. It returns 0 for no tensors.
func BitsPerWeight(tensors []TensorError) float64 {
	var bits, n float64
	for _, t := range tensors {
		w := float64(t.Elements)
		if t.Elements <= 0 {
			w = 1
		}
		bits += w * t.BitsPerWeight
		n += w
	}
	if n == 0 {
		return 0
	}
	return bits / n
}

// LayerErrors returns, for each transformer block (index = block number), the relative RMS
// error of its quantized weights taken together: sqrt(Σ n·e² / Σ n) over the block's tensors
// weighed by element count, which is ‖W − Ŵ‖/‖W‖ over the block when the tensors have equal
// norms per weight. Blocks absent from the list get 0.
func LayerErrors(tensors []TensorError) []float64 {
	type acc struct{ sq, n float64 }
	var layers []acc
	for _, t := range tensors {
		m := blockTensor.FindStringSubmatch(t.Name)
		if m == nil {
			continue
		}
		i, err := strconv.Atoi(m[1])
		if err != nil || i > 1<<16 {
			continue // not a block index a model could have
		}
		for len(layers) <= i {
			layers = append(layers, acc{})
		}
		w := float64(max(t.Elements, 1))
		layers[i].sq += w * t.RelRMSE * t.RelRMSE
		layers[i].n += w
	}
	out := make([]float64, len(layers))
	for i, a := range layers {
		if a.n > 0 {
			out[i] = math.Sqrt(a.sq / a.n)
		}
	}
	return out
}

// WriteTable prints the comparison as an aligned text table.
func WriteTable(w io.Writer, rows []SchemeResult) error {
	// Numbers align right; the scheme column is padded to one width so that it reads
	// left-aligned.
	width := len("scheme")
	for _, r := range rows {
		n := len(r.Scheme)
		if r.Note != "" {
			n += len(" *")
		}
		width = max(width, n)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tbits/weight\tpackage\tperplexity\tΔ ppl\tKL\ttop-1\tquantize\t\n", width, "scheme")
	var notes []string
	for _, r := range rows {
		name := r.Scheme
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", r.Scheme, r.Note))
			name += " *"
		}
		fmt.Fprintf(tw, "%-*s\t%.2f\t%s\t%.4f\t%+.2f%%\t%.6f\t%.1f%%\t%.2fs\t\n",
			width, name, r.BitsPerWeight, FormatBytes(r.PackageBytes), r.Perplexity, r.DeltaPPLPct,
			r.KL, 100*r.Top1Agreement, r.QuantizeSeconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		if _, err := fmt.Fprintf(w, "* %s\n", n); err != nil {
			return err
		}
	}
	return nil
}

// FormatBytes prints a size with a binary unit (KiB, MiB, GiB).
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 2 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMG"[i])
}
