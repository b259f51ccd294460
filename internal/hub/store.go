package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Store is the local model directory: DIR/OWNER/REPO/FILE.gguf, one file per pulled model,
// and FILE.gguf.partial while a download is under way or was cut.
type Store struct{ Dir string }

// DefaultStore is $LILIMS_MODELS, else "lilims/models" under the user cache directory.
func DefaultStore() (*Store, error) {
	if d := os.Getenv("LILIMS_MODELS"); d != "" {
		return &Store{Dir: d}, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("no model directory (set LILIMS_MODELS): %w", err)
	}
	return &Store{Dir: filepath.Join(d, "lilims", "models")}, nil
}

// Path is where file f of a repository lives in the store.
func (s *Store) Path(f RemoteFile) string {
	return filepath.Join(s.Dir, filepath.FromSlash(f.Repo), filepath.FromSlash(f.Path))
}

// Local is a model in the store.
type Local struct {
	RemoteFile           // Repo and Path; Size from disk; no SHA256
	File       string    // the file on disk
	Modified   time.Time // when it was pulled
}

// Name is how commands refer to the model: hf://OWNER/REPO/FILE.
func (l Local) Name() string { return Ref{Repo: l.Repo, File: l.Path}.String() }

// List returns the store's complete models (no .partial files), sorted by name.
func (s *Store) List() ([]Local, error) {
	var out []Local
	err := filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == s.Dir {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(strings.ToLower(d.Name()), ".gguf") {
			return nil
		}
		rel, err := filepath.Rel(s.Dir, p)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) < 3 {
			return nil // not OWNER/REPO/FILE: not ours
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, Local{
			RemoteFile: RemoteFile{Repo: parts[0] + "/" + parts[1], Path: strings.Join(parts[2:], "/"), Size: info.Size()},
			File:       p, Modified: info.ModTime(),
		})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, err
}

// Find returns the local model ref names, chosen among the repository's local files as
// Resolve chooses among its remote ones; ok is false when none is there.
func (s *Store) Find(ref Ref) (Local, bool, error) {
	all, err := s.List()
	if err != nil {
		return Local{}, false, err
	}
	var files []RemoteFile
	byPath := map[string]Local{}
	for _, l := range all {
		if l.Repo == ref.Repo {
			files = append(files, l.RemoteFile)
			byPath[l.Path] = l
		}
	}
	if len(files) == 0 {
		return Local{}, false, nil
	}
	f, err := Pick(ref, files)
	if err != nil {
		// Another quantization of the repository is here, not this one.
		return Local{}, false, nil
	}
	return byPath[f.Path], true, nil
}

// Remove deletes the local models ref names: one file (hf://…/FILE, OWNER/REPO:QUANT) or, for
// a bare OWNER/REPO, every file of the repository. It returns what it removed.
func (s *Store) Remove(ref Ref) ([]Local, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	var gone []Local
	for _, l := range all {
		if l.Repo != ref.Repo {
			continue
		}
		if ref.File != "" && l.Path != ref.File {
			continue
		}
		if ref.Quant != "" && len(withTag([]RemoteFile{l.RemoteFile}, ref.Quant)) == 0 {
			continue
		}
		if err := os.Remove(l.File); err != nil {
			return gone, err
		}
		os.Remove(l.File + ".partial")
		gone = append(gone, l)
	}
	if len(gone) == 0 {
		return nil, fmt.Errorf("no local model %s (see lilims ls)", ref)
	}
	// Drop directories the removal emptied, up to the store's root.
	for _, l := range gone {
		for d := filepath.Dir(l.File); d != s.Dir && strings.HasPrefix(d, s.Dir); d = filepath.Dir(d) {
			if os.Remove(d) != nil {
				break
			}
		}
	}
	return gone, nil
}

// Get returns the local file of ref, pulling it through c first when the store lacks it.
// pulled says whether it downloaded.
func (s *Store) Get(ctx context.Context, c *Client, ref Ref, progress func(RemoteFile) Progress) (file string, pulled bool, err error) {
	if l, ok, err := s.Find(ref); err != nil {
		return "", false, err
	} else if ok {
		return l.File, false, nil
	}
	file, err = s.Pull(ctx, c, ref, progress)
	return file, err == nil, err
}

// Pull resolves ref on the Hub and downloads its file into the store (resuming a cut
// download), even when a copy is already there; it returns the file's path.
func (s *Store) Pull(ctx context.Context, c *Client, ref Ref, progress func(RemoteFile) Progress) (string, error) {
	f, err := c.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	dst := s.Path(f)
	if info, err := os.Stat(dst); err == nil && info.Size() == f.Size {
		if f.SHA256 == "" {
			return dst, nil
		}
		if sum, err := fileSHA256(dst); err == nil && sum == f.SHA256 {
			return dst, nil // already here and whole
		}
	}
	var p Progress
	if progress != nil {
		p = progress(f)
	}
	if err := c.Download(ctx, f, dst, p); err != nil {
		return "", err
	}
	return dst, nil
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
