package coreml

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Options are the parameters of OpenOptions.
type Options struct {
	// ComputeUnits is the pipeline's compute_units: cpu_only, cpu_and_gpu, cpu_and_ne or
	// all ("" means all).
	ComputeUnits string
	// Package is the source .mlpackage of a compiled .mlmodelc: the interface (shapes, the
	// context length) is read from it. Unused when the path opened is a package.
	Package string
	// CompileDir is where a package opened directly is compiled. Empty: a temporary
	// directory removed by Session.Close.
	CompileDir string
}

// openWith is Open over any framework: it resolves what to compile and load, reads the
// package interface, loads both functions and checks them with one prediction each. Every
// input problem is reported before the framework is asked to do anything.
func openWith(fw framework, path string, opts Options) (*Session, error) {
	units, err := ParseComputeUnits(opts.ComputeUnits)
	if err != nil {
		return nil, err
	}
	pkg, compiled := "", ""
	switch ext := strings.ToLower(filepath.Ext(strings.TrimRight(path, `/`))); ext {
	case ".mlmodelc":
		compiled = path
		pkg = opts.Package
		if pkg == "" {
			return nil, fmt.Errorf("coreml: %s is compiled; lilims also needs its source .mlpackage for the model interface (Options.Package)", path)
		}
	case ".mlpackage":
		pkg = path
	default:
		return nil, fmt.Errorf("coreml: %s is neither an .mlpackage nor a compiled .mlmodelc", path)
	}
	for _, p := range []string{pkg, compiled} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("coreml: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("coreml: %s is not a directory (packages and compiled models are directories)", p)
		}
	}
	it, err := ReadInterface(pkg)
	if err != nil {
		return nil, err
	}
	var cleanup func() error
	if compiled == "" {
		dir := opts.CompileDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "lilims-coreml-"); err != nil {
				return nil, fmt.Errorf("coreml: %w", err)
			}
			cleanup = func() error { return os.RemoveAll(dir) }
		}
		compiled, err = fw.compileModel(pkg, dir)
		if err != nil {
			if cleanup != nil {
				cleanup()
			}
			return nil, fmt.Errorf("coreml: compile %s: %w", pkg, err)
		}
	}
	b, err := newBackend(fw, compiled, it, units)
	if err == nil {
		var s *Session
		if s, err = newSession(b); err == nil {
			s.cleanup = cleanup
			return s, nil
		}
	}
	if cleanup != nil {
		cleanup()
	}
	return nil, err
}
