package quantize

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

// lutCodec palettizes groups of rows: every element of a group of output channels is one
// of 2^bits fp16 values (constexpr_lut_to_dense iOS18 with per-group LUTs, coremltools mil/ops/defs/iOS18/compression.py).
type lutCodec struct {
	bits  int // index width: the palette has 1<<bits entries (LUTWidths)
	group int // output channels sharing one palette
	iters int // Lloyd iterations at most
	// channelScale palettizes each channel divided by its largest |weight| and stores that
	// fp16 scale per channel (encoding lut+blockwise: the palette's output is the data of a
	// constexpr_blockwise_shift_scale with one scale per row).
	channelScale bool
}

// lutScratch holds one worker's palettization buffers, reused from group to group so that
// a group allocates nothing.
type lutScratch struct {
	keys, keys2 []uint32  // sort keys (see f16Key, f32Key) and the radix sort's second buffer
	wts, wts2   []float32 // weights carried along with the keys (weighted groups only)
	vals        []float32 // the group's distinct keys' values, ascending
	codes       []uint16  // the distinct values' fp16 codes (fp16 paths only)
	cw, cwv     []float64 // prefix sums of weight and weight·value: cw[j] covers vals[:j]
	// index maps an fp16 code to its palette index; only the codes of the group being
	// quantized are written, and only they are read.
	index [1 << 16]uint8
	// count is the number of elements of each fp16 code in the group (countF16), zero
	// between groups.
	count [1 << 16]uint16
	// present has bit k set for each f16Key k of the group (countF16), zero between groups.
	present [1 << 10]uint64
	// The k-means' state (lloyd), sized to the palette: its centroids, cluster boundaries
	// (now, the iteration before, the searches' results), the centroids the last iteration
	// moved, and the palette with the midpoints between its entries.
	cent                []float64
	bounds, last, found []int
	changed             []bool
	pal, mids           []float32
}

// entries is the palette size.
func (c *lutCodec) entries() int { return 1 << c.bits }

// quantizeGroup finds the 2^bits palette values for x (the rows of one group, row-major) by
// 1-D k-means weighted by w (importance per element), writes them as fp16 into lut and
// each element's palette index into idx. It returns the sums of squared error and input.
// quantizeGroupF16 is the same for fp16 input, bit for bit.
func (c *lutCodec) quantizeGroup(s *lutScratch, x, w []float32, idx []int32, lut []uint16) (errSum, sigSum float64) {
	pal, mids := c.palette(s, x, w, lut)
	idx = idx[:len(x)]
	for i, v := range x {
		k := nearest(mids, v)
		idx[i] = k
		e := v - pal[k]
		errSum += float64(e * e)
		sigSum += float64(v * v)
	}
	return errSum, sigSum
}

// quantizeGroupF16 is quantizeGroup for a group given as little-endian binary16 (src, two
// bytes an element), the common case of an F16 GGUF; w nil stands for uniform weights.
// Its values are among the 65536 codes, so the sort keys are 16 bits (two radix passes
// instead of four; with uniform weights, a count per code and no sort of the elements at
// all) and each element's palette index is a table lookup by its code rather than a
// search. ok is false, with nothing written to idx, when an element is not finite
// (exponent all ones, IEEE 754 binary16): the caller decodes the rows to report it.
func (c *lutCodec) quantizeGroupF16(s *lutScratch, src []byte, w []float32, idx []int32, lut []uint16) (errSum, sigSum float64, ok bool) {
	n := len(src) / 2
	src = src[:2*n]
	if w != nil {
		w = w[:n]
	}
	var m int
	switch uniform := w == nil || isUniform(w); {
	case uniform && n < 1<<16:
		if m, ok = s.countF16(src); !ok {
			return 0, 0, false
		}
		if m < 0 { // the sums would round: sort the elements instead
			m = s.sortF16(src, nil)
		}
	case n <= 1<<16 && !uniform:
		if m, ok = s.sortF16Indexed(src, w); !ok {
			return 0, 0, false
		}
	default:
		if !finiteF16(src) {
			return 0, 0, false
		}
		if uniform {
			w = nil
		}
		m = s.sortF16(src, w)
	}
	pal, mids := c.lloyd(s, s.vals[:m], s.cw[:m+1], s.cwv[:m+1], lut)
	// The distinct values ascend, so their palette indices, the number of midpoints below
	// each (nearest), ascend too: index k covers the values in (mids[k−1], mids[k]].
	vals, codes := s.vals[:m], s.codes[:m]
	j := 0
	for k := range len(pal) {
		end := m
		if k < len(mids) {
			end = j + above(vals[j:], mids[k])
		}
		for _, h := range codes[j:end] {
			s.index[h] = uint8(k)
		}
		j = end
	}
	idx = idx[:n]
	for i := range idx {
		h := binary.LittleEndian.Uint16(src[2*i:])
		k := s.index[h]
		idx[i] = int32(k)
		v := f16Table[h]
		e := v - pal[k]
		errSum += float64(e * e)
		sigSum += float64(v * v)
	}
	return errSum, sigSum, true
}

// finiteF16 reports whether every binary16 of src is finite: h is not iff h&0x7c00 ==
// 0x7c00 (exponent all ones, IEEE 754 binary16), which alone carries into bit 15 when
// 0x0400 is added, so one OR over the elements tests them all (as decodeRows does).
func finiteF16(src []byte) bool {
	var inf uint16
	for i := 0; i+1 < len(src); i += 2 {
		inf |= (binary.LittleEndian.Uint16(src[i:]) & 0x7c00) + 0x0400
	}
	return inf&0x8000 == 0
}

// countF16 prepares the k-means of a group of fewer than 65536 binary16 values with
// uniform weights (s.vals, s.codes, s.cw, s.cwv; see distinct) without sorting the
// elements: it counts each code's elements and marks its key in a bitmap, whose set bits,
// read in order, are the distinct values ascending. ok is false if a value is not finite.
// m is −1, with nothing prepared, when the prefix sums of the values might round: then
// only the sum in sorted order reproduces them.
//
// A running sum of weight 1 is the count; a running sum of binary16 values, multiples of
// 2⁻²⁴, is exact while it stays below 2²⁹ in magnitude (53 bits of float64), which
// n·max|v| < 2²⁹ guarantees. Then count·value per distinct value, itself exact, gives the
// very sums an element-by-element pass in sorted order would.
func (s *lutScratch) countF16(src []byte) (m int, ok bool) {
	n := len(src) / 2
	count, present := &s.count, &s.present
	var inf uint16
	for i := range n {
		h := binary.LittleEndian.Uint16(src[2*i:])
		inf |= (h & 0x7c00) + 0x0400
		k := f16Key(h)
		count[h]++
		present[k>>6&1023] |= 1 << (k & 63)
	}
	ok = inf&0x8000 == 0
	s.vals = grow(s.vals, n)
	s.codes = grow(s.codes, n)
	s.cw = grow(s.cw, n+1)
	s.cwv = grow(s.cwv, n+1)
	vals, codes, cw, cwv := s.vals[:n], s.codes[:n], s.cw[:n+1], s.cwv[:n+1]
	var sw int
	var swv float64
	// Reading the bitmap also clears it and the counts for the next group, which must
	// happen even when a value is not finite. Weights cluster around zero, so most
	// words are empty: they are skipped four at a time.
	for w0 := 0; w0 < len(present); w0 += 4 {
		ws := (*[4]uint64)(present[w0 : w0+4])
		if ws[0]|ws[1]|ws[2]|ws[3] == 0 {
			continue
		}
		for i, word := range ws {
			ws[i] = 0
			for ; word != 0; word &= word - 1 {
				k := uint32(w0+i)<<6 | uint32(bits.TrailingZeros64(word))
				h := f16Code(k)
				c := count[h]
				count[h] = 0
				if !ok {
					continue
				}
				v := f16Table[h]
				sw += int(c)
				swv += float64(float64(c) * float64(v))
				vals[m], codes[m], cw[m+1], cwv[m+1] = v, h, float64(sw), swv
				m++
			}
		}
	}
	if !ok {
		return 0, false
	}
	cw[0], cwv[0] = 0, 0
	if m > 0 && float64(max(-vals[0], vals[m-1]))*float64(n) >= 1<<29 {
		return -1, true
	}
	return m, true
}

// sortF16 prepares the k-means of a group of binary16 values, all finite, by sorting the
// elements (carrying w + 1e-12 along; nil: weight 1) and returns the number of distinct
// values.
func (s *lutScratch) sortF16(src []byte, w []float32) int {
	n := len(src) / 2
	s.keys = grow(s.keys, n)
	for i := range n {
		s.keys[i] = f16Key(binary.LittleEndian.Uint16(src[2*i:]))
	}
	var wts []float32
	if w != nil {
		wts = s.weights(w)
	}
	keys, wts := radixSort(s.keys[:n], grow(s.keys2, n), wts, grow(s.wts2, n), 0, 16)
	return s.distinct(keys, wts, true)
}

// sortF16Indexed is sortF16 with weights for at most 65536 elements: each sort key holds
// the element's index in its low 16 bits, below the value's key, so the sort moves one
// word an element and the weights are read back by index. ok is false if a value is not
// finite.
func (s *lutScratch) sortF16Indexed(src []byte, w []float32) (m int, ok bool) {
	n := len(src) / 2
	s.keys = grow(s.keys, n)
	keys := s.keys[:n]
	var inf uint16
	for i := range keys {
		h := binary.LittleEndian.Uint16(src[2*i:])
		inf |= (h & 0x7c00) + 0x0400
		keys[i] = f16Key(h)<<16 | uint32(i)
	}
	if inf&0x8000 != 0 {
		return 0, false
	}
	keys, _ = radixSort(keys, grow(s.keys2, n), nil, nil, 16, 16)
	s.vals = grow(s.vals, n)
	s.codes = grow(s.codes, n)
	s.cw = grow(s.cw, n+1)
	s.cwv = grow(s.cwv, n+1)
	vals, codes, cw, cwv := s.vals[:n], s.codes[:n], s.cw[:n+1], s.cwv[:n+1]
	cw[0], cwv[0] = 0, 0
	if n == 0 {
		return 0, true
	}
	var sw, swv float64
	for i, pk := range keys {
		k := pk >> 16
		h := f16Code(k)
		v := f16Table[h]
		wi := float64(w[pk&0xffff] + 1e-12) // as weights does
		sw += wi
		swv += float64(wi * float64(v)) // exact: a product of two float32s
		vals[m], codes[m], cw[m+1], cwv[m+1] = v, h, sw, swv
		if i+1 < n && keys[i+1]>>16 != k {
			m++
		}
	}
	return m + 1, true
}

// palette runs the weighted k-means of quantizeGroup and returns the palette (fp16 values,
// ascending, also written to lut as fp16 bits) and the midpoints between its entries.
func (c *lutCodec) palette(s *lutScratch, x, w []float32, lut []uint16) (pal, mids []float32) {
	n := len(x)
	s.keys = grow(s.keys, n)
	for i, v := range x {
		s.keys[i] = f32Key(math.Float32bits(v))
	}
	wts := s.weights(w[:n])
	keys, wts := radixSort(s.keys, grow(s.keys2, n), wts, grow(s.wts2, n), 0, 32)
	m := s.distinct(keys, wts, false)
	return c.lloyd(s, s.vals[:m], s.cw[:m+1], s.cwv[:m+1], lut)
}

// weights returns the k-means weight of every element, w + 1e-12 (so that a zero
// importance still counts), or nil when every one is exactly 1, the data-free case, where
// the sort need not carry them.
func (s *lutScratch) weights(w []float32) []float32 {
	if isUniform(w) {
		return nil
	}
	s.wts = grow(s.wts, len(w))
	for i, v := range w {
		s.wts[i] = v + 1e-12
	}
	return s.wts
}

// isUniform reports whether every weight is exactly 1.
func isUniform(w []float32) bool {
	for _, v := range w {
		if v != 1 {
			return false
		}
	}
	return true
}

// f16Key maps binary16 bits to a key whose unsigned order is the order of the values:
// a negative value has every bit flipped (larger magnitudes sort lower), a positive one
// its sign bit set. −0 and +0 get adjacent keys. f16Code inverts it.
func f16Key(h uint16) uint32 { return uint32(h ^ (uint16(int16(h)>>15) | 0x8000)) }

func f16Code(k uint32) uint16 {
	h := uint16(k)
	return h ^ (uint16(int16(^h)>>15) | 0x8000)
}

// f32Key is f16Key for binary32 bits; f32Bits inverts it.
func f32Key(b uint32) uint32 { return b ^ (uint32(int32(b)>>31) | 1<<31) }

func f32Bits(k uint32) uint32 { return k ^ (uint32(int32(^k)>>31) | 1<<31) }

// radixSort sorts keys ascending by their bits [lo, lo+bits), bits 16 or 32, and wts
// (when not nil) along with them, by a stable least-significant-digit radix sort of 8-bit
// digits. tmp
// and wtmp are buffers of the same length; the sorted slices are returned, and may be
// either. A pass whose digit all keys share would move nothing and is skipped, which the
// clustered exponents of weights make common for the top digit.
func radixSort(keys, tmp []uint32, wts, wtmp []float32, lo, bits uint) ([]uint32, []float32) {
	n := len(keys)
	if n < 2 {
		return keys, wts
	}
	var hist [4][256]int32
	passes := bits / 8
	if passes == 2 {
		for _, k := range keys {
			k >>= lo
			hist[0][k&0xff]++
			hist[1][k>>8&0xff]++
		}
	} else {
		passes = 4
		for _, k := range keys {
			hist[0][k&0xff]++
			hist[1][k>>8&0xff]++
			hist[2][k>>16&0xff]++
			hist[3][k>>24]++
		}
	}
	tmp = tmp[:n]
	if wts != nil {
		wts, wtmp = wts[:n], wtmp[:n]
	}
	for p := range passes {
		h := &hist[p]
		shift := lo + 8*p
		if h[keys[0]>>shift&0xff] == int32(n) {
			continue
		}
		var sum int32
		for d, c := range h {
			h[d] = sum
			sum += c
		}
		if wts == nil {
			for _, k := range keys {
				d := k >> shift & 0xff
				tmp[h[d]] = k
				h[d]++
			}
		} else {
			for i, k := range keys {
				d := k >> shift & 0xff
				tmp[h[d]] = k
				wtmp[h[d]] = wts[i]
				h[d]++
			}
			wts, wtmp = wtmp, wts
		}
		keys, tmp = tmp, keys
	}
	return keys, wts
}

// distinct reduces sorted keys (f16Key keys when half, else f32Key keys) to s.vals (and
// s.codes when half), one entry a distinct key, and the prefix sums s.cw and s.cwv over them; it
// returns the number of distinct keys. The sums run element by element in sorted order,
// weight 1 when wts is nil, as a comparison sort of the elements followed by a running sum
// would add them: only the order among equal values, which a comparison sort leaves open,
// can round the weighted sums differently.
func (s *lutScratch) distinct(keys []uint32, wts []float32, half bool) int {
	n := len(keys)
	s.vals = grow(s.vals, n)
	s.codes = grow(s.codes, n)
	s.cw = grow(s.cw, n+1)
	s.cwv = grow(s.cwv, n+1)
	vals, codes, cw, cwv := s.vals[:n], s.codes[:n], s.cw[:n+1], s.cwv[:n+1]
	if wts != nil {
		wts = wts[:n]
	}
	cw[0], cwv[0] = 0, 0
	if n == 0 {
		return 0
	}
	var sw, swv float64
	j := 0
	for i, k := range keys {
		var v float32
		if half {
			h := f16Code(k)
			v, codes[j] = f16Table[h], h
		} else {
			v = math.Float32frombits(f32Bits(k))
		}
		w := 1.0
		if wts != nil {
			w = float64(wts[i])
		}
		sw += w
		swv += float64(w * float64(v)) // exact: a product of two float32s
		vals[j], cw[j+1], cwv[j+1] = v, sw, swv
		if i+1 < n && keys[i+1] != k {
			j++
		}
	}
	return j + 1
}

// lloyd runs the weighted 1-D k-means over the distinct values vals (ascending, with
// prefix sums cw and cwv of weight and weight·value) and returns the palette (fp16 values,
// ascending, also written to lut as fp16 bits) and the midpoints between its entries, both
// in s until its next k-means.
//
// In one dimension every cluster is an interval of the sorted values, so each Lloyd
// iteration costs K−1 searches for the boundaries and K differences of prefix sums
// (K = 2^bits) instead of a pass over the data; and as the boundaries move little from
// one iteration to the next, each search gallops from where it ended before.
func (c *lutCodec) lloyd(s *lutScratch, vals []float32, cw, cwv []float64, lut []uint16) (pal, mids []float32) {
	K := c.entries()
	s.cent = grow(s.cent, K)
	s.bounds, s.last, s.found = grow(s.bounds, K+1), grow(s.last, K+1), grow(s.found, K)
	s.changed = grow(s.changed, K)
	s.pal, s.mids = grow(s.pal, K), grow(s.mids, K-1)
	pal, mids = s.pal, s.mids
	m := len(vals)
	if m == 0 { // an empty group: an all-zero palette
		clear(lut[:K])
		clear(pal)
		clear(mids)
		return pal, mids
	}
	// Start from the weighted quantiles (k+0.5)/K.
	cent := s.cent
	for k := range cent {
		target := cw[m] * (float64(k) + 0.5) / float64(K)
		i, _ := slices.BinarySearch(cw[1:], target)
		cent[k] = float64(vals[min(i, m-1)])
	}
	// Cluster k is vals[bounds[k]:bounds[k+1]]; last: the iteration before.
	bounds, last, found, changed := s.bounds, s.last, s.found, s.changed
	clear(bounds)
	bounds[K] = m
	for it := 0; it < c.iters; it++ {
		// Only what the last iteration changed needs computing again: a boundary between two
		// centroids that kept their values is where it was, and a cluster whose boundaries
		// stayed has the centroid it got then (or still none).
		for k := 1; k < K; k++ {
			switch mid := float32((cent[k-1] + cent[k]) / 2); {
			case it == 0:
				found[k] = above(vals, mid)
			case changed[k-1] || changed[k]:
				found[k] = aboveFrom(vals, found[k], mid)
			}
			bounds[k] = max(found[k], bounds[k-1])
		}
		moved := false
		for k := range cent {
			lo, hi := bounds[k], bounds[k+1]
			changed[k] = false
			if it > 0 && lo == last[k] && hi == last[k+1] {
				continue
			}
			if sw := cw[hi] - cw[lo]; hi > lo && sw > 0 {
				if nc := (cwv[hi] - cwv[lo]) / sw; nc != cent[k] {
					cent[k], moved, changed[k] = nc, true, true
				}
			}
		}
		if !moved {
			break
		}
		copy(last, bounds)
	}
	for k := range cent {
		pal[k] = f16Table[toF16(float32(cent[k]))]
	}
	slices.Sort(pal) // rounding keeps the order; sorting guards ties
	for k := range pal {
		lut[k] = toF16(pal[k])
	}
	for k := range mids {
		mids[k] = (pal[k] + pal[k+1]) / 2
	}
	return pal, mids
}

// above returns the index of the first of the ascending vals greater than t (len(vals)
// if none).
func above(vals []float32, t float32) int {
	if len(vals) == 0 {
		return 0
	}
	// The answer lies in [base, base+n]; halving n with a conditional move in place of a
	// branch keeps the search free of mispredictions.
	base, n := 0, len(vals)
	for n > 1 {
		half := n / 2
		if vals[base+half] <= t {
			base += half
		}
		n -= half
	}
	if vals[base] <= t {
		base++
	}
	return base
}

// aboveFrom is above, searching outward from a guess j: steps of 1, 2, 4, … bracket the
// answer, then a binary search finds it, in time logarithmic in its distance from j.
func aboveFrom(vals []float32, j int, t float32) int {
	n := len(vals)
	j = min(max(j, 0), n)
	if j < n && vals[j] <= t { // the answer lies right of j
		lo, step := j+1, 1
		for lo+step-1 < n && vals[lo+step-1] <= t {
			lo += step
			step *= 2
		}
		hi := min(lo+step-1, n) // vals[hi] > t, or hi = n
		return lo + above(vals[lo:hi], t)
	}
	if j == 0 || vals[j-1] <= t {
		return j
	}
	hi, step := j-1, 1 // vals[hi] > t: the answer is at most hi
	for hi-step >= 0 && vals[hi-step] > t {
		hi -= step
		step *= 2
	}
	lo := max(hi-step+1, 0) // vals[lo-1] ≤ t, or lo = 0
	return lo + above(vals[lo:hi], t)
}

// nearest returns the index of the palette entry (sorted pal, midpoints mids) nearest v:
// the number of midpoints below v, by binary search over them (K−1 for a palette of K
// entries, a power of two).
func nearest(mids []float32, v float32) int32 {
	if len(mids) == 15 {
		return nearest16((*[15]float32)(mids), v)
	}
	k := 0
	for step := (len(mids) + 1) / 2; step > 0; step /= 2 {
		if v > mids[k+step-1] {
			k += step
		}
	}
	return int32(k)
}

// nearest16 is nearest for the 16-entry palette, unrolled: the common case's inner loop.
func nearest16(mids *[15]float32, v float32) int32 {
	k := 0
	if v > mids[7] {
		k = 8
	}
	if v > mids[k+3] {
		k += 4
	}
	if v > mids[k+1] {
		k += 2
	}
	if v > mids[k] {
		k++
	}
	return int32(k)
}
