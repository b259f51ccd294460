// Package loader is the loader build stage: it opens a GGUF model, checks its header, tensor
// index and hyper-parameters, and hands the file on as an artifact. The GGUF container
// reader lives in package gguf, the block formats in ggml, the tokenizers in tokenizer.
package loader

import (
	"context"
	"fmt"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Spec describes the built-in GGUF loader.
var Spec = stage.Spec{Uses: "loader/gguf", Kind: stage.KindLoader,
	Doc: "Open a GGUF model (v2/v3), validate its header, tensor index and hyper-parameters."}

// GGUF is the loader stage. It does not copy the model: every later stage maps the same file.
type GGUF struct{}

// Build validates req.Source and returns it as a "gguf" artifact.
func (GGUF) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	f, err := gguf.Open(req.Source)
	if err != nil {
		return stage.Artifact{}, err
	}
	defer f.Close()
	meta := map[string]string{"architecture": f.Architecture(),
		"tensors": fmt.Sprint(len(f.Tensors)), "parameters": fmt.Sprint(f.ParameterCount())}
	if req.Report != nil {
		req.Report(stage.Event{Event: "progress", Done: int64(len(f.Tensors)), Total: int64(len(f.Tensors)), Unit: "tensors"})
	}
	return stage.Artifact{Kind: "gguf", Path: req.Source, Meta: meta}, nil
}
