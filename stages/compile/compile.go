// Package compile is the compile build stage. On every OS it statically validates the
// exported ML Program — every op type- and shape-checked against the op signatures, as Core
// ML's compiler does first — and on macOS it then runs `xcrun coremlcompiler` to produce the
// .mlmodelc that Core ML loads.
//
// A chunked export (a directory holding chunks.json and one package per run of layers) is
// validated package by package, with the hidden-state chain between them, and passed on as
// it is: the Core ML runtime compiles each of its packages into the lilims cache when it
// first opens the directory (stages/runtime/coreml, CompiledCacheDir).
package compile

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// Spec describes the built-in compile stage.
var Spec = stage.Spec{Uses: "compile/coreml", Kind: stage.KindCompile,
	Doc: "Validate the ML Program statically (every OS); on macOS also compile it with xcrun coremlcompiler.",
	Params: []stage.ParamSpec{
		{Name: "coremlcompiler", Type: stage.String, Default: "auto", Enum: []string{"auto", "always", "never"},
			Doc: "auto: compile when xcrun coremlcompiler is available (macOS); always: fail without it; never: validate only"},
	}}

// Stage is the compile stage.
type Stage struct{}

// Build validates the package and, where asked and possible, compiles it.
func (Stage) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	in, ok := req.Input("mlpackage")
	if !ok {
		return stage.Artifact{}, fmt.Errorf("compile needs a .mlpackage from an export stage")
	}
	mode := req.Params.String("coremlcompiler")
	if err := ValidateExport(in.Path); err != nil {
		return stage.Artifact{}, err
	}
	if mlpackage.IsChunked(in.Path) {
		if mode == "always" {
			return stage.Artifact{}, fmt.Errorf("compile: %s is a chunked export; coremlcompiler: always compiles single packages only (the Core ML runtime compiles the chunks of a chunked export itself, into its cache): use coremlcompiler: auto, or export with chunks: 1", in.Path)
		}
		meta := map[string]string{"validated": "true"}
		if n, ok := in.Meta["chunks"]; ok {
			meta["chunks"] = n
		}
		return stage.Artifact{Kind: "mlpackage", Path: in.Path, Meta: meta}, nil
	}
	if mode == "never" || (mode == "auto" && !compilerAvailable()) {
		return stage.Artifact{Kind: "mlpackage", Path: in.Path, Meta: map[string]string{"validated": "true"}}, nil
	}
	out, err := compileModel(ctx, in.Path, req.OutDir)
	if err != nil {
		return stage.Artifact{}, err
	}
	return stage.Artifact{Kind: "mlmodelc", Path: out, Meta: map[string]string{"package": in.Path}}, nil
}

// Validate opens a Core ML package and checks what Core ML checks when it loads one: every
// item of the manifest exists, the program type-checks and the model description matches
// the program. Every problem is reported, one per line. It does not check the lilims
// contract (ValidateExport does).
func Validate(pkgDir string) error {
	pkg, err := mlpackage.Open(pkgDir)
	if err != nil {
		return err
	}
	defer pkg.Close()
	errs := append(pkg.CheckItems(), CheckModel(pkg.Model)...)
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return &ValidationError{Path: pkgDir, Problems: msgs}
}

// ValidationError lists what the static validator found.
type ValidationError struct {
	Path     string
	Problems []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s: invalid ML Program (%d problems):\n  %s", e.Path, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// ErrNoCompiler is returned when compilation is required but xcrun coremlcompiler is absent.
var ErrNoCompiler = errors.New("xcrun coremlcompiler is not available (it needs macOS with the Xcode command line tools)")

// compilerArgs is the xcrun command line that compiles pkg into outDir.
func compilerArgs(pkg, outDir string) []string {
	return []string{"coremlcompiler", "compile", pkg, outDir}
}
