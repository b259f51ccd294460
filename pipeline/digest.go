package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lilims/lilims/internal/atomicfile"
)

// FileDigest returns "sha256:<hex>", the SHA-256 of the file's whole content, without reading
// a large file on every run.
//
// Hashing a 5 GB GGUF takes seconds, so the full hash is computed once and remembered in
// DIR/files under the file's absolute path together with its identity: size, modification
// time, and — where the OS has them — device, inode and change time (ctime). Any write to a
// file updates its ctime, and ctime cannot be set back by a user (utimes(2) and `touch -d`
// set it to now), so an unchanged identity means unchanged content; a copy, a rename over it
// or an edit that restores the mtime changes it and forces a re-hash. As a second line of
// defence for file systems with coarse or missing ctimes, the memo also keeps a hash of the
// first 64 KiB (the GGUF header and metadata), 16 evenly spaced 4 KiB blocks and the last
// 4 KiB, checked on every use: about 130 KiB read per run whatever the model's size.
//
// The key of a build stage holds this digest, not the path or the identity, so a model
// copied elsewhere (a new identity, hence one re-hash) still finds its cached builds.
// progress, if not nil, is called while a full hash runs.
func (c *Cache) FileDigest(path string, progress func(done, total int64)) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", path)
	}
	id := identityOf(info)
	sample, err := sampleHash(f, info.Size())
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	memoPath := c.digestMemoPath(abs)
	if m, ok := readMemo(memoPath); ok && m.Path == abs && m.Identity == id && m.Sample == sample {
		return m.Digest, nil
	}
	h := sha256.New()
	var r io.Reader = f
	if progress != nil && info.Size() >= 64<<20 {
		r = &progressReader{r: f, total: info.Size(), report: progress}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	n, err := io.Copy(h, r)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if n != info.Size() {
		return "", fmt.Errorf("%s: changed while it was hashed (%d bytes, expected %d)", path, n, info.Size())
	}
	m := digestMemo{Path: abs, Identity: id, Sample: sample, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}
	writeMemo(memoPath, m) // best effort: without the memo the next run hashes again
	return m.Digest, nil
}

// fileIdentity is what says a file is unchanged since it was hashed.
type fileIdentity struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Dev     uint64 `json:"dev,omitempty"`
	Ino     uint64 `json:"ino,omitempty"`
	CTime   int64  `json:"ctime_ns,omitempty"`
}

type digestMemo struct {
	Path     string       `json:"path"`
	Identity fileIdentity `json:"identity"`
	Sample   string       `json:"sample"`
	Digest   string       `json:"digest"`
}

func (c *Cache) digestMemoPath(abs string) string {
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(c.dir, "files", hex.EncodeToString(sum[:16])+".json")
}

// maxMemoBytes bounds a memo read back from the cache directory.
const maxMemoBytes = 64 << 10

func readMemo(path string) (digestMemo, bool) {
	var m digestMemo
	f, err := os.Open(path)
	if err != nil {
		return m, false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMemoBytes))
	if err != nil || json.Unmarshal(data, &m) != nil {
		return digestMemo{}, false
	}
	return m, true
}

func writeMemo(path string, m digestMemo) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data)
}

// sampleHash hashes the head, 16 evenly spaced blocks and the tail of a file.
func sampleHash(f *os.File, size int64) (string, error) {
	const head, block, blocks = 64 << 10, 4 << 10, 16
	h := sha256.New()
	buf := make([]byte, head)
	read := func(off int64, n int) error {
		if off >= size {
			return nil
		}
		if rem := size - off; int64(n) > rem {
			n = int(rem)
		}
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return err
		}
		fmt.Fprintf(h, "%d:", off)
		h.Write(buf[:n])
		return nil
	}
	if err := read(0, head); err != nil {
		return "", err
	}
	if size > head {
		for i := int64(1); i <= blocks; i++ {
			if err := read(size*i/(blocks+1), block); err != nil {
				return "", err
			}
		}
		if err := read(max(size-block, 0), block); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type progressReader struct {
	r           io.Reader
	done, total int64
	last        int64
	report      func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.done-p.last >= 64<<20 || (err == io.EOF && p.done != p.last) {
		p.last = p.done
		p.report(p.done, p.total)
	}
	return n, err
}

// pruneDigests removes memos of files that are gone or changed; it returns how many.
func (c *Cache) pruneDigests() int {
	dir := filepath.Join(c.dir, "files")
	names, _ := os.ReadDir(dir)
	n := 0
	for _, e := range names {
		path := filepath.Join(dir, e.Name())
		if m, ok := readMemo(path); ok {
			if info, err := os.Stat(m.Path); err == nil && identityOf(info) == m.Identity {
				continue
			}
		}
		if os.Remove(path) == nil {
			n++
		}
	}
	return n
}
