// Package atomicfile writes small files so that readers see the old contents or the new,
// never a partial file: the bytes go to a temporary file beside the target, which is then
// renamed over it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically (temp file in the same directory + rename).
func WriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
