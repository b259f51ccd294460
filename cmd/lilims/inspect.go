package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize"
)

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect MODEL.gguf|PACKAGE.mlpackage",
		Short: "Summarise a GGUF file or an exported package",
		Long: `For a GGUF file: architecture, hyper-parameters, tokenizer, tensors. For an exported
package (or the directory of a chunked export): its lilims contract version, functions with
their inputs, outputs and KV states (names, dtypes, shapes), metadata, weight encodings
(fp16, blockwise int4, lut) with their bytes, and the host file it carries (tokenizer, chat
template, special tokens).`,
		Example: `  lilims inspect model.gguf
  lilims inspect model.gguf --json | jq '.tensors | length'
  lilims inspect out/export/model.mlpackage
  lilims inspect model.mlpackage --json | jq '.packages[0].weights'`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if isExport(a[0]) {
				doc, err := inspectPackage(a[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), doc)
				}
				return inspectPackageText(cmd.OutOrStdout(), doc)
			}
			f, err := gguf.Open(a[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), inspectJSON(f))
			}
			return inspectText(cmd.OutOrStdout(), f)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (complete metadata, every tensor)")
	return cmd
}

type tensorJSON struct {
	Name   string  `json:"name"`
	Shape  []int64 `json:"shape"`
	Type   string  `json:"type"`
	Offset uint64  `json:"offset"`
	Bytes  int64   `json:"bytes"`
}

type inspectDoc struct {
	Path         string         `json:"path"`
	Version      uint32         `json:"version"`
	Alignment    uint64         `json:"alignment"`
	DataOffset   int64          `json:"data_offset"`
	Architecture string         `json:"architecture"`
	Parameters   int64          `json:"parameters"`
	Config       *arch.Config   `json:"config,omitempty"`
	KVState      *kvStateJSON   `json:"kv_state,omitempty"`
	Metadata     map[string]any `json:"metadata"`
	Tensors      []tensorJSON   `json:"tensors"`
}

func inspectJSON(f *gguf.File) inspectDoc {
	doc := inspectDoc{Path: f.Path, Version: f.Version, Alignment: f.Alignment, DataOffset: f.DataOffset,
		Architecture: f.Architecture(), Parameters: f.ParameterCount(),
		Metadata: make(map[string]any, len(f.KVs)), Tensors: make([]tensorJSON, 0, len(f.Tensors))}
	if cfg, err := arch.ReadConfig(f); err == nil {
		doc.Config = cfg
		doc.KVState = newKVStateJSON(cfg)
	}
	for _, kv := range f.KVs {
		doc.Metadata[kv.Key] = jsonValue(kv.Value.V)
	}
	for _, t := range f.Tensors {
		doc.Tensors = append(doc.Tensors, tensorJSON{t.Name, t.Shape, t.Type.String(), t.Offset, t.Size})
	}
	return doc
}

// jsonValue makes metadata JSON-safe: byte arrays as numbers (not base64) and non-finite
// floats as strings.
func jsonValue(v any) any {
	switch x := v.(type) {
	case []uint8:
		out := make([]int, len(x))
		for i, b := range x {
			out[i] = int(b)
		}
		return out
	case float32:
		return jsonFloat(float64(x))
	case float64:
		return jsonFloat(x)
	case []float32:
		out := make([]any, len(x))
		for i, f := range x {
			out[i] = jsonFloat(float64(f))
		}
		return out
	case []float64:
		out := make([]any, len(x))
		for i, f := range x {
			out[i] = jsonFloat(f)
		}
		return out
	}
	return v
}

func jsonFloat(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	return f
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func inspectText(w io.Writer, f *gguf.File) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "file:\t%s\n", f.Path)
	fmt.Fprintf(tw, "format:\tGGUF v%d, alignment %d, tensor data at byte %d\n", f.Version, f.Alignment, f.DataOffset)
	fmt.Fprintf(tw, "architecture:\t%s\n", orDash(f.Architecture()))
	if name, err := f.GetString("general.name"); err == nil {
		fmt.Fprintf(tw, "name:\t%s\n", name)
	}
	fmt.Fprintf(tw, "parameters:\t%s (%d)\n", humanCount(f.ParameterCount()), f.ParameterCount())
	var total int64
	for _, t := range f.Tensors {
		total += t.Size
	}
	fmt.Fprintf(tw, "tensor data:\t%s in %d tensors\n", humanBytes(total), len(f.Tensors))
	if len(f.Tensors) > 0 {
		// What a default build makes of the weights (see docs/quantization.md).
		desc, err := quantize.Describe(f, "auto")
		if err != nil {
			desc = "cannot convert: " + err.Error()
		}
		fmt.Fprintf(tw, "Core ML weights:\t%s\n", desc)
	}
	if cfg, err := arch.ReadConfig(f); err == nil {
		fmt.Fprintf(tw, "hyper-parameters:\tn_embd %d, n_layer %d, n_ff %d, n_head %d, n_head_kv %d, head_dim %d\n",
			cfg.EmbeddingLen, cfg.BlockCount, cfg.FeedForward, cfg.HeadCount, cfg.HeadCountKV, cfg.KeyLength)
		norm := "LayerNorm"
		if cfg.RMSNorm {
			norm = "RMSNorm"
		}
		fmt.Fprintf(tw, "\tcontext %d, %s eps %g, rope %s (n_rot %d, base %g)\n",
			cfg.ContextLength, norm, cfg.NormEps, cfg.Rope, cfg.RopeDims, cfg.RopeBase)
		if cfg.RopeScaling != "" || cfg.RopeScale != 1 || cfg.RopeOrigCtx != 0 {
			fmt.Fprintf(tw, "\trope scaling %s, freq_scale %g, original context %d\n",
				orDash(cfg.RopeScaling), cfg.RopeScale, cfg.OrigContext())
		}
		if cfg.SlidingWindow > 0 {
			fmt.Fprintf(tw, "\tsliding window %d (pattern %d, local rope base %g)\n", cfg.SlidingWindow, cfg.SlidingPattern, cfg.RopeBaseSWA)
		}
		if cfg.AttnSoftCap != 0 || cfg.FinalSoftCap != 0 {
			fmt.Fprintf(tw, "\tsoft-caps: attention %g, final %g\n", cfg.AttnSoftCap, cfg.FinalSoftCap)
		}
		fmt.Fprintf(tw, "KV state:\t%s\n", kvStateText(cfg))
	} else if f.Architecture() != "" {
		fmt.Fprintf(tw, "hyper-parameters:\t%v\n", err)
	}
	if model, err := f.GetString("tokenizer.ggml.model"); err == nil {
		toks, _ := f.GetStrings("tokenizer.ggml.tokens")
		pre, _ := f.GetString("tokenizer.ggml.pre")
		desc := fmt.Sprintf("%s, %d tokens", model, len(toks))
		if pre != "" {
			desc += ", pre " + pre
		}
		for _, k := range []string{"bos", "eos"} {
			if id, err := f.GetInt("tokenizer.ggml." + k + "_token_id"); err == nil {
				desc += fmt.Sprintf(", %s %d", k, id)
				if id >= 0 && int(id) < len(toks) {
					desc += fmt.Sprintf(" %q", toks[id])
				}
			}
		}
		fmt.Fprintf(tw, "tokenizer:\t%s\n", desc)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nmetadata (%d keys):\n", len(f.KVs))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, kv := range f.KVs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", kv.Key, kv.Value.TypeName(), summarise(kv.Value))
	}
	tw.Flush()

	fmt.Fprintf(w, "\ntensors (%d):\n", len(f.Tensors))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  name\tshape\ttype\tbytes\t\n")
	for _, t := range f.Tensors {
		dims := make([]string, len(t.Shape))
		for i, d := range t.Shape {
			dims[i] = fmt.Sprint(d)
		}
		fmt.Fprintf(tw, "  %s\t[%s]\t%s\t%d\t\n", t.Name, strings.Join(dims, ", "), t.Type, t.Size)
	}
	return tw.Flush()
}

// summarise prints scalars whole and long arrays as their length and first few elements.
func summarise(v gguf.Value) string {
	const head = 5
	if v.Type != gguf.TypeArray {
		if s, ok := v.V.(string); ok {
			if len(s) > 80 {
				return fmt.Sprintf("%q… (%d bytes)", s[:80], len(s))
			}
			return fmt.Sprintf("%q", s)
		}
		return fmt.Sprint(v.V)
	}
	n := v.Len()
	var items []string
	switch a := v.V.(type) {
	case []string:
		for _, s := range a[:min(n, head)] {
			items = append(items, fmt.Sprintf("%q", s))
		}
	default:
		s := strings.Trim(fmt.Sprint(a), "[]")
		fields := strings.Fields(s)
		items = fields[:min(len(fields), head)]
	}
	out := "[" + strings.Join(items, ", ")
	if n > head {
		out += fmt.Sprintf(", … (%d total)", n)
	}
	return out + "]"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// kvStateJSON is the KV state a package exported from the model declares (fp16, what Core
// ML allocates) at the default export context and at the model's trained context.
type kvStateJSON struct {
	DefaultContext int   `json:"default_context"`
	DefaultBytes   int64 `json:"default_bytes"`
	TrainedContext int   `json:"trained_context"`
	TrainedBytes   int64 `json:"trained_bytes"`
}

func newKVStateJSON(cfg *arch.Config) *kvStateJSON {
	c := min(cfg.ContextLength, export.DefaultContextLength)
	return &kvStateJSON{DefaultContext: c, DefaultBytes: export.KVStateBytes(cfg, c),
		TrainedContext: cfg.ContextLength, TrainedBytes: export.KVStateBytes(cfg, cfg.ContextLength)}
}

func kvStateText(cfg *arch.Config) string {
	k := newKVStateJSON(cfg)
	s := fmt.Sprintf("%s fp16 at the default export context %d", humanBytes(k.DefaultBytes), k.DefaultContext)
	if k.TrainedContext != k.DefaultContext {
		s += fmt.Sprintf(", %s at the trained context %d (export.context)", humanBytes(k.TrainedBytes), k.TrainedContext)
	}
	return s
}
