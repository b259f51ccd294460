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
const Version = 2

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
// token i.
const Logits = "logits"

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
