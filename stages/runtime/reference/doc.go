// Package reference is the pure-Go reference runtime: it executes a Core ML ML Program
// (.mlpackage, MIL program + weights/weight.bin) op by op, so that Linux machines and CI run
// exactly the program Core ML would run.
//
// Everything is prepared once, at Open: the package is read through package mlpackage
// (which checks every weight reference), constants and weight blobs are resolved (blob data
// stays memory-mapped), every op is compiled into a kernel with its input and output buffers
// bound, and an op the runtime does not implement is reported then, naming its type and name.
// A Predict call copies the inputs in, runs the kernels in program order and copies the
// outputs out; PredictInto reuses the caller's output tensors, and then a steady-state call
// allocates nothing (but for the KV states' growth, once every 64 positions).
//
// A KV-cache update — read_state, slice_update of the new rows, write_state of the result —
// runs in place on the state's storage when nothing else reads the old cache, so a decode
// step touches the new rows, not the whole cache; the result is bit for bit what the copying
// ops give. Matmul, linear, softmax and attention split their rows (heads, query positions,
// output channels) over Options.Threads workers.
//
// Attention covers the filled part of the KV state, not the exported context (keys.go): the
// states' position axis is followed from read_state and the causal mask through the
// attention ops at Open, and each call then runs them over the R leading keys the mask
// attends (in blocks of 64); the keys it hides would add exactly 0, so the logits are bit
// for bit those of the whole context. KV states hold the positions written so far and grow
// as they fill, so a long exported context costs neither time nor memory until it is used.
//
// Float ops compute in float32. With Precision FP16Faithful (the default) every op whose
// declared output dtype is fp16 rounds its result to fp16, as Core ML's fp16 backends do;
// with FP32 results stay in float32. States hold fp16 values, as they are declared, kept
// as float32 so that kernels read them in place (KV states: only the rows written so far).
//
// Weights produced by constexpr_blockwise_shift_scale or constexpr_lut_to_dense that feed a
// linear, matmul, 1×1 conv or an axis-0 gather (an embedding table) are never materialised:
// those ops use fused kernels that dequantize the packed int4/LUT data row by row while
// computing dot products, and fp16 weights and scales stay fp16 as mapped, so the memory a
// model takes is about its package's size plus the KV state; Options.HalfWeights instead
// decompresses them to fp16 tensors at Open, as Core ML holds them. (A constexpr_lut_to_dense of
// integer codes feeding a blockwise op, the lut+blockwise form of 2-, 3-, 5- and 6-bit ggml
// quants, is the exception: its codes are expanded to one int8 a weight at Open,
// lutcodes.go.) A single token (decode) goes
// through a fused int4 dot; several tokens (prefill) through a tile that dequantizes two
// rows once and multiplies them with four tokens at a time. On amd64 with AVX2, FMA and F16C
// these inner loops are assembly (kernels_amd64.s); kernels_generic.go is the portable form
// they are tested against and the path elsewhere (or with -tags purego). The float dots of
// decode and prefill add in the same order, so a token's logits do not depend on which
// function computed them.
//
// The package does not compile or validate models for Core ML, nor does it run control flow
// (ops with nested blocks).
package reference
