// Package contract owns the interface between an exported lilims package and the hosts that
// run it: the names of the functions, inputs, states and outputs, the masked-score value of
// the causal mask, how the packages of a chunked export chain, the metadata keys the
// exporter writes and the contract version. It also holds the one checker of that
// interface (Check), which the static validator, the reference runtime and the Core ML
// runtime all use.
//
// It does not build programs (package arch does) nor run them (package runtime); it knows
// only what both sides must agree on. docs/export.md describes the contract for people.
package contract

import "fmt"

// Version is the contract version the exporter writes into the package metadata
// (KeyVersion) and the only one the runtimes accept.
//
//	1: the prefill/decode program with its KV states.
//	2: logits are fp32 with n_vocab entries per token, the metadata carries the
//	   hyper-parameter summary, and the package holds its host file (HostName).
//	3: in the ANE layout a vocabulary over MaxDimension comes as the outputs
//	   logits_0 … logits_{K−1} (LogitsOutputs), which the host joins.
const Version = 3

// The two functions of a package; decode is the default function.
const (
	Prefill = "prefill" // N = the prefill chunk tokens per call
	Decode  = "decode"  // one token per call
)

// Functions lists the contract's functions in the order hosts check them.
var Functions = [...]string{Prefill, Decode}

// Inputs of both functions. A call with N tokens takes
//
//	input_ids    int32 [1, N]           the tokens (first package of a chunked export only)
//	hidden_states fp16 (see HiddenStates) in place of input_ids in every later package
//	position_ids int32 [N]              absolute position of each token
//	causal_mask  fp16  [1, 1, N, C]     0 where key j ≤ position_ids[i], else MaskedScore
//	current_pos  int32 [1]              where the chunk's K/V rows are written
const (
	InputIDs    = "input_ids"
	PositionIDs = "position_ids"
	CausalMask  = "causal_mask"
	CurrentPos  = "current_pos"
)

// Logits is the output of the last package: fp32 [1, N, n_vocab], row i the logits after
// token i. In the ANE layout a vocabulary over MaxDimension is split instead (see
// LogitsOutputs).
const Logits = "logits"

// MaxDimension bounds every dimension of a tensor the Apple Neural Engine holds
// (coremltools' performance guidance): an embedding table or LM head of a 128k–262k
// vocabulary exceeds it, so the ANE layout splits them.
const MaxDimension = 65536

// VocabParts splits a vocabulary of v tokens into the fewest parts of at most MaxDimension
// rows, of equal size rounded up to a multiple of 32 (the last takes the rest): part k is
// rows [b[k], b[k+1]) of the returned bounds b. A vocabulary of at most MaxDimension is one
// part.
func VocabParts(v int) []int {
	k := (v + MaxDimension - 1) / MaxDimension
	if k < 1 {
		k = 1
	}
	r := ((v+k-1)/k + 31) / 32 * 32
	b := []int{0}
	for len(b) <= k {
		b = append(b, min(b[len(b)-1]+r, v))
	}
	return b
}

// LogitsOutputs names the logits outputs of the last package, in vocabulary order: Logits,
// or in the ANE layout with n_vocab > MaxDimension one output per part of VocabParts,
// logits_<k> fp32 [1, N, rows of part k]. The host concatenates them on the last axis
// (JoinLogits) into the [1, N, n_vocab] of Logits.
func LogitsOutputs(layout string, v int) []string {
	if layout != "ane" || v <= MaxDimension {
		return logitsNames(0)
	}
	return logitsNames(len(VocabParts(v)) - 1)
}

// logitsNames is [Logits] for k < 2, else logits_0 … logits_{k−1}.
func logitsNames(k int) []string {
	if k < 2 {
		return []string{Logits}
	}
	names := make([]string, k)
	for i := range names {
		names[i] = fmt.Sprintf("logits_%d", i)
	}
	return names
}

// JoinLogits concatenates the logits parts of n tokens on the last axis into dst
// ([n, Σ parts' widths]): row i of dst is row i of every part in turn.
func JoinLogits(dst []float32, n int, parts [][]float32) {
	off := 0
	for i := 0; i < n; i++ {
		for _, p := range parts {
			w := len(p) / n
			off += copy(dst[off:], p[i*w:(i+1)*w])
		}
	}
}

// HiddenStates and HiddenStatesOut chain the packages of a chunked export: every package but
// the last outputs HiddenStatesOut, fp16 [1, N, n_embd] (standard layout) or
// [1, n_embd, 1, N] (ANE layout), which the next package takes as its input HiddenStates.
const (
	HiddenStates    = "hidden_states"
	HiddenStatesOut = "hidden_states_out"
)

// MaskedScore is the causal-mask value for a key position a query may not see. Apple's
// guidance for transformers on the Neural Engine (ml-ane-transformers) uses −1e4 rather
// than −inf: it is exact in fp16 and, added to any attention score, makes exp underflow to
// zero after the softmax's max-subtraction.
const MaskedScore = -1e4

// KCache and VCache name the fp16 KV states of layer l: [1, n_head_kv, C, head_dim].
func KCache(l int) string { return fmt.Sprintf("k_cache_%d", l) }

// VCache names the V state of layer l (see KCache).
func VCache(l int) string { return fmt.Sprintf("v_cache_%d", l) }

// Metadata keys the exporter writes into the model description's user-defined metadata.
const (
	KeyVersion       = "lilims.contract"       // Version, decimal
	KeyArch          = "lilims.arch"           // general.architecture of the source model
	KeyContextLength = "lilims.context_length" // C
	KeyPrefillChunk  = "lilims.prefill_chunk"  // N of prefill
	KeyVocabSize     = "lilims.vocab_size"     // n_vocab: the last dimension of logits
	KeyLayers        = "lilims.layers"         // n_layer of the model
	KeyLayerRange    = "lilims.layer_range"    // "first-end": the layers this package holds
	KeyLayout        = "lilims.layout"         // standard or ane
	KeySource        = "lilims.source"         // file name of the source GGUF
	KeyHParams       = "lilims.hparams"        // hyper-parameter summary for people
	KeyChunk         = "lilims.chunk"          // index of a chunk (chunked exports only)
	KeyChunks        = "lilims.chunks"         // number of chunks (chunked exports only)
)

// The host file: what a host needs to run the package without its GGUF. It is a GGUF file
// holding the source model's metadata (tokenizer.* with the chat template and special
// tokens, general.*, the architecture's hyper-parameters) and no tensors, listed in
// Manifest.json as an item of author HostAuthor, so it lives at
// Data/HostAuthor/HostName. Core ML's package reader accepts items of any author and needs
// only that each exists (coremltools modelpackage/src/ModelPackage.cpp, validate). In a
// chunked export the first package holds it.
const (
	HostAuthor      = "ai.lilims"
	HostName        = "host.gguf"
	HostDescription = "lilims host data: tokenizer, chat template, hyper-parameters (GGUF metadata)"
)
