package quantize

import (
	"fmt"
	"math"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/lilims/lilims/pipeline/stage"
)

// Schemes a quantize/int4 stage accepts.
var Schemes = []string{"block", "channel", "lut", "lut4", "gguf", "auto", "none"}

// LUTWidths are the palette index widths (lut_bits) offered: constexpr_lut_to_dense (iOS18)
// takes uint1, uint2, uint3, uint4, uint6 and uint8 indices (coremltools
// mil/ops/defs/iOS18/compression.py), so there are no 5- or 7-bit palettes; a 1-bit one
// (two values per group) is too coarse for weights.
var LUTWidths = []int{2, 3, 4, 6, 8}

// lutWidthList is LUTWidths for messages: "2, 3, 4, 6 or 8".
func lutWidthList() string {
	s := make([]string, len(LUTWidths))
	for i, b := range LUTWidths {
		s[i] = fmt.Sprint(b)
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// lutChoice reads a palette choice, "lut" (the stage's lut_bits) or "lutN", as its index
// width; ok is false for any other choice.
func (c *Config) lutChoice(choice string) (bits int, ok bool) {
	if choice == "lut" {
		return c.LUTBits, true
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(choice, "lut")); err == nil && strings.HasPrefix(choice, "lut") && slices.Contains(LUTWidths, n) {
		return n, true
	}
	return 0, false
}

// Config is a validated quantize/int4 configuration (the stage's `with:` block).
type Config struct {
	Scheme      string     // one of Schemes
	BlockSize   int        // block: elements per block along in (32, 64 or 128)
	Symmetric   bool       // block, channel: signed int4 without offset; else uint4 + uint4 offset
	GroupSize   int        // lut, lut4: output channels per palette (0: the fewest keeping the palettes ≤ 0.25 bit/weight)
	LUTBits     int        // lut: palette index width, one of LUTWidths (lut4: 4)
	MinElements int        // 2-D weights with fewer elements stay fp16
	Overrides   []Override // per-tensor choices, first match wins
	Fallback    string     // gguf: scheme for blocks that cannot be transcoded ("" none: error)
	Strict      bool       // a block or group size that does not divide a tensor is an error
	Search      int        // scale/clipping candidates per block each side of round-to-nearest (0: RTN)
	Calibration string     // text whose activations weight the errors ("" data-free)
	GPTQ        bool       // with a calibration: GPTQ error feedback
	BitsBudget  float64    // mean bits per quantized weight that mixed precision may spend (0: none)
	ActOrder    bool       // GPTQ quantizes columns by decreasing E[x²] (channel and palettes only)
	LUTScale    string     // lut, lut4: "none", or "channel": an fp16 scale per output channel after the palette

	// Activations measured on Calibration (Stage.Build fills it in through its Calibrator);
	// nil quantizes data-free. Not a parameter.
	Activations *Activations
	Threads     int // workers (0: GOMAXPROCS)
}

// Override chooses the encoding of the tensors whose name matches Pattern (path.Match
// syntax: `*` matches any run of characters without '/', so `blk.*.ffn_down.weight` works).
type Override struct {
	Pattern string
	Choice  string // "fp16", "int8", "block", "channel", "lut" (lut_bits), "lut2"…"lut8" (a value "4" means the stage's scheme)
}

// choices an override may name, with their aliases.
var overrideChoices = map[string]string{
	"fp16": "fp16", "f16": "fp16", "16": "fp16",
	"int8": "int8", "8": "int8",
	"block": "block", "channel": "channel", "lut": "lut",
	"int4": "4", "4": "4",
}

func init() {
	for _, b := range LUTWidths {
		overrideChoices[fmt.Sprintf("lut%d", b)] = fmt.Sprintf("lut%d", b)
	}
}

// fallbacks the gguf scheme accepts for blocks it cannot transcode.
var fallbacks = []string{"", "block", "channel", "lut4", "int8", "fp16"}

// Spec describes the quantize/int4 stage.
var Spec = stage.Spec{
	Uses: "quantize/int4",
	Kind: stage.KindQuantize,
	Doc: "Quantize the model's 2-D weights (token_embd, output, attn_*, ffn_*) to INT4 or 2- to 8-bit palettes " +
		"and write weights.safetensors + manifest.json for the exporter's constexpr ops. Norms, biases and " +
		"small tensors stay fp16 and are listed as such. scheme none writes a manifest listing every tensor " +
		"as fp16 and an empty weights file, so the export is the plain fp16 one. With calibration: TEXT the stage " +
		"first measures each weight's input activations by exporting the fp16 model and running it on the reference " +
		"runtime (package stages/quantize/calibrate imports the export stage and the runtime as libraries: a deliberate " +
		"exception to \"stages do not import each other\", so that calibration observes exactly the exported program), " +
		"then quantizes with GPTQ error feedback and activation-weighted searches. On stories260K (little-stories.txt, " +
		"ctx 128) Δppl vs fp16 goes from +11.4/+13.1/+14.2% (block:32, channel, lut4) to +8.7/+4.6/+10.8%, " +
		"+3.7% for channel with symmetric: false (4.28 bits/weight) and +2.1% adding bits_budget: 4.45 (4.45 bits " +
		"per quantized weight); llama.cpp Q4_0: +11.6%, Q4_K_M: +2.9% (docs/quantization-quality.md).",
	Params: []stage.ParamSpec{
		{Name: "scheme", Type: stage.String, Default: "block", Enum: Schemes,
			Doc: "block: int4 per block of block_size along the input dimension (constexpr_blockwise_shift_scale, GPU friendly); " +
				"channel: int4 with one scale per output channel (ANE friendly); lut: 2^lut_bits fp16 values per group of " +
				"group_size output channels found by weighted k-means (constexpr_lut_to_dense, ANE friendly); lut4: lut with " +
				"lut_bits 4; gguf: transcode ggml blocks " +
				"(Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K…Q6_K, IQ4_NL, IQ4_XS) to block-wise int4/int8 without a second rounding " +
				"(docs/quantization.md states each type's bound and byte cost; the arrays are read from the GGUF when the " +
				"package is written, so the weights are written once), other quantized types through fallback, F16/F32 " +
				"tensors kept fp16; auto (the default pipeline's): gguf, with tensors it cannot transcode kept fp16; none: " +
				"every tensor stays fp16"},
		{Name: "block_size", Type: stage.Int, Default: 32, Enum: []string{"32", "64", "128"},
			Doc: "block: elements per scale along the input dimension (32, 64 or 128). A tensor it does not divide " +
				"(stories260K's 172-wide ffn_down) gets the divisor of its width nearest block_size within a factor 2, " +
				"or per-channel scales, noted in the manifest (an error with strict)"},
		{Name: "symmetric", Type: stage.Bool, Default: true,
			Doc: "block, channel: int4 data and no offset (4 + 16/block bits per weight); false: uint4 data with a uint4 " +
				"zero point per block (4 + 20/block bits)"},
		{Name: "group_size", Type: stage.Int, Default: 0,
			Doc: "lut, lut4: output channels sharing one palette; 0 picks per tensor the smallest divisor of the " +
				"output dimension that keeps palettes at ≤ 0.25 bit per weight (a group of ≥ 64·2^lut_bits weights), " +
				"else the whole tensor"},
		{Name: "lut_bits", Type: stage.Int, Default: 4,
			Doc: "lut: palette index width, 2, 3, 4, 6 or 8 bits (4 to 256 fp16 values per group; constexpr_lut_to_dense " +
				"has no 5- or 7-bit indices); lut4 is lut with 4"},
		{Name: "min_elements", Type: stage.Int, Default: 1024,
			Doc: "2-D weights with fewer elements stay fp16 (an override naming them still applies)"},
		{Name: "overrides", Type: stage.Strings,
			Doc: "list of \"GLOB=CHOICE\" (first match wins; GLOB uses path.Match syntax on GGUF tensor names; " +
				"CHOICE: fp16, int8 (or 8), block, channel, lut (lut_bits), lut2, lut3, lut4, lut6, lut8, 4 = the stage's " +
				"scheme), e.g. " +
				"[\"token_embd.weight=8\", \"output.weight=fp16\"]. A glob matching no tensor is a warning"},
		{Name: "fallback", Type: stage.String, Default: "", Enum: fallbacks,
			Doc: "gguf, auto: how to encode tensors whose ggml type cannot be transcoded (dequantized first; fp16 keeps " +
				"ggml's values); empty: such a quantized tensor is an error (auto: fp16), an F32/F16 one stays fp16"},
		{Name: "strict", Type: stage.Bool, Default: false,
			Doc: "make a block_size or group_size that does not divide a tensor an error instead of a noted fallback"},
		{Name: "search", Type: stage.Int, Default: 2,
			Doc: "block, channel: scale (symmetric) or clipping (asymmetric) candidates tried per block on each side " +
				"of round-to-nearest, keeping the one of least importance-weighted squared error; 0: plain " +
				"round-to-nearest (fastest)"},
		{Name: "calibration", Type: stage.Path, Default: "",
			Doc: "path of a text run through the fp16 model (exported and run on the reference runtime) to measure " +
				"each weight's input activations: their second moments weight the scale search and the k-means, and " +
				"their covariance drives GPTQ. Empty: data-free. The build cache keys on the file's contents"},
		{Name: "gptq", Type: stage.Bool, Default: true,
			Doc: "with a calibration: GPTQ error feedback (each rounding error is compensated on the columns not yet " +
				"quantized, minimising the layer's output error on the calibration activations)"},
		{Name: "bits_budget", Type: stage.Float, Default: 0.0,
			Doc: "with a calibration: mixed precision. Tensors climb from the scheme to two scale groups per row " +
				"(channel) or wider palettes (lut: up to 6 bits) and to int8 per channel, most sensitive first (the relative output error each encoding " +
				"leaves on the calibration activations, gained per added bit), while the mean bits per quantized " +
				"weight stays ≤ bits_budget. 0: every tensor keeps the scheme"},
		{Name: "act_order", Type: stage.Bool, Default: false,
			Doc: "with gptq: quantize each row's columns by decreasing activation energy E[x²] (GPTQ's act order), " +
				"for per-channel scales and palettes (block scales must be fixed before their columns are rounded). " +
				"On stories260K it does not pay: see docs/quantization-quality.md"},
		{Name: "lut_scale", Type: stage.String, Default: "none", Enum: []string{"none", "channel"},
			Doc: "lut, lut4: channel divides each output channel by its largest |weight| before the k-means and stores " +
				"that fp16 scale (constexpr_lut_to_dense feeding constexpr_blockwise_shift_scale, 16 bits per row), " +
				"so one palette serves channels of different ranges"},
		{Name: "threads", Type: stage.Int, Default: 0, Doc: "worker goroutines (0: all cores)"},
	},
}

// ParseConfig validates a stage's parameters; every problem is reported before any work.
func ParseConfig(p stage.Params) (*Config, error) {
	known := map[string]bool{}
	for _, ps := range Spec.Params {
		known[ps.Name] = true
	}
	var errs []string
	for k := range p {
		if !known[k] {
			errs = append(errs, fmt.Sprintf("quantize/int4 has no parameter %q", k))
		}
	}
	get := func(name string) any {
		if v, ok := p[name]; ok {
			return v
		}
		ps, _ := Spec.Param(name)
		return ps.Default
	}
	c := &Config{
		Scheme:      asString(get("scheme")),
		BlockSize:   asInt(get("block_size")),
		Symmetric:   get("symmetric") == true,
		GroupSize:   asInt(get("group_size")),
		MinElements: asInt(get("min_elements")),
		Fallback:    asString(get("fallback")),
		Strict:      get("strict") == true,
		Search:      asInt(get("search")),
		Calibration: asString(get("calibration")),
		GPTQ:        get("gptq") == true,
		Threads:     asInt(get("threads")),
		BitsBudget:  asFloat(get("bits_budget")),
		ActOrder:    get("act_order") == true,
		LUTScale:    asString(get("lut_scale")),
		LUTBits:     asInt(get("lut_bits")),
	}
	if !contains(Schemes, c.Scheme) {
		errs = append(errs, fmt.Sprintf("scheme %q is not one of %s", c.Scheme, strings.Join(Schemes, ", ")))
	}
	if c.BlockSize != 32 && c.BlockSize != 64 && c.BlockSize != 128 {
		errs = append(errs, fmt.Sprintf("block_size %d is not 32, 64 or 128", c.BlockSize))
	}
	if c.GroupSize < 0 {
		errs = append(errs, fmt.Sprintf("group_size %d must not be negative", c.GroupSize))
	}
	if c.MinElements < 0 {
		errs = append(errs, fmt.Sprintf("min_elements %d must not be negative", c.MinElements))
	}
	if c.Search < 0 || c.Search > 64 {
		errs = append(errs, fmt.Sprintf("search %d is outside [0, 64]", c.Search))
	}
	if c.BitsBudget < 0 || c.BitsBudget > 16 || math.IsNaN(c.BitsBudget) {
		errs = append(errs, fmt.Sprintf("bits_budget %v is outside [0, 16]", c.BitsBudget))
	}
	if c.BitsBudget > 0 && c.Calibration == "" {
		errs = append(errs, fmt.Sprintf("bits_budget %v needs a calibration text (the tensors are ranked by their error on it)", c.BitsBudget))
	}
	if c.ActOrder && c.Scheme == "block" {
		errs = append(errs, "act_order needs per-channel scales or palettes (scheme channel, lut or lut4), not block scales")
	}
	if c.LUTScale != "none" && c.LUTScale != "channel" {
		errs = append(errs, fmt.Sprintf("lut_scale %q is not none or channel", c.LUTScale))
	}
	if !slices.Contains(LUTWidths, c.LUTBits) {
		msg := fmt.Sprintf("lut_bits %d is not %s", c.LUTBits, lutWidthList())
		if c.LUTBits == 5 || c.LUTBits == 7 {
			msg += fmt.Sprintf(": Core ML's constexpr_lut_to_dense (iOS18) has no %d-bit indices (it takes uint1, uint2, uint3, uint4, uint6, uint8)", c.LUTBits)
		}
		errs = append(errs, msg)
	} else if c.Scheme == "lut4" && c.LUTBits != 4 {
		errs = append(errs, fmt.Sprintf("scheme lut4 is lut with lut_bits 4: for lut_bits %d use scheme lut", c.LUTBits))
	}
	if c.Threads < 0 {
		errs = append(errs, fmt.Sprintf("threads %d must not be negative", c.Threads))
	}
	if c.Threads == 0 {
		c.Threads = runtime.GOMAXPROCS(0)
	}
	if !contains(fallbacks, c.Fallback) {
		errs = append(errs, fmt.Sprintf("fallback %q is not one of block, channel, lut4, int8, fp16", c.Fallback))
	}
	if c.Fallback != "" && c.Scheme != "gguf" && c.Scheme != "auto" {
		errs = append(errs, fmt.Sprintf("fallback %q applies to schemes gguf and auto only, not %s", c.Fallback, c.Scheme))
	}
	var ovs []string
	switch v := get("overrides").(type) {
	case nil:
	case []string:
		ovs = v
	default:
		errs = append(errs, fmt.Sprintf("overrides: %T is not a list of strings", v))
	}
	for _, o := range ovs {
		pat, choice, ok := strings.Cut(o, "=")
		pat, choice = strings.TrimSpace(pat), strings.ToLower(strings.TrimSpace(choice))
		if !ok || pat == "" {
			errs = append(errs, fmt.Sprintf("override %q is not GLOB=CHOICE", o))
			continue
		}
		if _, err := path.Match(pat, ""); err != nil {
			errs = append(errs, fmt.Sprintf("override %q: bad glob: %v", o, err))
			continue
		}
		ch, ok := overrideChoices[choice]
		if !ok {
			errs = append(errs, fmt.Sprintf("override %q: %q is not fp16, int8, 8, block, channel, lut, lut2, lut3, lut4, lut6, lut8 or 4", o, choice))
			continue
		}
		c.Overrides = append(c.Overrides, Override{pat, ch})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("quantize/int4: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// params is the configuration as recorded in the manifest.
func (c *Config) params() map[string]any {
	ovs := make([]string, len(c.Overrides))
	for i, o := range c.Overrides {
		ovs[i] = o.Pattern + "=" + o.Choice
	}
	return map[string]any{
		"scheme": c.Scheme, "block_size": c.BlockSize, "symmetric": c.Symmetric, "group_size": c.GroupSize,
		"min_elements": c.MinElements, "overrides": ovs, "fallback": c.Fallback, "strict": c.Strict,
		"search": c.Search, "calibration": c.Calibration, "gptq": c.GPTQ, "bits_budget": c.BitsBudget, "act_order": c.ActOrder,
		"lut_scale": c.LUTScale, "lut_bits": c.LUTBits,
	}
}

func asString(v any) string { s, _ := v.(string); return s }

// asInt reads an integer parameter (YAML may give it as int, int64 or float64).
func asInt(v any) int { return int(asFloat(v)) }

func asFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Resolving a pipeline runs ParseConfig's checks too, so that `lilims validate` refuses what
// the build would. (Set here, not in Spec's literal: ParseConfig reads Spec.)
func init() {
	Spec.Check = func(p stage.Params) error { _, err := ParseConfig(p); return err }
}
