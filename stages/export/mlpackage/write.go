package mlpackage

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// Write writes model as a package at dir, replacing any package there.
//
// weights, if not nil, is called first with a Writer for
// Data/com.apple.CoreML/weights/weight.bin (referred to from the program as
// WeightRef); model is serialized after it returns, so the callback may fill
// in the BlobFileValue offsets that Writer.Add returns. With nil weights the
// weights directory is left empty, as coremltools does for programs without
// blobs.
//
// items are extra files (Item), written under Data/ and listed in the manifest.
//
// The package is built in a temporary directory beside dir and renamed into
// place only when complete, so a failure never leaves a partial package.
func Write(dir string, model *milpb.Model, weights func(w *blob.Writer) error, items ...Item) (err error) {
	dir = filepath.Clean(dir)
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("mlpackage: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := build(tmp, model, weights, items); err != nil {
		return fmt.Errorf("mlpackage: write %s: %w", dir, err)
	}
	if err := replaceDir(tmp, dir); err != nil {
		return fmt.Errorf("mlpackage: %w", err)
	}
	return nil
}

// build writes the package content into the empty directory root.
func build(root string, model *milpb.Model, weights func(w *blob.Writer) error, items []Item) error {
	if model == nil {
		return errors.New("nil model")
	}
	wdir := filepath.Join(root, filepath.FromSlash(WeightsDir))
	if err := os.MkdirAll(wdir, 0o755); err != nil {
		return err
	}
	if weights != nil {
		w, err := blob.Create(filepath.Join(wdir, WeightFile))
		if err != nil {
			return err
		}
		if err := weights(w); err != nil {
			w.Close()
			return fmt.Errorf("weights: %w", err)
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	// Deterministic output keeps packages reproducible for content hashing.
	spec, err := proto.MarshalOptions{Deterministic: true}.Marshal(model)
	if err != nil {
		return fmt.Errorf("%s: %w", ModelFile, err)
	}
	if err := writeFile(filepath.Join(root, filepath.FromSlash(ModelFile)), spec); err != nil {
		return err
	}
	for _, it := range items {
		if !filepath.IsLocal(filepath.FromSlash(it.path())) || strings.ContainsAny(it.Author+it.Name, "/\\") {
			return fmt.Errorf("item %q is not a file name under an author directory", it.path())
		}
		where := filepath.Join(root, "Data", filepath.FromSlash(it.path()))
		if err := os.MkdirAll(filepath.Dir(where), 0o755); err != nil {
			return err
		}
		if err := writeFile(where, it.Data); err != nil {
			return err
		}
	}
	m := newManifest(spec, items)
	js, err := json.MarshalIndent(m, "", "    ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(root, ManifestFile), append(js, '\n'))
}

// writeFile writes data to a new file and syncs it, so that the rename that
// publishes the package cannot expose an unwritten file after a crash.
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// replaceDir renames the finished directory tmp to dir. An existing dir is
// first moved aside and removed only once tmp is in place; if the final
// rename fails, the old package is put back.
func replaceDir(tmp, dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return os.Rename(tmp, dir)
	} else if err != nil {
		return err
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			return fmt.Errorf("%w (and restoring %s from %s: %v)", err, dir, old, rerr)
		}
		return err
	}
	return os.RemoveAll(old)
}
