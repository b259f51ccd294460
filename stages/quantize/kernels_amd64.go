//go:build amd64 && !purego

package quantize

// haveFitLevels4 reports that fitLevels4 exists: SSE2 is part of every amd64 CPU.
const haveFitLevels4 = true

// fitLevels4 is the body of fitLevels over the first n elements (n a multiple of 4) in
// SSE: acc[0:4] receives the four lanes of Σw·x·l and acc[4:8] those of Σw·l².
//
//go:noescape
func fitLevels4(xs, ws *float32, n int, iscale, lo, hi float32, acc *[8]float32)

// minMax4 writes the lanes of min(0, xs[i]…) to acc[0:4] and of max(0, xs[i]…) to
// acc[4:8] over the first n elements (n a multiple of 4).
//
//go:noescape
func minMax4(xs *float32, n int, acc *[8]float32)

// assign4 is assign's float loop over the first n elements (n a multiple of 4) in SSE.
//
//go:noescape
func assign4(xs *float32, qs *int32, n int, id, z, lo, hi float32)
