package reference

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/lilims/lilims/stages/runtime/reference/npy"
)

// PredictFiles runs function fn ("" = default) of the package at pkgDir on inputs read from
// .npy files (input name → path) and writes each output to outDir/NAME.npy. If the function
// has states, they start from stateIn/NAME.npy when stateIn is set (zeros otherwise) and
// are written to stateOut/NAME.npy when stateOut is set. It is what `lilims predict` calls.
func PredictFiles(pkgDir, fn string, inputs map[string]string, stateIn, stateOut, outDir string) error {
	m, err := Open(pkgDir, Options{})
	if err != nil {
		return err
	}
	defer m.Close()
	in := map[string]*Tensor{}
	for name, path := range inputs {
		a, err := npy.ReadFile(path)
		if err != nil {
			return fmt.Errorf("input %q: %w", name, err)
		}
		if in[name], err = tensorFromNpy(a); err != nil {
			return fmt.Errorf("input %q: %s: %w", name, path, err)
		}
	}
	st, err := m.NewState(fn)
	if err != nil {
		return err
	}
	if stateIn != "" {
		for _, name := range st.Names() {
			path := filepath.Join(stateIn, name+".npy")
			a, err := npy.ReadFile(path)
			if err != nil {
				return fmt.Errorf("state %q: %w", name, err)
			}
			t, err := tensorFromNpy(a)
			if err != nil {
				return fmt.Errorf("state %q: %s: %w", name, path, err)
			}
			if err := st.Set(name, t); err != nil {
				return err
			}
		}
	}
	out, err := m.Predict(fn, in, st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	for name, t := range out {
		if err := npy.WriteFile(filepath.Join(outDir, name+".npy"), tensorToNpy(t)); err != nil {
			return err
		}
	}
	if stateOut != "" {
		if err := os.MkdirAll(stateOut, 0o755); err != nil {
			return err
		}
		for _, name := range st.Names() {
			t, _ := st.Get(name)
			if err := npy.WriteFile(filepath.Join(stateOut, name+".npy"), tensorToNpy(t)); err != nil {
				return err
			}
		}
	}
	return nil
}

// tensorFromNpy converts an array: f2 → Float16, f4/f8 → Float32, i4/i8/u1/i1 → Int32 (an
// i8 value outside int32 is an error), b1 → Bool.
func tensorFromNpy(a *npy.Array) (*Tensor, error) {
	n := a.Len()
	shape := append([]int{}, a.Shape...)
	switch a.Dtype {
	case npy.Float16:
		v := make([]float32, n)
		for i := range v {
			v[i] = halfToFloat(binary.LittleEndian.Uint16(a.Data[2*i:]))
		}
		return &Tensor{DType: Float16, Shape: shape, f32: v}, nil
	case npy.Float32, npy.Float64:
		v := make([]float32, n)
		for i, f := range a.Float64s() {
			v[i] = float32(f)
		}
		return &Tensor{DType: Float32, Shape: shape, f32: v}, nil
	case npy.Bool:
		v := make([]bool, n)
		for i := range v {
			v[i] = a.Data[i] != 0
		}
		return &Tensor{DType: Bool, Shape: shape, b: v}, nil
	default:
		v := make([]int32, n)
		for i, f := range a.Float64s() {
			if f > math.MaxInt32 || f < math.MinInt32 {
				return nil, fmt.Errorf("element %d = %v overflows int32", i, f)
			}
			v[i] = int32(f)
		}
		return &Tensor{DType: Int32, Shape: shape, i32: v}, nil
	}
}

// tensorToNpy writes Float16 as '<f2', Float32 as '<f4', Int32 as '<i4', Bool as '|b1'.
func tensorToNpy(t *Tensor) *npy.Array {
	n := t.Len()
	a := &npy.Array{Shape: append([]int{}, t.Shape...)}
	switch t.DType {
	case Float16:
		a.Dtype, a.Data = npy.Float16, make([]byte, 2*n)
		for i, v := range t.Float32s() {
			binary.LittleEndian.PutUint16(a.Data[2*i:], floatToHalf(v))
		}
	case Int32:
		a.Dtype, a.Data = npy.Int32, make([]byte, 4*n)
		for i, v := range t.i32 {
			binary.LittleEndian.PutUint32(a.Data[4*i:], uint32(v))
		}
	case Bool:
		a.Dtype, a.Data = npy.Bool, make([]byte, n)
		for i, v := range t.b {
			if v {
				a.Data[i] = 1
			}
		}
	default:
		a.Dtype, a.Data = npy.Float32, make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(a.Data[4*i:], math.Float32bits(float32(t.Float64At(i))))
		}
	}
	return a
}
