package quantize

import (
	"math"

	"github.com/lilims/lilims/stages/quantize/qweights"
)

// lutChannel palettizes rows [r0, r0+rows) (ws.x) with a scale per channel: each row is
// divided by S, the fp16 of its largest |weight|, the groups of rows are palettized by
// the k-means with the importance weights times S² (so that it minimises the error in the
// weights' own units), and the indices, palettes and scales are written. The errors
// returned are of S·palette[index] against the weights.
func (ws *workspace) lutChannel(j *job, imp []float32, r0, rows int, w *qweights.Writer) (errSum, sigSum float64, err error) {
	in, g := j.info.Shape[1], j.lut.group
	groups := rows / g
	n := rows * in
	ws.scale = grow(ws.scale, groups*16+rows)
	pal, scale := ws.scale[:groups*16], ws.scale[groups*16:groups*16+rows]
	ws.deq = grow(ws.deq, n)
	xn := ws.deq[:n]
	for r := range rows {
		x := ws.x[r*in : (r+1)*in]
		var m float32
		for _, v := range x {
			m = max(m, float32(math.Abs(float64(v))))
		}
		scale[r] = toF16(m)
		s := f16Table[scale[r]]
		if s == 0 || math.IsInf(float64(s), 0) {
			scale[r], s = toF16(1), 1
		}
		for i, v := range x {
			xn[r*in+i] = v / s
		}
	}
	ws.w = grow(ws.w, g*in)
	wt := ws.w[:g*in]
	for k := range groups {
		for r := range g {
			s2 := f16Table[scale[k*g+r]] * f16Table[scale[k*g+r]]
			for i := range in {
				v := float32(1)
				if imp != nil {
					v = imp[r*in+i]
				}
				wt[r*in+i] = v * s2
			}
		}
		lo, hi := k*g*in, (k+1)*g*in
		j.lut.quantizeGroup(ws.palettes(), xn[lo:hi], wt, ws.q[lo:hi], pal[k*16:(k+1)*16])
	}
	for e := range n {
		r := e / in
		y := f16Table[scale[r]] * f16Table[pal[r/g*16+int(ws.q[e])]]
		d := ws.x[e] - y
		errSum += float64(d * d)
		sigSum += float64(ws.x[e] * ws.x[e])
	}
	name := j.info.Name
	if err := ws.write4(w, name+".data", r0*in, ws.q[:n]); err != nil {
		return 0, 0, err
	}
	if err := ws.writeF16(w, name+".lut", r0/g*16, pal); err != nil {
		return 0, 0, err
	}
	return errSum, sigSum, ws.writeF16(w, name+".scale", r0, scale)
}
