package blob_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// npyArray is a little-endian, C-ordered array read from a .npy file.
type npyArray struct {
	descr string // numpy dtype string such as "<f2" or "|i1"
	shape []int
	data  []byte // raw element bytes
}

var npyHeaderRE = regexp.MustCompile(`'descr':\s*'([^']+)'.*'fortran_order':\s*(True|False).*'shape':\s*\(([^)]*)\)`)

// readNpy reads a .npy file (format versions 1–3) as written by numpy.save.
func readNpy(path string) (*npyArray, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 10 || !bytes.HasPrefix(raw, []byte("\x93NUMPY")) {
		return nil, fmt.Errorf("%s: not a .npy file", path)
	}
	var hlen, start int
	switch raw[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(raw[8:])), 10
	case 2, 3:
		if len(raw) < 12 {
			return nil, fmt.Errorf("%s: truncated header", path)
		}
		hlen, start = int(binary.LittleEndian.Uint32(raw[8:])), 12
	default:
		return nil, fmt.Errorf("%s: npy version %d", path, raw[6])
	}
	if start+hlen > len(raw) {
		return nil, fmt.Errorf("%s: truncated header", path)
	}
	m := npyHeaderRE.FindStringSubmatch(string(raw[start : start+hlen]))
	if m == nil || m[2] != "False" {
		return nil, fmt.Errorf("%s: unsupported header %q", path, raw[start:start+hlen])
	}
	a := &npyArray{descr: m[1], data: raw[start+hlen:]}
	for _, d := range strings.Split(m[3], ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		n, err := strconv.Atoi(d)
		if err != nil {
			return nil, fmt.Errorf("%s: shape %q", path, m[3])
		}
		a.shape = append(a.shape, n)
	}
	return a, nil
}

func (a *npyArray) count() int {
	n := 1
	for _, d := range a.shape {
		n *= d
	}
	return n
}
