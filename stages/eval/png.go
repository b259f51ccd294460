package eval

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// WritePNG draws the comparison chart (the same layout as WriteSVG) as a PNG image, with
// the 7×13 pixel font of golang.org/x/image/font/basicfont.
func WritePNG(w io.Writer, rows []SchemeResult) error {
	width, height := chartSize(len(rows))
	p := &pngCanvas{img: image.NewRGBA(image.Rect(0, 0, width, height))}
	drawChart(p, rows)
	return png.Encode(w, p.img)
}

type pngCanvas struct{ img *image.RGBA }

func (p *pngCanvas) rect(x, y, w, h float64, fill color.RGBA) {
	r := image.Rect(int(math.Round(x)), int(math.Round(y)), int(math.Round(x+w)), int(math.Round(y+h)))
	draw.Draw(p.img, r, image.NewUniform(fill), image.Point{}, draw.Src)
}

// line steps along the segment one pixel at a time, stamping a square of the stroke width.
func (p *pngCanvas) line(x1, y1, x2, y2 float64, stroke color.RGBA, width float64) {
	steps := int(math.Ceil(math.Max(math.Abs(x2-x1), math.Abs(y2-y1))))
	half := math.Max(width, 1) / 2
	for i := 0; i <= steps; i++ {
		t := 0.0
		if steps > 0 {
			t = float64(i) / float64(steps)
		}
		x, y := x1+t*(x2-x1), y1+t*(y2-y1)
		p.rect(x-half+0.5, y-half+0.5, 2*half, 2*half, stroke)
	}
}

func (p *pngCanvas) text(x, y float64, s string, anchor byte, fill color.RGBA) {
	s = asciiText(s)
	d := &font.Drawer{Dst: p.img, Src: image.NewUniform(fill), Face: basicfont.Face7x13}
	adv := d.MeasureString(s).Round()
	switch anchor {
	case 'm':
		x -= float64(adv) / 2
	case 'e':
		x -= float64(adv)
	}
	d.Dot = fixed.P(int(math.Round(x)), int(math.Round(y)))
	d.DrawString(s)
}

// asciiText spells out the few non-ASCII characters the chart uses, since the basic font
// holds ASCII only; anything else becomes '?'.
func asciiText(s string) string {
	s = strings.NewReplacer("Δ", "delta", "…", "~").Replace(s)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
