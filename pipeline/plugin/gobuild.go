package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/lilims/lilims/internal/atomicfile"
	"github.com/lilims/lilims/pipeline/stage"
)

// goBuild builds the Go main package in dir into the plugin cache and returns the binary.
// The binary's name is the hash of everything it is built from — the Go toolchain, the
// target, and the files of every non-standard package it imports (so a change in a lilims
// package the plugin uses rebuilds it too) — so an unchanged plugin is never rebuilt and a
// changed one always is.
func (h *Host) goBuild(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opts.GoBuildTimeout)
	defer cancel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building a plugin from its Go package needs the go command: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	key, err := sourceHash(ctx, goTool, abs)
	if err != nil {
		return "", err
	}
	cache := h.opts.CacheDir
	if cache == "" {
		if cache, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	out := filepath.Join(cache, key, filepath.Base(abs))
	if runtime.GOOS == "windows" {
		out += ".exe"
	}
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
		now := time.Now()
		os.Chtimes(filepath.Dir(out), now, now) // last use, for `lilims cache prune`
		return out, nil
	}
	// go build takes seconds to minutes (a cold module cache downloads and compiles every
	// dependency): say what is happening, and how long it took.
	start := time.Now()
	msg := fmt.Sprintf("building plugin %s (go build) …", dir)
	h.report(stage.Event{Stage: "plugin", Event: "start", Msg: msg})
	built := false
	defer func() {
		if built {
			h.report(stage.Event{Stage: "plugin", Event: "done",
				Msg: fmt.Sprintf("built plugin %s in %.1fs", dir, time.Since(start).Seconds())})
		}
	}()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	// Build beside the target and rename: a concurrent run or an interrupted build never
	// leaves a half-written binary under the final name.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", tmp.Name(), ".")
	cmd.Dir = abs
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("go build did not finish within %v", h.opts.GoBuildTimeout)
		}
		return "", fmt.Errorf("go build: %v\n%s", err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	// Where the binary came from, for `lilims cache ls` (the directory name is a hash).
	atomicfile.WriteFile(filepath.Join(filepath.Dir(out), sourceFile), []byte(abs+"\n"))
	built = true
	return out, nil
}

// sourceHash hashes what `go build` in dir depends on, as `go list -deps` reports it.
func sourceHash(ctx context.Context, goTool, dir string) (string, error) {
	const format = `{{if not .Standard}}{{.ImportPath}}{{"\t"}}{{.Dir}}{{"\t"}}{{join .GoFiles ","}},{{join .CgoFiles ","}},{{join .EmbedFiles ","}}{{"\t"}}{{if .Module}}{{.Module.GoMod}}{{end}}{{"\t"}}{{.Name}}{{end}}`
	cmd := exec.CommandContext(ctx, goTool, "list", "-deps", "-f", format, ".")
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("not a buildable Go package (go list: %v)\n%s", err, strings.TrimSpace(stderr.String()))
	}
	hw := sha256.New()
	fmt.Fprintf(hw, "lilims plugin build v1\n%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if v, err := exec.CommandContext(ctx, goTool, "env", "GOVERSION", "GOFLAGS", "CGO_ENABLED").Output(); err == nil {
		hw.Write(v)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	mods := map[string]bool{}
	isMain := false
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			continue
		}
		importPath, pkgDir, files, gomod, name := f[0], f[1], f[2], f[3], f[4]
		if pkgDir == dir && name == "main" {
			isMain = true
		}
		fmt.Fprintf(hw, "package %s\n", importPath)
		for _, name := range strings.Split(files, ",") {
			if name == "" {
				continue
			}
			if err := hashFile(hw, filepath.Join(pkgDir, name)); err != nil {
				return "", err
			}
		}
		if gomod != "" && !mods[gomod] {
			mods[gomod] = true
			if err := hashFile(hw, gomod); err != nil {
				return "", err
			}
			if sum := strings.TrimSuffix(gomod, "go.mod") + "go.sum"; sum != gomod {
				hashFile(hw, sum) // optional
			}
		}
	}
	if !isMain {
		return "", fmt.Errorf("%s is not a main package (a plugin's main calls sdk.Serve)", dir)
	}
	return hex.EncodeToString(hw.Sum(nil))[:32], nil
}

func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(w, "file %s\n", path)
	_, err = io.Copy(w, f)
	return err
}
