package coreml

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lilims/lilims/stages/export/mlpackage"
)

// Options are the parameters of OpenOptions.
type Options struct {
	// ComputeUnits is the pipeline's compute_units: cpu_only, cpu_and_gpu, cpu_and_ne or
	// all ("" means all).
	ComputeUnits string
	// Package is the source .mlpackage of a compiled .mlmodelc: the interface (shapes, the
	// context length) is read from it. Unused when the path opened is a package.
	Package string
	// CacheDir is the lilims cache directory (pipeline.DefaultCacheDir). When set, the
	// compiled model lives in it at a path fixed by the package's digest
	// (CompiledCacheDir) and is reused by every later run; a compiled .mlmodelc opened
	// with its Package is copied there once, so that Core ML always loads it from that
	// one path.
	CacheDir string
	// CompileDir is where a package opened directly is compiled when CacheDir is empty.
	// Both empty: a temporary directory removed by Session.Close.
	CompileDir string
	// PrefillThroughDecode loads the decode function only and runs prompts through it one
	// token at a time. Core ML loads each function of a multifunction model as a model of
	// its own, and memory grows with each (coremltools issue 2351), so loading one holds
	// the weights once, at the cost of prompt speed. lilims verify reports the resident
	// memory of both ways.
	PrefillThroughDecode bool
}

// openWith is Open over any framework: it resolves what to compile and load, reads the
// package interfaces, loads both functions of every package and checks them with one
// prediction each. Every input problem is reported before the framework is asked to do
// anything.
func openWith(fw framework, path string, opts Options) (*Session, error) {
	units, err := ParseComputeUnits(opts.ComputeUnits)
	if err != nil {
		return nil, err
	}
	var pkgs []string
	seed := "" // a model compiled already, for the one package
	switch ext := strings.ToLower(filepath.Ext(strings.TrimRight(path, `/`))); {
	case ext == ".mlmodelc":
		if opts.Package == "" {
			return nil, fmt.Errorf("coreml: %s is compiled; lilims also needs its source .mlpackage for the model interface (Options.Package)", path)
		}
		seed, pkgs = path, []string{opts.Package}
	case ext == ".mlpackage":
		pkgs = []string{path}
	case mlpackage.IsChunked(path):
		if pkgs, err = mlpackage.PackagesAt(path); err != nil {
			return nil, fmt.Errorf("coreml: %w", err)
		}
	default:
		return nil, fmt.Errorf("coreml: %s is neither an .mlpackage, a compiled .mlmodelc nor a chunked export (a directory with %s)", path, mlpackage.ChunkIndexFile)
	}
	for _, p := range append([]string{seed}, pkgs...) {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("coreml: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("coreml: %s is not a directory (packages and compiled models are directories)", p)
		}
	}
	its, err := ReadInterfaces(pkgs)
	if err != nil {
		return nil, fmt.Errorf("coreml: %s: %w", path, err)
	}

	rep := OpenReport{Emulated: isEmulated(fw), Units: units, CacheHit: true}
	var cleanups []func() error
	cleanup := func() error {
		var errs []error
		for _, c := range cleanups {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}
	start := time.Now()
	compiled := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		var hit bool
		sub := "" // chunks are compiled side by side, one subdirectory each
		if len(pkgs) > 1 {
			sub = fmt.Sprintf("chunk_%d", i)
		}
		compiled[i], hit, err = compiledModel(fw, pkg, seed, sub, opts, &cleanups)
		if err != nil {
			cleanup()
			return nil, err
		}
		rep.CacheHit = rep.CacheHit && hit
	}
	rep.Compiled, rep.Compile = compiled, time.Since(start)
	start = time.Now()
	b, err := newBackend(fw, compiled, its, units, opts.PrefillThroughDecode)
	if err == nil {
		var s *Session
		if s, err = newSession(b); err == nil {
			rep.Load = time.Since(start)
			s.cleanup, s.Report = cleanup, rep
			return s, nil
		}
	}
	cleanup()
	return nil, err
}

// compiledModel returns the compiled model of pkg: from the cache (opts.CacheDir), as
// given (seed, without a cache), or compiled into opts.CompileDir or a temporary directory
// that a function added to cleanups removes, in its subdirectory sub.
func compiledModel(fw framework, pkg, seed, sub string, opts Options, cleanups *[]func() error) (string, bool, error) {
	switch {
	case opts.CacheDir != "":
		return cachedModel(fw, pkg, seed, opts.CacheDir)
	case seed != "":
		return seed, true, nil
	}
	dir := opts.CompileDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "lilims-coreml-"); err != nil {
			return "", false, fmt.Errorf("coreml: %w", err)
		}
		*cleanups = append(*cleanups, func() error { return os.RemoveAll(dir) })
	}
	if sub != "" {
		dir = filepath.Join(dir, sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", false, fmt.Errorf("coreml: %w", err)
		}
	}
	compiled, err := fw.compileModel(pkg, dir)
	if err != nil {
		return "", false, fmt.Errorf("coreml: compile %s: %w", pkg, err)
	}
	return compiled, false, nil
}

// OpenReport says what opening a session did and how long it took.
type OpenReport struct {
	Emulated bool          // the reference runtime answered the Core ML calls (OpenEmulated)
	Units    ComputeUnits  // the compute units the functions were loaded with
	Compiled []string      // the compiled models loaded, one per package
	CacheHit bool          // the compiled model was already there: no compilation ran
	Compile  time.Duration // compiling (or finding) the compiled model
	Load     time.Duration // loading both functions and the first prediction of each
}
