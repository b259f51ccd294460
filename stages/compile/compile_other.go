//go:build !darwin

package compile

import "context"

func compilerAvailable() bool { return false }

func compileModel(ctx context.Context, pkg, outDir string) (string, error) {
	return "", ErrNoCompiler
}
