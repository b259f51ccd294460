// Package simd reads LILIMS_KERNELS, which narrows the assembly kernels the runtime and
// the quantizer may use. Every fast kernel has a portable Go form that it is tested
// against; forcing a narrower set is how a user (or CI) checks that a result does not
// depend on the CPU, and how a suspected kernel bug is confirmed.
package simd

import (
	"fmt"
	"os"
	"sync"
)

// Level is the widest kernel set allowed.
type Level int

const (
	Portable Level = iota // Go only
	Base                  // 256-bit (AVX2/FMA/F16C) on amd64, NEON on arm64
	Widest                // everything the CPU has (AVX-512 where present): the default
)

var (
	once  sync.Once
	level Level
)

// Allowed returns the level LILIMS_KERNELS asks for: "portable", "simd", or empty / "auto"
// for the widest. An unknown value is reported once on stderr and means "auto", so a typo
// never stops a run.
func Allowed() Level {
	once.Do(func() {
		v := os.Getenv("LILIMS_KERNELS")
		var ok bool
		if level, ok = Parse(v); !ok {
			fmt.Fprintf(os.Stderr, "lilims: LILIMS_KERNELS=%q is not one of auto, simd, portable; using auto\n", v)
		}
	})
	return level
}

// Parse reads a LILIMS_KERNELS value; ok is false (and the level Widest) for an unknown one.
func Parse(v string) (l Level, ok bool) {
	switch v {
	case "", "auto":
		return Widest, true
	case "simd":
		return Base, true
	case "portable":
		return Portable, true
	}
	return Widest, false
}
