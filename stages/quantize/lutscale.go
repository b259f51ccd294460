package quantize

import (
	"math"

	"github.com/lilims/lilims/stages/quantize/qweights"
)

// lutChannel palettizes rows [r0, r0+rows) (ws.x) with a scale per channel: each row is
// divided by S, the fp16 of its largest |weight|, the groups of rows are palettized by
// the k-means with the importance weights times S² (so that it minimises the error in the
// weights' own units), and the indices, palettes and scales are written. The errors
// returned are of S·palette[index] against the weights. With gptq the indices are assigned
// with GPTQ error feedback on the divided rows: scaling a row scales its rounding errors
// and their compensation alike.
func (ws *workspace) lutChannel(j *job, imp []float32, gptq *gptqState, r0, rows int, w *qweights.Writer) (errSum, sigSum float64, err error) {
	in, g, K := j.info.Shape[1], j.lut.group, j.lut.entries()
	groups := rows / g
	n := rows * in
	ws.scale = grow(ws.scale, groups*K+rows)
	pal, scale := ws.scale[:groups*K], ws.scale[groups*K:groups*K+rows]
	ws.deq = grow(ws.deq, n)
	xn := ws.deq[:n]
	for r := range rows {
		scale[r] = toF16(rowScale(ws.x[r*in:(r+1)*in], xn[r*in:(r+1)*in]))
	}
	ws.diff = grow(ws.diff, g*in) // ws.w is groupGPTQ's
	wt := ws.diff[:g*in]
	for k := range groups {
		channelWeights(wt, imp, g, in, func(r int) float32 { return f16Table[scale[k*g+r]] })
		lo, hi := k*g*in, (k+1)*g*in
		if gptq != nil {
			j.lut.groupGPTQ(xn[lo:hi], wt, g, gptq, ws, ws.q[lo:hi], pal[k*K:(k+1)*K])
		} else {
			j.lut.quantizeGroup(ws.palettes(), xn[lo:hi], wt, ws.q[lo:hi], pal[k*K:(k+1)*K])
		}
	}
	for e := range n {
		r := e / in
		y := f16Table[scale[r]] * f16Table[pal[r/g*K+int(ws.q[e])]]
		d := ws.x[e] - y
		errSum += float64(d * d)
		sigSum += float64(ws.x[e] * ws.x[e])
	}
	name := j.info.Name
	if err := ws.writeIndices(w, name+".data", r0*in, ws.q[:n], j.lut.bits); err != nil {
		return 0, 0, err
	}
	if err := ws.writeF16(w, name+".lut", r0/g*K, pal); err != nil {
		return 0, 0, err
	}
	return errSum, sigSum, ws.writeF16(w, name+".scale", r0, scale)
}

// rowScale returns a row's scale S, the fp16 of its largest |weight| (1 if that is 0 or
// not finite in fp16), and writes the row divided by S to xn.
func rowScale(x, xn []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, float32(math.Abs(float64(v))))
	}
	s := f16Table[toF16(m)]
	if s == 0 || math.IsInf(float64(s), 0) {
		s = 1
	}
	for i, v := range x {
		xn[i] = v / s
	}
	return s
}

// channelWeights writes to wt the k-means weights of g rows of in elements palettized
// divided by their scales (rowScale): each element's importance (imp; nil: 1) times its
// row's scale squared, so that the k-means minimises the error in the weights' own units.
func channelWeights(wt, imp []float32, g, in int, scale func(row int) float32) {
	for r := range g {
		s2 := scale(r) * scale(r)
		for i := range in {
			v := float32(1)
			if imp != nil {
				v = imp[r*in+i]
			}
			wt[r*in+i] = v * s2
		}
	}
}
