package reference

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLinearTilesMatchDot runs the prefill path of linear (rows by six (AVX-512), three and two, tokens by
// four, on one and two workers) on every remainder of rows mod 3 and tokens mod 4, and
// checks each output against the decode path (the weight's dotRow) plus the bias, bit for
// bit: a token's logits must not depend on the chunk it was computed in.
func TestLinearTilesMatchDot(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, workers := range []int{1, 2} {
		p := newWorkerPool(workers)
		defer p.close()
		for _, rows := range []int{1, 2, 3, 4, 5, 7, 11} {
			for _, n := range []int{2, 3, 4, 5, 9} {
				const din = 40 // 5 vectors of 8; 2½ of 16
				wt := randFloats(r, rows*din)
				bias := randFloats(r, rows)
				x := randFloats(r, n*din)
				out := make([]float32, n*rows)
				task := &linearTask{w: &denseWeight{w: wt, rows: rows, cols: din}, bias: bias,
					din: din, dout: rows, n: n, x: x, out: out}
				// minParallelWork would keep these small products on one worker: force the
				// split through rowTriples directly.
				if workers == 1 {
					task.run(p)
				} else {
					task.scratch = [][]float32{make([]float32, 6*din), make([]float32, 6*din)}
					trip := (rows + 2) / 3
					(*rowTriples)(task).runRange(0, 0, trip/2)
					(*rowTriples)(task).runRange(1, trip/2, trip)
				}
				for i := range n {
					for o := range rows {
						want := task.w.dotRow(o, x[i*din:(i+1)*din]) + bias[o]
						if got := out[i*rows+o]; math.Float32bits(got) != math.Float32bits(want) {
							t.Errorf("workers=%d rows=%d n=%d: out[%d,%d] = %v, want %v", workers, rows, n, i, o, got, want)
						}
					}
				}
			}
		}
	}
}

// TestMatmulTransposedX: the vᵀ·p form of attention (x transposed, y not) against the
// scalar definition out[i, j] = Σ_p x[p, i]·y[p, j] summed in p order with each product
// rounded, bit for bit — for one token (the contiguous-column path) and several, with rows
// of y all zero (masked keys, skipped) and scattered zeros, over two batches.
func TestMatmulTransposedX(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{1, 3, 8} {
		const nb, m, k = 2, 7, 37
		x, y := randFloats(r, nb*k*m), randFloats(r, nb*k*n)
		for i := range y {
			if p := (i / n) % k; p%5 == 4 || p > 30 || r.IntN(7) == 0 {
				y[i] = 0
			}
		}
		task := &matmulTask{x: x, y: y, out: make([]float32, nb*m*n), m: m, k: k, n: n, tx: true,
			xoff: []int{0, k * m}, yoff: []int{0, k * n}}
		task.runRange(0, 0, 3)
		task.runRange(1, 3, nb*m) // a range crossing the batch boundary
		for b := range nb {
			for i := range m {
				for j := range n {
					var want float32
					for p := range k {
						want += float32(x[b*k*m+p*m+i] * y[b*k*n+p*n+j])
					}
					if got := task.out[(b*m+i)*n+j]; math.Float32bits(got) != math.Float32bits(want) && got != want {
						t.Errorf("n=%d out[%d,%d,%d] = %v, want %v", n, b, i, j, got, want)
					}
				}
			}
		}
	}
}

// TestMatmulTransposedY: the q·kᵀ form (y transposed) gives every score the bits dot gives,
// whether it came from the four-row tile or the tail, so prefill and decode agree.
func TestMatmulTransposedY(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, k := range []int{5, 8, 13, 80} {
		for _, n := range []int{1, 3, 4, 9} {
			const m = 3
			x, y := randFloats(r, m*k), randFloats(r, n*k)
			task := &matmulTask{x: x, y: y, out: make([]float32, m*n), m: m, k: k, n: n, ty: true,
				xoff: []int{0}, yoff: []int{0}}
			task.runRange(0, 0, m)
			for i := range m {
				for j := range n {
					want := dot(x[i*k:(i+1)*k], y[j*k:(j+1)*k])
					if got := task.out[i*n+j]; math.Float32bits(got) != math.Float32bits(want) {
						t.Errorf("k=%d n=%d out[%d,%d] = %v, dot %v", k, n, i, j, got, want)
					}
				}
			}
		}
	}
}
