package sampler

import (
	"cmp"
	"math"
	"slices"
)

// This file holds the stages of the chain, each restating the rule of its llama.cpp
// counterpart (src/llama-sampling.cpp). Like llama.cpp, the candidates start as every vocabulary
// id in id order, unsorted; a stage that needs probabilities sorts them by descending logit
// first and records that they are sorted. llama.cpp's sorts leave the order of equal logits
// unspecified; ours break ties by the lower id, so every run is deterministic.

// filter loads logits into the candidate buffer and runs every stage but the final draw.
// It reports false when logits has the wrong length.
func (s *Sampler) filter(logits []float32) bool {
	if len(logits) != s.vocab {
		return false
	}
	for i, l := range logits {
		if l != l { // NaN never wins a comparison; make it explicit that it is never chosen
			l = float32(math.Inf(-1))
		}
		s.buf[i] = candidate{id: int32(i), logit: l}
	}
	s.cur = s.buf
	s.sorted = false

	s.penalize()
	s.topK(s.p.TopK)
	s.typical(s.p.TypicalP, s.p.MinKeep)
	s.topP(s.p.TopP, s.p.MinKeep)
	s.minP(s.p.MinP, s.p.MinKeep)
	s.temperature(s.p.Temperature)
	return true
}

// penalize applies the repetition penalties to every token seen in the window, count c ≥ 1:
// a logit ≤ 0 is multiplied by repeat_penalty, a positive one divided by it; then
// c·frequency_penalty + presence_penalty is subtracted. Skipped when the window is off or all
// three penalties are neutral (1, 0, 0).
func (s *Sampler) penalize() {
	rp, fp, pp := s.p.RepeatPenalty, s.p.FrequencyPenalty, s.p.PresencePenalty
	if s.p.PenaltyLastN == 0 || (rp == 1 && fp == 0 && pp == 0) {
		return
	}
	// cur is still buf in id order here, so cur[i].id == i.
	for i := range s.cur {
		c := s.counts[s.cur[i].id]
		if c <= 0 {
			continue
		}
		l := s.cur[i].logit
		if l <= 0 {
			l *= rp
		} else {
			l /= rp
		}
		// llama.cpp: logit -= float(count)*freq + float(count > 0)*present
		s.cur[i].logit = l - (float32(c)*fp + pp)
	}
	s.sorted = false
}

// byLogitDesc orders candidates by descending logit, equal logits by ascending id.
func byLogitDesc(a, b candidate) int {
	switch {
	case a.logit > b.logit:
		return -1
	case a.logit < b.logit:
		return 1
	}
	return cmp.Compare(a.id, b.id)
}

// sortDesc sorts the survivors by descending logit unless they already are.
func (s *Sampler) sortDesc() {
	if !s.sorted {
		slices.SortFunc(s.cur, byLogitDesc)
		s.sorted = true
	}
}

// topK keeps the k highest logits, sorted: k = min(k, size). k ≤ 0 is a no-op (newer
// llama.cpp; the Feb-2025 build sorted the whole vocabulary instead, which keeps the same set).
func (s *Sampler) topK(k int) {
	n := len(s.cur)
	if k <= 0 {
		return
	}
	k = min(k, n)
	if !s.sorted {
		if k < n {
			selectBest(s.cur, k)
		}
		slices.SortFunc(s.cur[:k], byLogitDesc)
		s.sorted = true
	}
	s.cur = s.cur[:k]
}

// selectBest moves the k best candidates (byLogitDesc) into c[:k], in no particular order.
// It keeps c[:k] as a heap whose root is the worst of the kept ones, so one pass over a
// 50k vocabulary costs about n comparisons against the root: O(n log k), no allocation.
func selectBest(c []candidate, k int) {
	h := c[:k]
	for i := k/2 - 1; i >= 0; i-- {
		siftWorst(h, i)
	}
	for i := k; i < len(c); i++ {
		if byLogitDesc(c[i], h[0]) < 0 {
			h[0], c[i] = c[i], h[0]
			siftWorst(h, 0)
		}
	}
}

// siftWorst restores the heap property "parent is worse than its children" below i.
func siftWorst(h []candidate, i int) {
	for {
		w := i
		if l := 2*i + 1; l < len(h) && byLogitDesc(h[l], h[w]) > 0 {
			w = l
		}
		if r := 2*i + 2; r < len(h) && byLogitDesc(h[r], h[w]) > 0 {
			w = r
		}
		if w == i {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// softmax is llama_sampler_softmax_impl: sort by descending logit, then
// p_i = exp(l_i − l_max) / Σ in float32. A candidate equal to the maximum gets weight 1
// even when the maximum is infinite, so an all −Inf set becomes uniform rather than NaN.
func (s *Sampler) softmax() {
	s.sortDesc()
	if len(s.cur) == 0 {
		return
	}
	maxL := s.cur[0].logit
	var sum float32
	for i := range s.cur {
		p := float32(1)
		if l := s.cur[i].logit; l != maxL {
			p = float32(math.Exp(float64(l - maxL)))
		}
		s.cur[i].p = p
		sum += p
	}
	for i := range s.cur {
		s.cur[i].p /= sum
	}
}

// typical is locally typical sampling: with entropy H = −Σ p ln p, order the candidates by
// |−ln p − H| ascending and keep the shortest prefix whose cumulative p exceeds typical_p
// (strictly) and holds at least min_keep tokens. p ≥ 1 is a no-op.
//
// llama.cpp before its fix tested `i >= min_keep - 1` on a size_t, which wraps for
// min_keep = 0 and so never truncated with the default min_keep; newer builds test
// `min_keep == 0 || i >= min_keep - 1`, which is the rule implemented here.
// Zero probabilities (exp underflow) add nothing to H (p ln p → 0) and get score +Inf,
// where llama.cpp would compute NaN.
func (s *Sampler) typical(p float32, minKeep int) {
	if p >= 1 || len(s.cur) == 0 {
		return
	}
	s.softmax()
	var entropy float32
	for _, c := range s.cur {
		if c.p > 0 {
			entropy += -c.p * float32(math.Log(float64(c.p)))
		}
	}
	for i := range s.cur {
		score := float32(math.Inf(1))
		if q := s.cur[i].p; q > 0 {
			score = float32(math.Abs(float64(-float32(math.Log(float64(q))) - entropy)))
		}
		s.cur[i].score = score
	}
	// Stable, so equal scores keep the descending-probability order.
	slices.SortStableFunc(s.cur, func(a, b candidate) int { return cmp.Compare(a.score, b.score) })
	var cum float32
	last := len(s.cur)
	for i, c := range s.cur {
		cum += c.p
		if cum > p && i+1 >= minKeep {
			last = i + 1
			break
		}
	}
	s.cur = s.cur[:last]
	s.sorted = false
}

// topP keeps the smallest prefix of the probability-sorted candidates whose cumulative p
// reaches top_p (cum ≥ p) and that holds at least min_keep tokens. p ≥ 1 is a no-op.
func (s *Sampler) topP(p float32, minKeep int) {
	if p >= 1 || len(s.cur) == 0 {
		return
	}
	s.softmax()
	var cum float32
	last := len(s.cur)
	for i, c := range s.cur {
		cum += c.p
		if cum >= p && i+1 >= minKeep {
			last = i + 1
			break
		}
	}
	s.cur = s.cur[:last]
}

// minP keeps the tokens whose logit is ≥ max_logit + ln(min_p), i.e. p ≥ min_p·p_max,
// always the top one and at least min_keep. p ≤ 0 is a no-op. As in llama.cpp, unsorted
// candidates are filtered in place keeping their order when that leaves at least min_keep;
// otherwise they are sorted and the prefix rule (top token, then min_keep) applies.
func (s *Sampler) minP(p float32, minKeep int) {
	if p <= 0 || len(s.cur) == 0 {
		return
	}
	lnP := float32(math.Log(float64(p)))
	if !s.sorted {
		maxL := float32(math.Inf(-1))
		for _, c := range s.cur {
			maxL = max(maxL, c.logit)
		}
		minL := maxL + lnP
		n := 0
		for _, c := range s.cur {
			if c.logit >= minL {
				n++
			}
		}
		if n >= minKeep && n > 0 {
			kept := s.cur[:0]
			for _, c := range s.cur {
				if c.logit >= minL {
					kept = append(kept, c) // in place: kept never overtakes the reader
				}
			}
			s.cur = kept
			return
		}
		s.sortDesc()
	}
	minL := s.cur[0].logit + lnP
	i := 1 // the top token always stays
	for ; i < len(s.cur); i++ {
		if s.cur[i].logit < minL && i >= minKeep {
			break
		}
	}
	s.cur = s.cur[:i]
}

// temperature divides every logit by t. For t ≤ 0 it keeps the first maximum in the current
// order and sets every other logit to −Inf, so the draw is greedy.
func (s *Sampler) temperature(t float32) {
	if len(s.cur) == 0 {
		return
	}
	if t <= 0 {
		best := 0
		for i := 1; i < len(s.cur); i++ {
			if s.cur[i].logit > s.cur[best].logit {
				s.cur[best].logit = float32(math.Inf(-1))
				best = i
			} else {
				s.cur[i].logit = float32(math.Inf(-1))
			}
		}
		return
	}
	for i := range s.cur {
		s.cur[i].logit /= t
	}
}

// dist draws one survivor with probability softmax(logit). The weights exp(l − l_max) are
// summed in float64; one uniform u in [0,1) from the PCG generator (53 bits, as
// math/rand/v2's Float64) picks the first candidate whose running sum exceeds u·total, which
// is how newer llama.cpp walks its cumulative distribution. The candidates need not be
// sorted: the order changes which u maps to which token, not the probabilities.
func (s *Sampler) dist() int32 {
	if len(s.cur) == 0 {
		return -1
	}
	maxL := s.cur[0].logit
	for _, c := range s.cur[1:] {
		maxL = max(maxL, c.logit)
	}
	var total float64
	for i := range s.cur {
		w := float32(1)
		if l := s.cur[i].logit; l != maxL {
			w = float32(math.Exp(float64(l - maxL)))
		}
		s.cur[i].p = w
		total += float64(w)
	}
	u := float64(s.rng.Uint64()>>11) / (1 << 53)
	target := u * total
	var run float64
	last := 0
	for i, c := range s.cur {
		if c.p == 0 {
			continue
		}
		run += float64(c.p)
		last = i
		if target < run {
			return c.id
		}
	}
	return s.cur[last].id // rounding left the target past the sum: take the last live token
}
