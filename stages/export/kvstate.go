package export

import (
	"fmt"

	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// KVStateBytes is the size of the KV state a package exported from cfg with context c
// declares: one K and one V state per layer, fp16 [1, n_head_kv, c, head_dim] (see
// arch.NewFunc). Core ML allocates it whole; the reference runtime holds the positions a
// session has filled, in float32 (twice these bytes per position).
func KVStateBytes(cfg *arch.Config, c int) int64 {
	return 2 * int64(cfg.BlockCount) * int64(cfg.HeadCountKV) * int64(c) * int64(cfg.KeyLength+cfg.ValueLength)
}

// PackageKVState reads the states a built package (or the chunks of a chunked export)
// declares and returns their size in bytes and the exported context (their third axis).
func PackageKVState(path string) (bytes int64, context int, err error) {
	pkgs, err := mlpackage.PackagesAt(path)
	if err != nil {
		return 0, 0, err
	}
	for _, dir := range pkgs {
		p, err := mlpackage.Open(dir)
		if err != nil {
			return 0, 0, err
		}
		d := p.Model.GetDescription()
		states := d.GetState()
		if fs := d.GetFunctions(); len(fs) > 0 {
			states = fs[0].GetState() // the functions of a package share its states
		}
		for _, s := range states {
			arr := s.GetType().GetStateType().GetArrayType()
			n := int64(2) // fp16
			if arr.GetDataType() == milpb.ArrayFeatureType_FLOAT32 {
				n = 4
			}
			for _, x := range arr.GetShape() {
				n *= x
			}
			if sh := arr.GetShape(); len(sh) == 4 {
				context = int(sh[2])
			}
			bytes += n
		}
		if err := p.Close(); err != nil {
			return 0, 0, err
		}
	}
	if context == 0 {
		return 0, 0, fmt.Errorf("%s declares no KV state", path)
	}
	return bytes, context, nil
}
