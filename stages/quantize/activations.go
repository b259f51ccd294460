package quantize

import (
	"context"

	"github.com/lilims/lilims/stages/loader/gguf"
)

// Activations are the statistics of the activations that reach each 2-D weight while the
// model reads a calibration text (package calibrate measures them). They weight the error
// every codec minimises — a weight whose input feature is often large matters more — and
// give GPTQ its Hessian.
type Activations struct {
	Tokens int                    // tokens run through the model
	Inputs map[string]*InputStats // per GGUF weight name; weights reading one activation share it
}

// InputStats describe the activation x a weight W reads (y = x·Wᵀ).
type InputStats struct {
	Dim  int // input features
	Rows int // activation rows observed (tokens)
	// SecondMoment[i] is the mean of x_i² over the rows: the diagonal of Hessian.
	SecondMoment []float64
	// Hessian is the Dim×Dim row-major mean of x·xᵀ, or nil when it was too large to keep.
	Hessian []float64
}

// Calibrator measures the activations of f on the calibration text at path. The quantize
// stage takes one as a dependency (Stage.Calibrate) because measuring runs the exported
// model, and this package may not import the exporter, which imports it.
type Calibrator func(ctx context.Context, f *gguf.File, path string) (*Activations, error)
