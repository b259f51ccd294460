package quantize

import "github.com/lilims/lilims/stages/quantize/qweights"

// The artifact format is package qweights; these names keep the stage's vocabulary.
const (
	ManifestFile = qweights.ManifestFile
	WeightsFile  = qweights.WeightsFile
	Blockwise    = qweights.Blockwise
	LUT          = qweights.LUT
	LUTBlockwise = qweights.LUTBlockwise
	FP16         = qweights.FP16
)

type (
	Manifest   = qweights.Manifest
	TensorInfo = qweights.TensorInfo
	Set        = qweights.Set
	Tensor     = qweights.Tensor
)

// Open opens a quantized artifact directory (qweights.Open).
func Open(dir string) (*Set, error) { return qweights.Open(dir) }

func packedBytes(n int) int { return (n + 1) / 2 }
