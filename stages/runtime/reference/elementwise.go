package reference

import (
	"fmt"
	"math"
)

func errShape(name string, got []int, want string, args ...any) error {
	return fmt.Errorf("%s has shape %v, want %s", name, got, fmt.Sprintf(want, args...))
}

// broadcastShapes appends to dst the NumPy broadcast of a and b.
func broadcastShapes(dst, a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	dst = dst[:0]
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			dst = append(dst, da)
		case da == 1:
			dst = append(dst, db)
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return dst, nil
}

// bcastIter walks the flat indices of two operands broadcast to an output shape.
type bcastIter struct {
	out        []int
	xs, ys     [8]int // strides of x and y in output dims (0 where broadcast)
	idx        [8]int
	sameShapes bool
}

func (it *bcastIter) init(out, x, y []int) {
	it.out = out
	it.sameShapes = sameShape(x, y) && sameShape(x, out)
	stride := func(s *[8]int, sh []int) {
		acc := 1
		for d := len(out) - 1; d >= 0; d-- {
			j := d - (len(out) - len(sh))
			if j < 0 || sh[j] == 1 {
				s[d] = 0
			} else {
				s[d] = acc
			}
			if j >= 0 {
				acc *= sh[j]
			}
		}
	}
	stride(&it.xs, x)
	stride(&it.ys, y)
}

// each calls f(i, xi, yi) for every output index i.
func (it *bcastIter) each(f func(i, xi, yi int)) {
	n := numElements(it.out)
	if it.sameShapes {
		for i := 0; i < n; i++ {
			f(i, i, i)
		}
		return
	}
	r := len(it.out)
	idx := it.idx[:r]
	clear(idx)
	xi, yi := 0, 0
	for i := 0; i < n; i++ {
		f(i, xi, yi)
		for d := r - 1; d >= 0; d-- {
			idx[d]++
			xi += it.xs[d]
			yi += it.ys[d]
			if idx[d] < it.out[d] {
				break
			}
			xi -= it.xs[d] * it.out[d]
			yi -= it.ys[d] * it.out[d]
			idx[d] = 0
		}
	}
}

var binaryFloat = map[string]func(a, b float32) float32{
	"add":      func(a, b float32) float32 { return a + b },
	"sub":      func(a, b float32) float32 { return a - b },
	"mul":      func(a, b float32) float32 { return a * b },
	"real_div": func(a, b float32) float32 { return a / b },
	"pow":      func(a, b float32) float32 { return float32(math.Pow(float64(a), float64(b))) },
	"maximum":  func(a, b float32) float32 { return max(a, b) },
	"minimum":  func(a, b float32) float32 { return min(a, b) },
	"floor_div": func(a, b float32) float32 {
		return float32(math.Floor(float64(a / b)))
	},
	"mod": func(a, b float32) float32 { return a - b*float32(math.Floor(float64(a/b))) },
}

var binaryInt = map[string]func(a, b int32) int32{
	"add":     func(a, b int32) int32 { return a + b },
	"sub":     func(a, b int32) int32 { return a - b },
	"mul":     func(a, b int32) int32 { return a * b },
	"maximum": func(a, b int32) int32 { return max(a, b) },
	"minimum": func(a, b int32) int32 { return min(a, b) },
	"real_div": func(a, b int32) int32 {
		if b == 0 {
			return 0
		}
		return a / b
	},
	"floor_div": func(a, b int32) int32 {
		if b == 0 {
			return 0
		}
		q := a / b
		if (a%b != 0) && ((a < 0) != (b < 0)) {
			q--
		}
		return q
	},
	"pow": func(a, b int32) int32 { return int32(math.Pow(float64(a), float64(b))) },
}

var compare = map[string]func(a, b float64) bool{
	"equal":         func(a, b float64) bool { return a == b },
	"not_equal":     func(a, b float64) bool { return a != b },
	"less":          func(a, b float64) bool { return a < b },
	"less_equal":    func(a, b float64) bool { return a <= b },
	"greater":       func(a, b float64) bool { return a > b },
	"greater_equal": func(a, b float64) bool { return a >= b },
}

var logical = map[string]func(a, b bool) bool{
	"logical_and": func(a, b bool) bool { return a && b },
	"logical_or":  func(a, b bool) bool { return a || b },
	"logical_xor": func(a, b bool) bool { return a != b },
}

func compileBinary(o *opCtx) (func() error, error) {
	x, err := o.tensor("x")
	if err != nil {
		return nil, err
	}
	y, err := o.tensor("y")
	if err != nil {
		return nil, err
	}
	out, err := o.output(0)
	if err != nil {
		return nil, err
	}
	var it bcastIter
	var sh [8]int
	prep := func() error {
		s, err := broadcastShapes(sh[:0], x.Shape, y.Shape)
		if err != nil {
			return err
		}
		if len(s) > 8 {
			return fmt.Errorf("rank %d exceeds 8", len(s))
		}
		out.setShape(s)
		it.init(out.Shape, x.Shape, y.Shape)
		return nil
	}
	if f, ok := compare[o.typ]; ok {
		if out.DType != Bool {
			return nil, o.errf("output must be bool")
		}
		return func() error {
			if err := prep(); err != nil {
				return err
			}
			it.each(func(i, xi, yi int) { out.b[i] = f(x.Float64At(xi), y.Float64At(yi)) })
			return nil
		}, nil
	}
	if f, ok := logical[o.typ]; ok {
		if x.DType != Bool || y.DType != Bool || out.DType != Bool {
			return nil, o.errf("operands must be bool")
		}
		return func() error {
			if err := prep(); err != nil {
				return err
			}
			it.each(func(i, xi, yi int) { out.b[i] = f(x.b[xi], y.b[yi]) })
			return nil
		}, nil
	}
	if x.DType != y.DType && !(x.DType.IsFloat() && y.DType.IsFloat()) {
		return nil, o.errf("x is %v but y is %v", x.DType, y.DType)
	}
	switch {
	case out.DType.IsFloat() && x.DType.IsFloat():
		f := binaryFloat[o.typ]
		if f == nil {
			return nil, o.errf("not defined on floats")
		}
		// The common cases get plain loops: same shape, or y a scalar.
		return func() error {
			if err := prep(); err != nil {
				return err
			}
			xv, yv, ov := x.f32, y.f32, out.f32
			switch {
			case it.sameShapes && o.typ == "add":
				for i := range ov {
					ov[i] = xv[i] + yv[i]
				}
			case it.sameShapes && o.typ == "mul":
				for i := range ov {
					ov[i] = xv[i] * yv[i]
				}
			case len(yv) == 1 && len(xv) == len(ov):
				b := yv[0]
				for i := range ov {
					ov[i] = f(xv[i], b)
				}
			default:
				it.each(func(i, xi, yi int) { ov[i] = f(xv[xi], yv[yi]) })
			}
			return nil
		}, nil
	case out.DType == Int32 && x.DType == Int32:
		f := binaryInt[o.typ]
		if f == nil {
			return nil, o.errf("not defined on int32")
		}
		return func() error {
			if err := prep(); err != nil {
				return err
			}
			it.each(func(i, xi, yi int) { out.i32[i] = f(x.i32[xi], y.i32[yi]) })
			return nil
		}, nil
	}
	return nil, o.errf("unsupported dtypes %v, %v → %v", x.DType, y.DType, out.DType)
}

func compileSelect(o *opCtx) (func() error, error) {
	cond, err := o.tensor("cond")
	if err != nil {
		return nil, err
	}
	a, err := o.tensor("a")
	if err != nil {
		return nil, err
	}
	b, err := o.tensor("b")
	if err != nil {
		return nil, err
	}
	out, err := o.output(0)
	if err != nil {
		return nil, err
	}
	if cond.DType != Bool || a.DType != out.DType && !(a.DType.IsFloat() && out.DType.IsFloat()) {
		return nil, o.errf("cond must be bool and a/b match the output dtype")
	}
	var s1, s2 [8]int
	return func() error {
		ab, err := broadcastShapes(s1[:0], a.Shape, b.Shape)
		if err != nil {
			return err
		}
		s, err := broadcastShapes(s2[:0], cond.Shape, ab)
		if err != nil {
			return err
		}
		out.setShape(s)
		for i := range out.Len() {
			ci := bcastIndex(i, out.Shape, cond.Shape)
			src, j := b, bcastIndex(i, out.Shape, b.Shape)
			if cond.b[ci] {
				src, j = a, bcastIndex(i, out.Shape, a.Shape)
			}
			switch {
			case out.DType.IsFloat():
				out.f32[i] = src.Float32s()[j]
			case out.DType == Int32:
				out.i32[i] = src.i32[j]
			default:
				out.b[i] = src.b[j]
			}
		}
		return nil
	}, nil
}

// bcastIndex maps flat index i of shape out to the flat index of an operand of shape sh
// broadcast against it.
func bcastIndex(i int, out, sh []int) int {
	off, mul := 0, 1
	for d := len(out) - 1; d >= 0; d-- {
		c := i % out[d]
		i /= out[d]
		j := d - (len(out) - len(sh))
		if j < 0 {
			break
		}
		if sh[j] != 1 {
			off += c * mul
		}
		mul *= sh[j]
	}
	return off
}

var unaryFloat = map[string]func(x float32) float32{
	"sqrt":     func(x float32) float32 { return float32(math.Sqrt(float64(x))) },
	"exp":      func(x float32) float32 { return float32(math.Exp(float64(x))) },
	"exp2":     func(x float32) float32 { return float32(math.Exp2(float64(x))) },
	"log":      func(x float32) float32 { return float32(math.Log(float64(x))) },
	"tanh":     func(x float32) float32 { return float32(math.Tanh(float64(x))) },
	"square":   func(x float32) float32 { return x * x },
	"abs":      func(x float32) float32 { return float32(math.Abs(float64(x))) },
	"sin":      func(x float32) float32 { return float32(math.Sin(float64(x))) },
	"cos":      func(x float32) float32 { return float32(math.Cos(float64(x))) },
	"erf":      func(x float32) float32 { return float32(math.Erf(float64(x))) },
	"floor":    func(x float32) float32 { return float32(math.Floor(float64(x))) },
	"ceil":     func(x float32) float32 { return float32(math.Ceil(float64(x))) },
	"round":    func(x float32) float32 { return float32(math.RoundToEven(float64(x))) },
	"sign":     func(x float32) float32 { return sign32(x) },
	"relu":     func(x float32) float32 { return max(x, 0) },
	"sigmoid":  func(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) },
	"silu":     func(x float32) float32 { return float32(float64(x) / (1 + math.Exp(-float64(x)))) },
	"identity": func(x float32) float32 { return x },
}

func sign32(x float32) float32 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

func compileUnary(o *opCtx) (func() error, error) {
	x, err := o.tensor("x")
	if err != nil {
		return nil, err
	}
	out, err := o.output(0)
	if err != nil {
		return nil, err
	}
	if x.DType == Int32 && out.DType == Int32 && (o.typ == "abs" || o.typ == "square" || o.typ == "identity") {
		return func() error {
			out.setShape(x.Shape)
			for i, v := range x.i32 {
				switch o.typ {
				case "abs":
					out.i32[i] = max(v, -v)
				case "square":
					out.i32[i] = v * v
				default:
					out.i32[i] = v
				}
			}
			return nil
		}, nil
	}
	if o.typ == "identity" && x.DType == out.DType {
		return func() error {
			out.setShape(x.Shape)
			switch x.DType {
			case Bool:
				copy(out.b, x.b)
			case Int32:
				copy(out.i32, x.i32)
			default:
				copy(out.f32, x.f32)
			}
			return nil
		}, nil
	}
	if !x.DType.IsFloat() || !out.DType.IsFloat() {
		return nil, o.errf("x is %v, want fp16/fp32", x.DType)
	}
	f := unaryFloat[o.typ]
	switch o.typ {
	case "rsqrt", "inverse":
		def := float32(1e-12)
		if o.typ == "inverse" {
			def = 1e-4
		}
		eps, err := o.constFloat("epsilon", def)
		if err != nil {
			return nil, err
		}
		if o.typ == "rsqrt" {
			f = func(x float32) float32 { return float32(1 / math.Sqrt(float64(x+eps))) }
		} else {
			f = func(x float32) float32 { return 1 / (x + eps) }
		}
	case "gelu":
		mode, err := o.constString("mode", "EXACT")
		if err != nil {
			return nil, err
		}
		switch mode {
		case "EXACT":
			f = func(x float32) float32 { v := float64(x); return float32(0.5 * v * (1 + math.Erf(v/math.Sqrt2))) }
		case "TANH_APPROXIMATION":
			f = func(x float32) float32 {
				v := float64(x)
				return float32(0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v))))
			}
		case "SIGMOID_APPROXIMATION":
			f = func(x float32) float32 { v := float64(x); return float32(v / (1 + math.Exp(-1.702*v))) }
		default:
			return nil, o.errf("unknown gelu mode %q", mode)
		}
	case "clip":
		lo, err := o.constFloat("alpha", 0)
		if err != nil {
			return nil, err
		}
		hi, err := o.constFloat("beta", 1)
		if err != nil {
			return nil, err
		}
		f = func(x float32) float32 { return min(max(x, lo), hi) }
	case "leaky_relu":
		a, err := o.constFloat("alpha", 0.01)
		if err != nil {
			return nil, err
		}
		f = func(x float32) float32 {
			if x < 0 {
				return a * x
			}
			return x
		}
	}
	if f == nil {
		return nil, o.errf("not defined on floats")
	}
	return func() error {
		out.setShape(x.Shape)
		for i, v := range x.f32 {
			out.f32[i] = f(v)
		}
		return nil
	}, nil
}

func compileCast(o *opCtx) (func() error, error) {
	x, err := o.tensor("x")
	if err != nil {
		return nil, err
	}
	out, err := o.output(0)
	if err != nil {
		return nil, err
	}
	switch out.DType {
	case Float16, Float32, Int32, Bool:
	default:
		return nil, o.errf("cast to %v is not supported", out.DType)
	}
	return func() error {
		out.setShape(x.Shape)
		n := x.Len()
		for i := 0; i < n; i++ {
			v := x.Float64At(i)
			switch out.DType {
			case Float16, Float32:
				out.f32[i] = float32(v)
			case Int32:
				// Core ML casts float → int by truncation toward zero; clamp to int32.
				out.i32[i] = int32(max(min(math.Trunc(v), math.MaxInt32), math.MinInt32))
			case Bool:
				out.b[i] = v != 0
			}
		}
		return nil
	}, nil
}
