// Package reference is the pure-Go reference runtime: it executes a Core ML ML Program
// (.mlpackage, MIL program + weights/weight.bin) op by op, so that Linux machines and CI run
// exactly the program Core ML would run.
//
// Everything is prepared once, at Open: constants and weight blobs are resolved (blob data
// stays memory-mapped), every op is compiled into a kernel with its input and output buffers
// bound, and an op the runtime does not implement is reported then, naming its type and name.
// A Predict call copies the inputs in, runs the kernels in program order and copies the
// outputs out; in steady state it allocates nothing but the returned tensors.
//
// Float ops compute in float32. With Precision FP16Faithful (the default) every op whose
// declared output dtype is fp16 rounds its result to fp16, as Core ML's fp16 backends do;
// with FP32 results stay in float32. States are stored as the fp16 tensors they are declared as.
//
// Weights produced by constexpr_blockwise_shift_scale or constexpr_lut_to_dense that feed a
// linear, matmul or 1×1 conv are never materialised: those ops use fused kernels that
// dequantize the packed int4/LUT data row by row while computing dot products.
//
// The package does not compile or validate models for Core ML, nor does it run control flow
// (ops with nested blocks).
package reference
