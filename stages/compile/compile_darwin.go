//go:build darwin

package compile

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

func compilerAvailable() bool {
	return exec.Command("xcrun", "--find", "coremlcompiler").Run() == nil
}

// compileModel runs xcrun coremlcompiler; the .mlmodelc is named after the package.
func compileModel(ctx context.Context, pkg, outDir string) (string, error) {
	if !compilerAvailable() {
		return "", ErrNoCompiler
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "xcrun", compilerArgs(pkg, outDir)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("xcrun coremlcompiler compile %s: %v: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	name := strings.TrimSuffix(filepath.Base(pkg), filepath.Ext(pkg)) + ".mlmodelc"
	return filepath.Join(outDir, name), nil
}
