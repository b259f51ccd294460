package eval

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"
)

// The comparison chart has three panels side by side, one colour per scheme throughout:
// Δ perplexity (%) per scheme as bars, bits per weight per scheme as bars, and the per-layer
// relative RMS error of the quantized weights as one line per scheme. It is drawn once on a
// canvas that writes either SVG (hand-written XML, no dependency) or PNG.

// canvas is the little a chart needs of a drawing surface. Coordinates are pixels from the
// top-left corner.
type canvas interface {
	rect(x, y, w, h float64, fill color.RGBA)
	line(x1, y1, x2, y2 float64, stroke color.RGBA, width float64)
	// text draws s with its baseline at y; anchor is 's' (start at x), 'm' (centred) or 'e'
	// (ending at x).
	text(x, y float64, s string, anchor byte, fill color.RGBA)
}

// palette holds distinguishable colours (Okabe–Ito, readable by colour-blind people).
var palette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xff}, {0xE6, 0x9F, 0x00, 0xff}, {0x00, 0x9E, 0x73, 0xff},
	{0xD5, 0x5E, 0x00, 0xff}, {0xCC, 0x79, 0xA7, 0xff}, {0x56, 0xB4, 0xE9, 0xff},
	{0xF0, 0xE4, 0x42, 0xff}, {0x00, 0x00, 0x00, 0xff},
}

var (
	ink   = color.RGBA{0x22, 0x22, 0x22, 0xff}
	grid  = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	white = color.RGBA{0xff, 0xff, 0xff, 0xff}
)

// chart layout, in pixels.
const (
	chartHeight = 350
	panelTop    = 60  // below the title and panel headings
	panelBottom = 300 // the x axis; scheme names and the legend go below it
	panelGap    = 70  // between panels, room for the next panel's y labels
	marginLeft  = 60
	slotWidth   = 72 // per scheme in the bar panels: fits a 10-character name in 7-px glyphs
)

// chartSize returns the width and height of the chart for n schemes.
func chartSize(n int) (w, h int) {
	bars := max(n*slotWidth, 200)
	return marginLeft + 2*bars + 2*panelGap + 320 + 20, chartHeight
}

// drawChart lays the comparison out on c.
func drawChart(c canvas, rows []SchemeResult) {
	w, h := chartSize(len(rows))
	c.rect(0, 0, float64(w), float64(h), white)
	c.text(marginLeft, 20, "lilims compare: quality and size per quantization scheme", 's', ink)
	bars := float64(max(len(rows)*slotWidth, 200))
	x := float64(marginLeft)

	delta := make([]float64, len(rows))
	bits := make([]float64, len(rows))
	for i, r := range rows {
		delta[i], bits[i] = r.DeltaPPLPct, r.BitsPerWeight
		if math.Abs(delta[i]) < 0.005 {
			// Below the table's precision (summation order between two fp16 runs): a
			// −1e−13 would otherwise pull a whole tick step below zero onto the axis.
			delta[i] = 0
		}
	}
	barPanel(c, x, bars, "Δ perplexity vs base (%)", rows, delta)
	x += bars + panelGap
	barPanel(c, x, bars, "bits per weight", rows, bits)
	x += bars + panelGap
	layerPanel(c, x, 320, rows)
}

// barPanel draws one bar per scheme, from zero to its value.
func barPanel(c canvas, x0, width float64, title string, rows []SchemeResult, vals []float64) {
	lo, hi := 0.0, 0.0
	for _, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	ticks, lo, hi := niceTicks(lo, hi)
	y := func(v float64) float64 { return panelBottom - (v-lo)/(hi-lo)*(panelBottom-panelTop) }
	c.text(x0, panelTop-12, title, 's', ink)
	axes(c, x0, width, ticks, y)
	slot := width / float64(max(len(rows), 1))
	for i, r := range rows {
		v := vals[i]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		top, bottom := math.Min(y(v), y(0)), math.Max(y(v), y(0))
		bx := x0 + float64(i)*slot + slot*0.2
		c.rect(bx, top, slot*0.6, math.Max(bottom-top, 1), palette[i%len(palette)])
		label := y(v) - 4
		if v < 0 {
			label = y(v) + 12
		}
		c.text(bx+slot*0.3, label, formatTick(v), 'm', ink)
		c.text(bx+slot*0.3, panelBottom+16, shorten(r.Scheme, int(slot/7)), 'm', ink)
	}
	c.line(x0, y(0), x0+width, y(0), ink, 1)
}

// layerPanel draws the per-layer error as one line (with a dot per layer) per scheme.
func layerPanel(c canvas, x0, width float64, rows []SchemeResult) {
	layers, hi := 0, 0.0
	for _, r := range rows {
		layers = max(layers, len(r.LayerRelRMSE))
		for _, e := range r.LayerRelRMSE {
			if !math.IsNaN(e) && !math.IsInf(e, 0) {
				hi = math.Max(hi, e)
			}
		}
	}
	ticks, lo, hi := niceTicks(0, hi)
	y := func(v float64) float64 { return panelBottom - (v-lo)/(hi-lo)*(panelBottom-panelTop) }
	c.text(x0, panelTop-12, "weight error per layer (rel. RMSE)", 's', ink)
	axes(c, x0, width, ticks, y)
	x := func(i int) float64 {
		if layers <= 1 {
			return x0 + width/2
		}
		return x0 + 10 + float64(i)*(width-20)/float64(layers-1)
	}
	step := max(1, layers/10) // at most about ten layer numbers on the axis
	for i := 0; i < layers; i += step {
		c.text(x(i), panelBottom+16, strconv.Itoa(i), 'm', ink)
	}
	c.text(x0+width, panelBottom+30, "layer", 'e', ink)
	legendY := float64(panelBottom + 46)
	lx := x0
	for i, r := range rows {
		col := palette[i%len(palette)]
		prevOK := false
		for l, e := range r.LayerRelRMSE {
			ok := !math.IsNaN(e) && !math.IsInf(e, 0)
			if ok && prevOK {
				c.line(x(l-1), y(r.LayerRelRMSE[l-1]), x(l), y(e), col, 2)
			}
			if ok {
				c.rect(x(l)-2.5, y(e)-2.5, 5, 5, col)
			}
			prevOK = ok
		}
		// legend: a swatch and the name
		c.rect(lx, legendY-8, 10, 10, col)
		name := shorten(r.Scheme, 12)
		c.text(lx+14, legendY+1, name, 's', ink)
		lx += 14 + float64(7*len(name)) + 12
	}
}

// axes draws the y axis with gridlines at the ticks.
func axes(c canvas, x0, width float64, ticks []float64, y func(float64) float64) {
	for _, t := range ticks {
		c.line(x0, y(t), x0+width, y(t), grid, 1)
		c.text(x0-6, y(t)+4, formatTick(t), 'e', ink)
	}
	c.line(x0, panelTop, x0, panelBottom, ink, 1)
}

// niceTicks returns about five round tick values covering [lo, hi] and the range they span.
func niceTicks(lo, hi float64) (ticks []float64, from, to float64) {
	if hi-lo < 1e-12 {
		hi = lo + 1
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	from, to = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	for v := from; v <= to+step/2; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return ticks, from, to
}

func formatTick(v float64) string {
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// shorten cuts s to n characters, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if n < 2 || len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// WriteSVG draws the comparison chart as an SVG document.
func WriteSVG(w io.Writer, rows []SchemeResult) error {
	width, height := chartSize(len(rows))
	s := &svgCanvas{w: w}
	s.printf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	drawChart(s, rows)
	s.printf("</svg>\n")
	return s.err
}

// svgCanvas writes SVG elements; the first write error stops it and is kept.
type svgCanvas struct {
	w   io.Writer
	err error
}

func (s *svgCanvas) printf(format string, a ...any) {
	if s.err == nil {
		_, s.err = fmt.Fprintf(s.w, format, a...)
	}
}

func hex(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

func (s *svgCanvas) rect(x, y, w, h float64, fill color.RGBA) {
	s.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, w, h, hex(fill))
}

func (s *svgCanvas) line(x1, y1, x2, y2 float64, stroke color.RGBA, width float64) {
	s.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g"/>`+"\n",
		x1, y1, x2, y2, hex(stroke), width)
}

func (s *svgCanvas) text(x, y float64, str string, anchor byte, fill color.RGBA) {
	a := map[byte]string{'s': "start", 'm': "middle", 'e': "end"}[anchor]
	s.printf(`<text x="%.1f" y="%.1f" text-anchor="%s" fill="%s">%s</text>`+"\n", x, y, a, hex(fill), escapeXML(str))
}

// escapeXML escapes the characters that XML text content may not hold literally; scheme
// names come from the command line and may contain anything.
func escapeXML(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '"':
			b = append(b, "&quot;"...)
		default:
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				continue // not allowed in XML 1.0 at all
			}
			b = append(b, c)
		}
	}
	return string(b)
}
