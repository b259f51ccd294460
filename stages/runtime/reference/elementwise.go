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

// bcastIter walks two operands broadcast to an output shape in rows: runs of n output
// elements along which each operand either advances by one element (step 1) or repeats
// one (step 0, broadcast). Trailing axes are merged into the row as long as both operands
// stay linear across them, so same-shape operands are one row and a scalar operand is a
// step-0 row.
type bcastIter struct {
	out          []int
	xs, ys       [8]int // strides of x and y in output dims (0 where broadcast)
	idx          [8]int
	n            int // elements per row
	xstep, ystep int // 0 or 1
	outer        int // the axes [0, outer) iterate over rows
}

func (it *bcastIter) init(out, x, y []int) {
	it.out = out
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
	r := len(out)
	it.n, it.xstep, it.ystep, it.outer = 1, 1, 1, r
	if r == 0 {
		return
	}
	it.n, it.xstep, it.ystep, it.outer = out[r-1], min(it.xs[r-1], 1), min(it.ys[r-1], 1), r-1
	for d := r - 2; d >= 0; d-- {
		if out[d] != 1 && (it.xs[d] != it.xstep*it.n || it.ys[d] != it.ystep*it.n) {
			break
		}
		it.n *= out[d]
		it.outer = d
	}
}

// rows calls f(oi, xi, yi) for each row: out[oi : oi+n] pairs with x from xi and y from yi
// (advancing by xstep and ystep).
func (it *bcastIter) rows(f func(oi, xi, yi int)) {
	if it.n == 0 {
		return
	}
	rows := numElements(it.out[:it.outer])
	idx := it.idx[:it.outer]
	clear(idx)
	xi, yi := 0, 0
	for oi := 0; oi < rows*it.n; oi += it.n {
		f(oi, xi, yi)
		for d := it.outer - 1; d >= 0; d-- {
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

// each calls f(i, xi, yi) for every output index i (for the rarely hot int32, comparison
// and logical ops).
func (it *bcastIter) each(f func(i, xi, yi int)) {
	it.rows(func(oi, xi, yi int) {
		for k := range it.n {
			f(oi+k, xi+k*it.xstep, yi+k*it.ystep)
		}
	})
}

// floatBinary is an elementwise float op; floatRow applies it to whole rows.
type floatBinary uint8

const (
	opAdd floatBinary = iota
	opSub
	opMul
	opRealDiv
	opPow
	opMaximum
	opMinimum
	opFloorDiv
	opMod
)

var binaryFloat = map[string]floatBinary{
	"add": opAdd, "sub": opSub, "mul": opMul, "real_div": opRealDiv, "pow": opPow,
	"maximum": opMaximum, "minimum": opMinimum, "floor_div": opFloorDiv, "mod": opMod,
}

// floatRow sets dst[i] = x[i] op y[i]. The switch is outside the loops so that each loop
// body is a few instructions, not a call.
func floatRow(op floatBinary, dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	switch op {
	case opAdd:
		for i := range dst {
			dst[i] = x[i] + y[i]
		}
	case opSub:
		for i := range dst {
			dst[i] = x[i] - y[i]
		}
	case opMul:
		for i := range dst {
			dst[i] = x[i] * y[i]
		}
	case opRealDiv:
		for i := range dst {
			dst[i] = x[i] / y[i]
		}
	case opPow:
		for i := range dst {
			dst[i] = float32(math.Pow(float64(x[i]), float64(y[i])))
		}
	case opMaximum:
		for i := range dst {
			dst[i] = max(x[i], y[i])
		}
	case opMinimum:
		for i := range dst {
			dst[i] = min(x[i], y[i])
		}
	case opFloorDiv:
		for i := range dst {
			dst[i] = float32(math.Floor(float64(x[i] / y[i])))
		}
	case opMod:
		for i := range dst {
			a, b := x[i], y[i]
			dst[i] = a - b*float32(math.Floor(float64(a/b)))
		}
	}
}

// rowOperand returns n elements of v from i: a view when step is 1, else v[i] repeated n
// times in *buf (grown once and reused).
func rowOperand(v []float32, i, step, n int, buf *[]float32) []float32 {
	if step == 1 {
		return v[i : i+n]
	}
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	b := (*buf)[:n]
	for k := range b {
		b[k] = v[i]
	}
	return b
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
	x, out, err := o.xAndOut()
	if err != nil {
		return nil, err
	}
	y, err := o.tensor("y")
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
		op, ok := binaryFloat[o.typ]
		if !ok {
			return nil, o.errf("not defined on floats")
		}
		var xbuf, ybuf []float32
		return func() error {
			if err := prep(); err != nil {
				return err
			}
			n := it.n
			it.rows(func(oi, xi, yi int) {
				floatRow(op, out.f32[oi:oi+n], rowOperand(x.f32, xi, it.xstep, n, &xbuf), rowOperand(y.f32, yi, it.ystep, n, &ybuf))
			})
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

// floatUnary is an elementwise float op; unaryRow applies it to a whole tensor.
type floatUnary uint8

const (
	opSqrt floatUnary = iota
	opExp
	opExp2
	opLog
	opTanh
	opSquare
	opAbs
	opSin
	opCos
	opErf
	opFloor
	opCeil
	opRound
	opSign
	opRelu
	opSigmoid
	opSilu
	opIdentity
	opRsqrt     // 1/sqrt(x + epsilon)
	opInverse   // 1/(x + epsilon)
	opGelu      // mode EXACT: 0.5·x·(1 + erf(x/√2))
	opGeluTanh  // mode TANH_APPROXIMATION
	opGeluSigm  // mode SIGMOID_APPROXIMATION: x·σ(1.702·x)
	opClip      // min(max(x, alpha), beta)
	opLeakyRelu // x < 0 ? alpha·x : x
)

var unaryFloat = map[string]floatUnary{
	"sqrt": opSqrt, "exp": opExp, "exp2": opExp2, "log": opLog, "tanh": opTanh,
	"square": opSquare, "abs": opAbs, "sin": opSin, "cos": opCos, "erf": opErf,
	"floor": opFloor, "ceil": opCeil, "round": opRound, "sign": opSign, "relu": opRelu,
	"sigmoid": opSigmoid, "silu": opSilu, "identity": opIdentity, "rsqrt": opRsqrt,
	"inverse": opInverse, "gelu": opGelu, "clip": opClip, "leaky_relu": opLeakyRelu,
}

// unaryParams are the constant operands of the parameterised unary ops.
type unaryParams struct {
	eps, alpha, beta float32
}

// unaryRow sets dst[i] = op(x[i]), computing transcendental functions in float64. The
// switch is outside the loops so that each loop body is the op itself, not a call.
func unaryRow(op floatUnary, p unaryParams, dst, x []float32) {
	x = x[:len(dst)]
	f64 := func(v float32) float64 { return float64(v) }
	switch op {
	case opSqrt:
		for i, v := range x {
			dst[i] = float32(math.Sqrt(f64(v)))
		}
	case opExp:
		for i, v := range x {
			dst[i] = float32(math.Exp(f64(v)))
		}
	case opExp2:
		for i, v := range x {
			dst[i] = float32(math.Exp2(f64(v)))
		}
	case opLog:
		for i, v := range x {
			dst[i] = float32(math.Log(f64(v)))
		}
	case opTanh:
		for i, v := range x {
			dst[i] = float32(math.Tanh(f64(v)))
		}
	case opSquare:
		for i, v := range x {
			dst[i] = v * v
		}
	case opAbs:
		for i, v := range x {
			dst[i] = float32(math.Abs(f64(v)))
		}
	case opSin:
		for i, v := range x {
			dst[i] = float32(math.Sin(f64(v)))
		}
	case opCos:
		for i, v := range x {
			dst[i] = float32(math.Cos(f64(v)))
		}
	case opErf:
		for i, v := range x {
			dst[i] = float32(math.Erf(f64(v)))
		}
	case opFloor:
		for i, v := range x {
			dst[i] = float32(math.Floor(f64(v)))
		}
	case opCeil:
		for i, v := range x {
			dst[i] = float32(math.Ceil(f64(v)))
		}
	case opRound:
		for i, v := range x {
			dst[i] = float32(math.RoundToEven(f64(v)))
		}
	case opSign:
		for i, v := range x {
			switch {
			case v > 0:
				dst[i] = 1
			case v < 0:
				dst[i] = -1
			default:
				dst[i] = 0
			}
		}
	case opRelu:
		for i, v := range x {
			dst[i] = max(v, 0)
		}
	case opSigmoid:
		for i, v := range x {
			dst[i] = float32(1 / (1 + math.Exp(-f64(v))))
		}
	case opSilu:
		for i, v := range x {
			dst[i] = float32(f64(v) / (1 + math.Exp(-f64(v))))
		}
	case opIdentity:
		copy(dst, x)
	case opRsqrt:
		for i, v := range x {
			dst[i] = float32(1 / math.Sqrt(f64(v+p.eps)))
		}
	case opInverse:
		for i, v := range x {
			dst[i] = 1 / (v + p.eps)
		}
	case opGelu:
		for i, v := range x {
			dst[i] = float32(0.5 * f64(v) * (1 + math.Erf(f64(v)/math.Sqrt2)))
		}
	case opGeluTanh:
		for i, v := range x {
			// 0.5·w·(1 + tanh y) = w / (1 + e^(−2y)): the same function with one exp instead
			// of tanh's exp and division (a tenth of Phi-2's prefill); float64 keeps the
			// difference far below float32's rounding. For w → −∞, e^(−2y) → +Inf and the
			// quotient → −0, as tanh's form gives 0.
			w := f64(v)
			dst[i] = float32(w / (1 + math.Exp(-2*math.Sqrt(2/math.Pi)*(w+0.044715*w*w*w))))
		}
	case opGeluSigm:
		for i, v := range x {
			dst[i] = float32(f64(v) / (1 + math.Exp(-1.702*f64(v))))
		}
	case opClip:
		for i, v := range x {
			dst[i] = min(max(v, p.alpha), p.beta)
		}
	case opLeakyRelu:
		for i, v := range x {
			if v < 0 {
				v *= p.alpha
			}
			dst[i] = v
		}
	}
}

func compileUnary(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
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
			copyElems(out, 0, x, 0, x.Len())
			return nil
		}, nil
	}
	if !x.DType.IsFloat() || !out.DType.IsFloat() {
		return nil, o.errf("x is %v, want fp16/fp32", x.DType)
	}
	op, ok := unaryFloat[o.typ]
	if !ok {
		return nil, o.errf("not defined on floats")
	}
	var p unaryParams
	switch op {
	case opRsqrt, opInverse:
		def := float32(1e-12)
		if op == opInverse {
			def = 1e-4
		}
		if p.eps, err = o.constFloat("epsilon", def); err != nil {
			return nil, err
		}
	case opGelu:
		mode, err := o.constString("mode", "EXACT")
		if err != nil {
			return nil, err
		}
		switch mode {
		case "EXACT":
		case "TANH_APPROXIMATION":
			op = opGeluTanh
		case "SIGMOID_APPROXIMATION":
			op = opGeluSigm
		default:
			return nil, o.errf("unknown gelu mode %q", mode)
		}
	case opClip:
		if p.alpha, err = o.constFloat("alpha", 0); err != nil {
			return nil, err
		}
		if p.beta, err = o.constFloat("beta", 1); err != nil {
			return nil, err
		}
	case opLeakyRelu:
		if p.alpha, err = o.constFloat("alpha", 0.01); err != nil {
			return nil, err
		}
	}
	task := &unaryTask{op: op, p: p}
	pool := o.c.m.pool
	return func() error {
		out.setShape(x.Shape)
		task.dst, task.x = out.f32, x.f32
		// Each element is computed on its own, so splitting changes nothing in the result;
		// a transcendental costs some tens of operations, hence the smaller grain.
		pool.parallel(len(task.dst), minParallelWork/16, task)
		return nil
	}, nil
}

// unaryTask applies one float unary op element-wise over ranges of dst.
type unaryTask struct {
	op     floatUnary
	p      unaryParams
	dst, x []float32
}

func (t *unaryTask) runRange(_, lo, hi int) { unaryRow(t.op, t.p, t.dst[lo:hi], t.x[lo:hi]) }

func compileCast(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
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
