package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// minPluginGo is the Go a plugin's package directory needs: plugins import lilims's SDK, and
// lilims's go.mod says go 1.26.
const minPluginGo = "1.26"

// goToolchain is doctor's line on the go command, which `uses: plugin:DIR` runs to build a
// plugin from its package directory (a prebuilt plugin executable needs no Go).
type goToolchain struct {
	Path    string `json:"path,omitempty"`
	Version string `json:"version,omitempty"` // "go1.26.0"
	OK      bool   `json:"ok"`                // found, and new enough
}

func findGo(ctx context.Context) goToolchain {
	var g goToolchain
	path, err := exec.LookPath("go")
	if err != nil {
		return g
	}
	g.Path = path
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "env", "GOVERSION").Output()
	if err != nil {
		return g
	}
	g.Version = strings.TrimSpace(string(out))
	g.OK = goAtLeast(g.Version, minPluginGo)
	return g
}

// goAtLeast compares "go1.26.0" (or "go1.27rc1") with "1.26" on major and minor.
func goAtLeast(version, min string) bool {
	parse := func(v string) (int, int, bool) {
		v = strings.TrimPrefix(v, "go")
		maj, rest, _ := strings.Cut(v, ".")
		minor := strings.FieldsFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if len(minor) == 0 {
			return 0, 0, false
		}
		a, err1 := strconv.Atoi(maj)
		b, err2 := strconv.Atoi(minor[0])
		return a, b, err1 == nil && err2 == nil
	}
	a, b, ok := parse(version)
	c, d, ok2 := parse(min)
	return ok && ok2 && (a > c || a == c && b >= d)
}

func (g goToolchain) writeText(w io.Writer) error {
	var line string
	switch {
	case g.Path == "":
		line = "not found: plugin directories (uses: plugin:DIR) need Go ≥ " + minPluginGo + "; prebuilt plugin executables do not"
	case g.Version == "":
		line = g.Path + " (its version could not be read)"
	case !g.OK:
		line = fmt.Sprintf("%s at %s is too old: plugin directories need Go ≥ %s; prebuilt plugin executables do not", g.Version, g.Path, minPluginGo)
	default:
		line = fmt.Sprintf("found %s at %s (builds plugin directories)", g.Version, g.Path)
	}
	_, err := fmt.Fprintf(w, "go toolchain:       %s\n", line)
	return err
}
