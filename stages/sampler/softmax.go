package sampler

import "math"

// Greedy returns the index of the largest logit; the first one wins ties, as llama.cpp's
// greedy sampler (llama-simple) does. NaN logits are skipped. It returns -1 when logits is
// empty or all NaN.
func Greedy(logits []float32) int32 {
	best := -1
	for i, l := range logits {
		if l != l {
			continue
		}
		if best < 0 || l > logits[best] {
			best = i
		}
	}
	return int32(best)
}

// Softmax writes softmax(logits) into dst[:len(logits)]: exp(l − max) with the maximum
// subtracted first so no term overflows, normalised by a float64 sum. Entries equal to the
// maximum get weight 1 even when it is infinite (all −Inf logits give a uniform result);
// NaN logits make the result NaN. Softmax panics if dst is shorter than logits.
func Softmax(logits []float32, dst []float32) {
	dst = dst[:len(logits)]
	if len(logits) == 0 {
		return
	}
	maxL := logits[0]
	for _, l := range logits[1:] {
		maxL = max(maxL, l) // max propagates NaN, which then propagates to every output
	}
	var sum float64
	for i, l := range logits {
		w := 1.0
		if l != maxL {
			w = math.Exp(float64(l) - float64(maxL))
		}
		dst[i] = float32(w)
		sum += w
	}
	// Dividing the float32-rounded weight by the float64 sum adds at most one rounding
	// before the final one: the result is within 2 ulp of the exact probability.
	for i := range dst {
		dst[i] = float32(float64(dst[i]) / sum)
	}
}
