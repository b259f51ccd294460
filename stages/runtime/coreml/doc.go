// Package coreml runs an exported lilims package — one .mlpackage or the packages of a
// chunked export — through Apple's Core ML: on the Neural Engine, the GPU or the CPU of a
// Mac (macOS 15 or later, for stateful multifunction ML Programs: Core ML specification 9).
//
// The package has two layers. The thin one, in the darwin-only files, binds Core ML through
// purego and purego/objc without cgo: every class, selector and enum value it uses is taken
// from Apple's Core ML documentation (cited beside each), plus a handful of long-stable
// Foundation selectors (NSString, NSNumber, NSArray, NSDictionary, NSURL, NSError) listed
// in objc_darwin.go. Everything that does not need the framework lives in portable files
// and runs on every OS against an emulated framework whose calls the reference runtime
// answers (OpenEmulated; lilims verify uses it off macOS): compute-unit parsing,
// MLMultiArray data types, shapes and strides, the marshalling of the prefill/decode
// inputs and of the hidden states between chunks, the check of the package interface and
// contract version, reading (possibly strided, fp16 or fp32) logits, the compiled-model
// cache, and the translation of NSError values into Go errors that name the call.
//
// A Backend implements runtime.Backend, so runtime.NewSession gives the host's generation
// loop. Open (darwin) compiles each package once into the lilims cache (CompiledCacheDir),
// loads the prefill and decode functions with the requested compute units, and checks both
// with one prediction before returning. Elsewhere Open returns an error wrapping
// ErrUnavailable.
//
// Beside running, the package describes: CheckStatic compares a package with documented
// Neural Engine limits (static checks, not a measurement), and LoadComputePlan (darwin,
// MLComputePlan) reports where Core ML would run each op and at what estimated cost.
//
// Core ML runs in the caller's process here. A wrong call signature or an uncaught
// Objective-C exception ends that process, so the host should run this runtime in a plugin
// process (pipeline/builtin runs runtime/coreml as a plugin on macOS); the package itself
// knows nothing of plugins.
package coreml
