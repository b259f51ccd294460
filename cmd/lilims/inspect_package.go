package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// packageDoc describes an exported model: one package, or the packages of a chunked export.
type packageDoc struct {
	Path     string          `json:"path"`
	Format   string          `json:"format"` // "mlpackage" or "lilims.chunks"
	Contract contractDoc     `json:"contract"`
	Meta     *contract.Meta  `json:"meta,omitempty"` // C, N, V when the contract holds
	Packages []packageDetail `json:"packages"`
	Host     *hostDoc        `json:"host,omitempty"`
}

type contractDoc struct {
	Version   string   `json:"version"`   // the packages' lilims.contract ("" if absent)
	Supported int      `json:"supported"` // the version this lilims runs
	Problems  []string `json:"problems,omitempty"`
}

type packageDetail struct {
	Path                 string            `json:"path"`
	SpecificationVersion int32             `json:"specification_version"`
	DefaultFunction      string            `json:"default_function,omitempty"`
	Functions            []functionDoc     `json:"functions"`
	Metadata             map[string]string `json:"metadata"`
	Weights              []weightDoc       `json:"weights"`
	WeightBytes          int64             `json:"weight_bytes"`
	StateBytes           int64             `json:"state_bytes"` // the KV state of one session
	Items                []string          `json:"items"`       // Manifest.json items, Data-relative
}

type functionDoc struct {
	Name    string       `json:"name"`
	Inputs  []featureDoc `json:"inputs"`
	Outputs []featureDoc `json:"outputs"`
	States  []featureDoc `json:"states"`
}

type featureDoc struct {
	Name  string  `json:"name"`
	Type  string  `json:"type"`
	Shape []int64 `json:"shape"`
}

// weightDoc counts the weights of one encoding: fp16 constants, blockwise-quantized
// (constexpr_blockwise_shift_scale) or palettized (constexpr_lut_to_dense) ones.
type weightDoc struct {
	Encoding string `json:"encoding"`
	Count    int    `json:"count"`
	Bytes    int64  `json:"bytes"`
}

type hostDoc struct {
	Path          string           `json:"path"`
	Bytes         int64            `json:"bytes"`
	Architecture  string           `json:"architecture,omitempty"`
	Name          string           `json:"name,omitempty"`
	Tokenizer     string           `json:"tokenizer,omitempty"`
	Pre           string           `json:"pre,omitempty"`
	Tokens        int              `json:"tokens"`
	SpecialTokens map[string]int64 `json:"special_tokens,omitempty"` // bos, eos, eot, … where declared and in range
	ChatTemplate  int              `json:"chat_template_bytes"`      // 0: none
	Keys          int              `json:"keys"`
}

// inspectPackage describes the exported model at path.
func inspectPackage(path string) (*packageDoc, error) {
	pkgs, err := mlpackage.PackagesAt(path)
	if err != nil {
		return nil, err
	}
	doc := &packageDoc{Path: path, Format: "mlpackage", Contract: contractDoc{Supported: contract.Version}}
	if len(pkgs) > 1 || mlpackage.IsChunked(path) {
		doc.Format = mlpackage.ChunkFormat
	}
	var descs []contract.Description
	for _, p := range pkgs {
		d, desc, err := describePackage(p)
		if err != nil {
			return nil, err
		}
		doc.Packages = append(doc.Packages, *d)
		descs = append(descs, desc)
	}
	doc.Contract.Version = descs[0].Metadata[contract.KeyVersion]
	meta, errs := contract.Check(descs)
	for _, e := range errs {
		doc.Contract.Problems = append(doc.Contract.Problems, e.Error())
	}
	if len(errs) == 0 {
		doc.Meta = &meta
	}
	if where, err := contract.HostPath(path); err == nil {
		if h, err := describeHost(where); err == nil {
			doc.Host = h
		}
	}
	return doc, nil
}

func describePackage(path string) (*packageDetail, contract.Description, error) {
	p, err := mlpackage.Open(path)
	if err != nil {
		return nil, contract.Description{}, err
	}
	defer p.Close()
	m := p.Model
	d := &packageDetail{Path: path, SpecificationVersion: m.GetSpecificationVersion(),
		DefaultFunction: m.GetDescription().GetDefaultFunctionName(),
		Metadata:        m.GetDescription().GetMetadata().GetUserDefined()}
	if d.Metadata == nil {
		d.Metadata = map[string]string{}
	}
	for _, fd := range m.GetDescription().GetFunctions() {
		f := functionDoc{Name: fd.GetName(), Inputs: featureDocs(fd.GetInput(), false),
			Outputs: featureDocs(fd.GetOutput(), false), States: featureDocs(fd.GetState(), true)}
		d.Functions = append(d.Functions, f)
	}
	if fds := m.GetDescription(); len(fds.GetFunctions()) == 0 { // a single-function model
		d.Functions = append(d.Functions, functionDoc{Name: "main", Inputs: featureDocs(fds.GetInput(), false),
			Outputs: featureDocs(fds.GetOutput(), false), States: featureDocs(fds.GetState(), true)})
	}
	if len(d.Functions) > 0 {
		for _, s := range d.Functions[0].States {
			n := int64(2) // states are fp16
			for _, x := range s.Shape {
				n *= x
			}
			d.StateBytes += n
		}
	}
	d.Weights, d.WeightBytes = weightEncodings(p)
	for _, item := range p.Manifest.ItemInfoEntries {
		d.Items = append(d.Items, item.Path)
	}
	sort.Strings(d.Items)
	return d, contract.Describe(m), nil
}

func featureDocs(fds []*milpb.FeatureDescription, state bool) []featureDoc {
	out := []featureDoc{}
	for _, fd := range fds {
		arr := fd.GetType().GetMultiArrayType()
		if state {
			arr = fd.GetType().GetStateType().GetArrayType()
		}
		typ := strings.ToLower(arr.GetDataType().String())
		if arr == nil {
			typ = "not a multi-array"
		}
		out = append(out, featureDoc{Name: fd.GetName(), Type: typ, Shape: slices.Clone(arr.GetShape())})
	}
	return out
}

// weightEncodings counts the program's weights by encoding. A weight is an op that reads a
// blob: a const (its dtype: fp16 …), constexpr_blockwise_shift_scale ("blockwise" and the
// dtype of its data), constexpr_lut_to_dense ("lut" and the dtype of its indices); its bytes
// are those of every blob it reads. The functions share their weights: each blob counts once.
func weightEncodings(p *mlpackage.Package) ([]weightDoc, int64) {
	type blobKey struct {
		file   string
		offset uint64
	}
	seen := map[blobKey]bool{}
	byEnc := map[string]*weightDoc{}
	var total int64
	var visit func(b *milpb.Block)
	visit = func(b *milpb.Block) {
		for _, op := range b.GetOperations() {
			var blobs []*milpb.Value
			dtypes := map[string]milpb.DataType{}
			for k, v := range op.GetAttributes() {
				if v.GetBlobFileValue() != nil {
					blobs = append(blobs, v)
					dtypes[k] = v.GetType().GetTensorType().GetDataType()
				}
			}
			for k, arg := range op.GetInputs() {
				for _, bind := range arg.GetArguments() {
					if v := bind.GetValue(); v.GetBlobFileValue() != nil {
						blobs = append(blobs, v)
						dtypes[k] = v.GetType().GetTensorType().GetDataType()
					}
				}
			}
			for _, nested := range op.GetBlocks() {
				visit(nested)
			}
			if len(blobs) == 0 {
				continue
			}
			var bytes int64
			fresh := false
			for _, v := range blobs {
				bf := v.GetBlobFileValue()
				k := blobKey{bf.GetFileName(), bf.GetOffset()}
				if seen[k] {
					continue
				}
				seen[k] = true
				fresh = true
				if data, err := p.Tensor(v); err == nil {
					bytes += int64(len(data))
				}
			}
			if !fresh {
				continue
			}
			enc := op.GetType()
			switch op.GetType() {
			case "const":
				enc = dtypeName(dtypes["val"])
			case "constexpr_blockwise_shift_scale":
				enc = "blockwise " + dtypeName(dtypes["data"])
			case "constexpr_lut_to_dense":
				enc = "lut " + dtypeName(dtypes["indices"])
			}
			w := byEnc[enc]
			if w == nil {
				w = &weightDoc{Encoding: enc}
				byEnc[enc] = w
			}
			w.Count++
			w.Bytes += bytes
			total += bytes
		}
	}
	prog := p.Model.GetMlProgram()
	for _, name := range sortedNames(prog.GetFunctions()) {
		fn := prog.GetFunctions()[name]
		visit(fn.GetBlockSpecializations()[fn.GetOpset()])
	}
	out := []weightDoc{}
	for _, w := range byEnc {
		out = append(out, *w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Encoding < out[j].Encoding })
	return out, total
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// dtypeName is a MIL dtype as people write it: fp16, int4, uint8 …
func dtypeName(d milpb.DataType) string {
	s := strings.ToLower(d.String())
	s = strings.Replace(s, "float", "fp", 1)
	return s
}

func describeHost(where string) (*hostDoc, error) {
	f, err := gguf.Open(where)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := &hostDoc{Path: where, Architecture: f.Architecture(), Keys: len(f.KVs)}
	if fi, err := os.Stat(where); err == nil {
		h.Bytes = fi.Size()
	}
	h.Name, _ = f.GetString("general.name")
	h.Tokenizer, _ = f.GetString("tokenizer.ggml.model")
	h.Pre, _ = f.GetString("tokenizer.ggml.pre")
	toks, _ := f.GetStrings("tokenizer.ggml.tokens")
	h.Tokens = len(toks)
	for _, k := range []string{"bos", "eos", "eot", "eom", "unknown", "padding", "seperator"} {
		if id, err := f.GetInt("tokenizer.ggml." + k + "_token_id"); err == nil && id >= 0 && id < int64(len(toks)) {
			if h.SpecialTokens == nil {
				h.SpecialTokens = map[string]int64{}
			}
			h.SpecialTokens[k] = id
		}
	}
	if t, err := f.GetString("tokenizer.chat_template"); err == nil {
		h.ChatTemplate = len(t)
	}
	return h, nil
}

func inspectPackageText(w io.Writer, doc *packageDoc) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "path:\t%s\n", doc.Path)
	if doc.Format == mlpackage.ChunkFormat {
		fmt.Fprintf(tw, "format:\tchunked export, %d packages chained by %s\n", len(doc.Packages), contract.HiddenStates)
	} else {
		fmt.Fprintf(tw, "format:\tCore ML model package (ML Program)\n")
	}
	c := doc.Contract
	switch {
	case len(c.Problems) == 0:
		fmt.Fprintf(tw, "contract:\tlilims version %s (this lilims runs %d): ok\n", c.Version, c.Supported)
	default:
		fmt.Fprintf(tw, "contract:\t%s\n", c.Problems[0])
		for _, p := range c.Problems[1:] {
			fmt.Fprintf(tw, "\t%s\n", p)
		}
	}
	if doc.Meta != nil {
		fmt.Fprintf(tw, "interface:\tcontext %d, prefill chunk %d, vocabulary %d\n", doc.Meta.ContextLength, doc.Meta.PrefillChunk, doc.Meta.VocabSize)
	}
	if h := doc.Host; h != nil {
		fmt.Fprintf(tw, "host file:\t%s (%s, %d metadata keys)\n", rel(doc.Path, h.Path), humanBytes(h.Bytes), h.Keys)
		fmt.Fprintf(tw, "\tarchitecture %s", orDash(h.Architecture))
		if h.Name != "" {
			fmt.Fprintf(tw, ", name %q", h.Name)
		}
		fmt.Fprintf(tw, "\n\ttokenizer %s, %d tokens", orDash(h.Tokenizer), h.Tokens)
		if h.Pre != "" {
			fmt.Fprintf(tw, ", pre %s", h.Pre)
		}
		var special []string
		for _, k := range sortedNames(h.SpecialTokens) {
			special = append(special, fmt.Sprintf("%s %d", k, h.SpecialTokens[k]))
		}
		fmt.Fprintf(tw, "; special tokens: %s\n", orDash(strings.Join(special, ", ")))
		if h.ChatTemplate > 0 {
			fmt.Fprintf(tw, "\tchat template: %d bytes\n", h.ChatTemplate)
		} else {
			fmt.Fprintf(tw, "\tchat template: none\n")
		}
	} else {
		fmt.Fprintf(tw, "host file:\tnone (run it through its GGUF)\n")
	}
	tw.Flush()
	for _, p := range doc.Packages {
		fmt.Fprintf(w, "\n%s: specification version %d", rel(doc.Path, p.Path), p.SpecificationVersion)
		if p.DefaultFunction != "" {
			fmt.Fprintf(w, ", default function %s", p.DefaultFunction)
		}
		fmt.Fprintln(w)
		for _, f := range p.Functions {
			fmt.Fprintf(w, "  function %s\n", f.Name)
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, list := range []struct {
				kind string
				fs   []featureDoc
			}{{"input", f.Inputs}, {"output", f.Outputs}, {"state", f.States}} {
				for _, x := range list.fs {
					fmt.Fprintf(tw, "    %s\t%s\t%s\t%v\n", list.kind, x.Name, x.Type, x.Shape)
				}
			}
			tw.Flush()
		}
		fmt.Fprintf(w, "  weights: %s in all, KV state %s per session\n", humanBytes(p.WeightBytes), humanBytes(p.StateBytes))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, wd := range p.Weights {
			fmt.Fprintf(tw, "    %s\t%d weights\t%s\t\n", wd.Encoding, wd.Count, humanBytes(wd.Bytes))
		}
		tw.Flush()
		fmt.Fprintf(w, "  metadata:\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, k := range sortedNames(p.Metadata) {
			fmt.Fprintf(tw, "    %s\t%s\n", k, p.Metadata[k])
		}
		tw.Flush()
		fmt.Fprintf(w, "  items: %s\n", strings.Join(p.Items, ", "))
	}
	return nil
}

// rel is path relative to the inspected path's directory, for shorter lines.
func rel(base, path string) string {
	if r, err := filepath.Rel(filepath.Dir(base), path); err == nil {
		return r
	}
	return path
}
