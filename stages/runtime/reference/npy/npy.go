// Package npy reads and writes NumPy .npy files (format versions 1.0, 2.0 and 3.0), the
// interchange format of `lilims predict` for model inputs, outputs and states.
//
// Only little-endian (or byte-sized) C-order arrays of the dtypes the runtime exchanges are
// supported: '<f2', '<f4', '<f8', '<i4', '<i8', '|b1', '|u1', '|i1'. It holds no
// arithmetic; converting to the runtime's tensors is the caller's job.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Dtype is a NumPy array-protocol type string in its little-endian spelling.
type Dtype string

// The supported dtypes.
const (
	Float16 Dtype = "<f2"
	Float32 Dtype = "<f4"
	Float64 Dtype = "<f8"
	Int32   Dtype = "<i4"
	Int64   Dtype = "<i8"
	Bool    Dtype = "|b1"
	Uint8   Dtype = "|u1"
	Int8    Dtype = "|i1"
)

// Size returns the element size in bytes, or 0 for an unsupported dtype.
func (d Dtype) Size() int {
	switch d {
	case Float16:
		return 2
	case Float32, Int32:
		return 4
	case Float64, Int64:
		return 8
	case Bool, Uint8, Int8:
		return 1
	}
	return 0
}

// Array is an n-dimensional array as stored in a .npy file: row-major little-endian bytes.
type Array struct {
	Dtype Dtype
	Shape []int // empty for a scalar
	Data  []byte
}

// Len returns the number of elements.
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// Float64s returns every element converted to float64 (any supported dtype).
func (a *Array) Float64s() []float64 {
	n := a.Len()
	out := make([]float64, n)
	for i := range out {
		out[i] = a.at(i)
	}
	return out
}

func (a *Array) at(i int) float64 {
	d := a.Data
	switch a.Dtype {
	case Float16:
		return float64(halfBitsToFloat(binary.LittleEndian.Uint16(d[2*i:])))
	case Float32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:])))
	case Float64:
		return math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:]))
	case Int32:
		return float64(int32(binary.LittleEndian.Uint32(d[4*i:])))
	case Int64:
		return float64(int64(binary.LittleEndian.Uint64(d[8*i:])))
	case Bool, Uint8:
		return float64(d[i])
	case Int8:
		return float64(int8(d[i]))
	}
	return math.NaN()
}

// halfBitsToFloat widens an IEEE binary16 bit pattern exactly.
func halfBitsToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: man·2^-24
		f := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

var magic = []byte("\x93NUMPY")

// ErrFormat is wrapped by every error about a malformed file.
var ErrFormat = errors.New("npy: malformed file")

// maxHeader bounds the header length read from a file (NumPy itself caps it at 10000 bytes
// unless told otherwise); maxData bounds the payload when reading from a stream.
const (
	maxHeader = 1 << 16
	maxData   = 1 << 40
)

// ReadFile reads one array from a .npy file.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Read(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Read reads one array in .npy format from r.
func Read(r io.Reader) (*Array, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("%w: reading magic at offset 0: %v", ErrFormat, err)
	}
	if !bytes.Equal(pre[:6], magic) {
		return nil, fmt.Errorf("%w: bad magic %q at offset 0", ErrFormat, pre[:6])
	}
	major := pre[6]
	var hlen int
	off := 8
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%w: header length at offset 8: %v", ErrFormat, err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
		off += 2
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%w: header length at offset 8: %v", ErrFormat, err)
		}
		n := binary.LittleEndian.Uint32(b[:])
		if n > maxHeader {
			return nil, fmt.Errorf("%w: header length %d at offset 8 exceeds %d", ErrFormat, n, maxHeader)
		}
		hlen = int(n)
		off += 4
	default:
		return nil, fmt.Errorf("%w: unsupported format version %d.%d", ErrFormat, major, pre[7])
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("%w: header of %d bytes at offset %d: %v", ErrFormat, hlen, off, err)
	}
	a, err := parseHeader(string(hdr))
	if err != nil {
		return nil, fmt.Errorf("%w: header at offset %d: %v", ErrFormat, off, err)
	}
	off += hlen
	size := a.Dtype.Size()
	n := uint64(1)
	for _, d := range a.Shape {
		n *= uint64(d)
		if n > maxData {
			return nil, fmt.Errorf("%w: shape %v too large", ErrFormat, a.Shape)
		}
	}
	want := n * uint64(size)
	// Grow the buffer as bytes arrive rather than trusting the header's size up front.
	var buf bytes.Buffer
	got, err := buf.ReadFrom(io.LimitReader(r, int64(want)))
	if err != nil {
		return nil, fmt.Errorf("%w: data at offset %d: %v", ErrFormat, off, err)
	}
	if uint64(got) != want {
		return nil, fmt.Errorf("%w: data at offset %d: shape %v of %s needs %d bytes, file has %d",
			ErrFormat, off, a.Shape, a.Dtype, want, got)
	}
	a.Data = buf.Bytes()
	return a, nil
}

// parseHeader reads the Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)}.
func parseHeader(h string) (*Array, error) {
	h = strings.TrimSpace(h)
	if !strings.HasPrefix(h, "{") || !strings.HasSuffix(h, "}") {
		return nil, fmt.Errorf("not a dict literal: %q", h)
	}
	p := &lit{s: h[1 : len(h)-1]}
	a := &Array{}
	seen := map[string]bool{}
	for {
		p.space()
		if p.done() {
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat(':') {
			return nil, fmt.Errorf("missing ':' after key %q", key)
		}
		p.space()
		switch key {
		case "descr":
			d, err := p.str()
			if err != nil {
				return nil, err
			}
			a.Dtype, err = normDtype(d)
			if err != nil {
				return nil, err
			}
		case "fortran_order":
			switch {
			case p.word("False"):
			case p.word("True"):
				return nil, errors.New("fortran_order True is not supported")
			default:
				return nil, errors.New("fortran_order is not True or False")
			}
		case "shape":
			if a.Shape, err = p.tuple(); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown key %q", key)
		}
		seen[key] = true
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.done() {
				return nil, fmt.Errorf("expected ',' at %q", p.s[p.i:])
			}
		}
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return nil, fmt.Errorf("missing key %q", k)
		}
	}
	return a, nil
}

func normDtype(d string) (Dtype, error) {
	switch d {
	case "<f2", "<f4", "<f8", "<i4", "<i8", "|b1", "|u1", "|i1":
		return Dtype(d), nil
	case "<u1", "u1", "=u1":
		return Uint8, nil
	case "<i1", "i1", "=i1":
		return Int8, nil
	case "<b1", "b1", "?", "=b1":
		return Bool, nil
	}
	return "", fmt.Errorf("unsupported dtype %q (want little-endian f2/f4/f8/i4/i8/b1/u1/i1)", d)
}

// lit scans a tiny subset of Python literal syntax.
type lit struct {
	s string
	i int
}

func (p *lit) done() bool { return p.i >= len(p.s) }
func (p *lit) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t') {
		p.i++
	}
}
func (p *lit) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}
func (p *lit) word(w string) bool {
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}
func (p *lit) str() (string, error) {
	if p.done() || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", fmt.Errorf("expected a string at %q", p.s[p.i:])
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}
func (p *lit) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("shape is not a tuple")
	}
	shape := []int{}
	for {
		p.space()
		if p.eat(')') {
			return shape, nil
		}
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == p.i {
			return nil, fmt.Errorf("bad shape element at %q", p.s[p.i:])
		}
		d, err := strconv.Atoi(p.s[p.i:j])
		if err != nil || d > math.MaxInt32 {
			return nil, fmt.Errorf("bad shape element %q", p.s[p.i:j])
		}
		shape = append(shape, d)
		p.i = j
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.eat(')') {
				return nil, errors.New("unterminated shape tuple")
			}
			return shape, nil
		}
	}
}

// Write writes a in .npy format version 1.0 (2.0 if the header needs it).
func Write(w io.Writer, a *Array) error {
	if a.Dtype.Size() == 0 {
		return fmt.Errorf("npy: unsupported dtype %q", a.Dtype)
	}
	if want := a.Len() * a.Dtype.Size(); len(a.Data) != want {
		return fmt.Errorf("npy: shape %v of %s needs %d bytes, have %d", a.Shape, a.Dtype, want, len(a.Data))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "{'descr': '%s', 'fortran_order': False, 'shape': (", a.Dtype)
	for i, d := range a.Shape {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%d", d)
	}
	if len(a.Shape) == 1 {
		sb.WriteString(",") // a one-element Python tuple needs its trailing comma
	}
	sb.WriteString("), }")
	hdr := sb.String()
	// The whole preamble (magic, version, length, header, '\n') is padded with spaces to a
	// multiple of 64 bytes so the data is aligned, as NumPy writes it.
	version, lenSize := byte(1), 2
	total := len(magic) + 2 + lenSize + len(hdr) + 1
	if pad := (64 - total%64) % 64; len(hdr)+pad+1 > math.MaxUint16 {
		version, lenSize = 2, 4
	}
	total = len(magic) + 2 + lenSize + len(hdr) + 1
	hdr += strings.Repeat(" ", (64-total%64)%64) + "\n"
	var pre bytes.Buffer
	pre.Write(magic)
	pre.WriteByte(version)
	pre.WriteByte(0)
	if version == 1 {
		binary.Write(&pre, binary.LittleEndian, uint16(len(hdr)))
	} else {
		binary.Write(&pre, binary.LittleEndian, uint32(len(hdr)))
	}
	pre.WriteString(hdr)
	if _, err := w.Write(pre.Bytes()); err != nil {
		return err
	}
	_, err := w.Write(a.Data)
	return err
}

// WriteFile writes a to path in .npy format.
func WriteFile(path string, a *Array) error {
	var buf bytes.Buffer
	if err := Write(&buf, a); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
