package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lilims/lilims/pipeline/stage"
)

// Cache is a content-addressed store of build-stage outputs, laid out as
//
//	DIR/artifacts/<k[:2]>/<k>/manifest.json   what built the entry, and its artifact
//	DIR/artifacts/<k[:2]>/<k>/out/...          the files the stage wrote (read-only)
//	DIR/tmp/<k[:16]>.<random>/                 a build in progress
//	DIR/locks/<k>.lock                         flock(2) per key
//	DIR/files/<hash of path>.json              memoised file digests (see FileDigest)
//
// The key k of a build stage is the SHA-256 of its `uses:` name, its implementation version
// (Entry.Version, or this binary's), its resolved parameters, the keys of its input stages
// and the model file's digest — never its id or the paths involved, so two pipelines that
// build the same thing share it.
//
// Entries are written the way a build system writes them: a stage builds into DIR/tmp, the
// manifest is written last, and the directory is renamed into place; a run killed half-way
// leaves only a tmp directory, which no lookup ever reads and Prune removes. The rename is
// what makes entries trustworthy; the per-key lock only keeps two concurrent runs from
// building the same stage twice (the second waits and then finds the entry). Readers hold the
// lock shared while they link an entry out, so Prune (exclusive, non-blocking) never deletes
// an entry under them.
type Cache struct {
	dir string

	// MaxBytes bounds the cache: after a build adds an entry, the least recently used
	// entries no run is using are removed until the entries hold at most MaxBytes (0: no
	// bound). OpenCache sets it from DefaultCacheMaxBytes.
	MaxBytes int64

	selfOnce    sync.Once
	selfVersion string
	selfErr     error
}

// cacheFormat is part of every key: bump it when the layout or the key's contents change.
const cacheFormat = 1

// DefaultCacheDir is $LILIMS_CACHE_DIR, or "lilims" under the user cache directory
// (~/.cache on Linux, ~/Library/Caches on macOS).
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("LILIMS_CACHE_DIR"); d != "" {
		if !filepath.IsAbs(d) {
			return "", fmt.Errorf("LILIMS_CACHE_DIR=%q must be an absolute path", d)
		}
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set LILIMS_CACHE_DIR or pass --cache-dir): %w", err)
	}
	return filepath.Join(d, "lilims"), nil
}

// defaultCacheMax is the cache bound when LILIMS_CACHE_MAX_SIZE is unset: about ten
// conversions of a 3B model (each caches a quantized copy and a package of ≈ 1.5 GB).
const defaultCacheMax = 32 << 30

// DefaultCacheMaxBytes is $LILIMS_CACHE_MAX_SIZE ("50GiB", "20GB", "0" or "off" for no
// bound), else 32 GiB.
func DefaultCacheMaxBytes() (int64, error) {
	v := os.Getenv("LILIMS_CACHE_MAX_SIZE")
	if v == "" {
		return defaultCacheMax, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("LILIMS_CACHE_MAX_SIZE: %w", err)
	}
	return n, nil
}

// ParseSize reads a byte count: a number with an optional unit B, KB, MB, GB, TB (powers
// of 1000) or KiB, MiB, GiB, TiB (powers of 1024), case-insensitive; "off" is 0.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	if t == "off" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (KB, MB, GB, KiB, MiB, GiB, …), or off", s)
	}
	return int64(f * mult), nil
}

// OpenCache opens (creating if needed) the cache rooted at dir.
func OpenCache(dir string) (*Cache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"artifacts", "tmp", "locks", "files"} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o755); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	readme := filepath.Join(abs, "README")
	if _, err := os.Stat(readme); errors.Is(err, fs.ErrNotExist) {
		os.WriteFile(readme, []byte("This directory holds cached build artifacts of lilims.\n"+
			"'lilims cache ls' lists them and 'lilims cache prune' removes them; deleting it is safe too.\n"), 0o644)
	}
	maxBytes, err := DefaultCacheMaxBytes()
	if err != nil {
		return nil, err
	}
	return &Cache{dir: abs, MaxBytes: maxBytes}, nil
}

// Dir is the cache's root directory.
func (c *Cache) Dir() string { return c.dir }

func (c *Cache) entryDir(key string) string { return filepath.Join(c.dir, "artifacts", key[:2], key) }

// entryManifest is DIR/artifacts/…/<key>/manifest.json. Artifact paths in it are encoded
// relative to the entry (see encodePath).
type entryManifest struct {
	Format   int            `json:"format"`
	Key      string         `json:"key"`
	Uses     string         `json:"uses"`
	Version  string         `json:"version"`
	Params   stage.Params   `json:"params"`
	Inputs   []string       `json:"inputs"` // input stages' keys
	Model    string         `json:"model"`  // model digest
	Artifact stage.Artifact `json:"artifact"`
	// Informational: where the entry came from.
	Stage     string    `json:"stage"`
	Pipeline  string    `json:"pipeline,omitempty"`
	ModelPath string    `json:"model_path"`
	Seconds   float64   `json:"seconds"`
	Created   time.Time `json:"created"`
}

// keyDesc is what a key hashes, marshalled as JSON (maps marshal with sorted keys, so the
// encoding is canonical).
type keyDesc struct {
	Format  int          `json:"format"`
	Uses    string       `json:"uses"`
	Version string       `json:"version"`
	Params  stage.Params `json:"params"`
	Inputs  []string     `json:"inputs"`
	Model   string       `json:"model"`
	// Files holds the digests of path-valued parameters' files, by parameter name.
	Files map[string]string `json:"files,omitempty"`
}

func (c *Cache) key(s *Step, model string, inputs []string) (keyDesc, string, error) {
	version := s.Entry.Version
	if version == "" {
		var err error
		if version, err = c.binaryVersion(); err != nil {
			return keyDesc{}, "", err
		}
	}
	d := keyDesc{Format: cacheFormat, Uses: s.Uses, Version: version, Params: s.Params, Inputs: inputs, Model: model}
	for _, ps := range s.Entry.Spec.Params {
		path, _ := s.Params[ps.Name].(string)
		if ps.Type != stage.Path || path == "" {
			continue
		}
		digest, err := c.FileDigest(path, nil)
		if err != nil {
			return keyDesc{}, "", fmt.Errorf("stage %q: parameter %s: %w", s.ID, ps.Name, err)
		}
		if d.Files == nil {
			d.Files = map[string]string{}
		}
		d.Files[ps.Name] = digest
	}
	if d.Params == nil {
		d.Params = stage.Params{}
	}
	if d.Inputs == nil {
		d.Inputs = []string{}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return keyDesc{}, "", fmt.Errorf("cache key: %w", err)
	}
	sum := sha256.Sum256(b)
	return d, hex.EncodeToString(sum[:]), nil
}

// binaryVersion identifies the built-in stages' code: a released module version when the
// binary has one, the VCS revision of a clean checkout, and otherwise the digest of the
// executable itself (a rebuilt binary invalidates the built-ins' entries — conservative,
// never stale).
func (c *Cache) binaryVersion() (string, error) {
	c.selfOnce.Do(func() {
		if bi, ok := debug.ReadBuildInfo(); ok {
			if v := bi.Main.Version; v != "" && v != "(devel)" {
				c.selfVersion = bi.Main.Path + "@" + v + " " + runtime.Version()
				return
			}
			var rev, modified string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if rev != "" && modified == "false" {
				c.selfVersion = bi.Main.Path + "@" + rev + " " + runtime.Version()
				return
			}
		}
		exe, err := os.Executable()
		if err != nil {
			c.selfErr = fmt.Errorf("cache: cannot identify this binary: %w", err)
			return
		}
		d, err := c.FileDigest(exe, nil)
		if err != nil {
			c.selfErr = fmt.Errorf("cache: cannot identify this binary: %w", err)
			return
		}
		c.selfVersion = "exe " + d
	})
	return c.selfVersion, c.selfErr
}

// cacheJob is one build stage for Cache.build.
type cacheJob struct {
	step      *Step
	req       stage.BuildRequest // OutDir is set by build
	roots     []string           // WorkDir/<input id> per input, for encoding paths
	final     string             // WorkDir/<id>
	model     string             // model digest
	inputKeys []string
	pipeline  string
	report    stage.Reporter
}

// build returns the stage's output from the cache, running the stage first when the cache
// does not hold it, and materialises it in job.final.
func (c *Cache) build(ctx context.Context, job cacheJob) (Built, error) {
	s := job.step
	desc, key, err := c.key(s, job.model, job.inputKeys)
	if err != nil {
		return Built{}, err
	}
	lk, err := c.lock(ctx, key, false)
	if err != nil {
		return Built{}, err
	}
	m, ok := c.load(key)
	if ok {
		art, err := c.materialise(key, m, job)
		lk.unlock()
		if err != nil {
			return Built{}, err
		}
		job.report(stage.Event{Stage: s.ID, Event: "cached", Msg: key[:12]})
		return Built{Artifact: art, Cached: true, Key: key}, nil
	}
	lk.unlock()

	// Miss: take the key exclusively, and look again — a concurrent run may have built it
	// while we waited.
	if lk, err = c.lock(ctx, key, true); err != nil {
		return Built{}, err
	}
	defer lk.unlock()
	if m, ok := c.load(key); ok {
		art, err := c.materialise(key, m, job)
		if err != nil {
			return Built{}, err
		}
		job.report(stage.Event{Stage: s.ID, Event: "cached", Msg: key[:12]})
		return Built{Artifact: art, Cached: true, Key: key}, nil
	}
	// Holding the key exclusively, no one else is building it: what is left in tmp for this
	// key belongs to a killed run. An unreadable entry (damaged by hand) goes the same way.
	c.removeStale(key)
	if _, err := os.Stat(c.entryDir(key)); err == nil {
		if err := c.discard(c.entryDir(key)); err != nil {
			return Built{}, err
		}
	}

	b, ok := s.Entry.New().(stage.Builder)
	if !ok {
		return Built{}, fmt.Errorf("%s does not implement a build stage", s.Uses)
	}
	tmp, err := os.MkdirTemp(filepath.Join(c.dir, "tmp"), key[:16]+".")
	if err != nil {
		return Built{}, fmt.Errorf("cache: %w", err)
	}
	ok = false
	defer func() {
		if !ok {
			makeWritable(tmp)
			os.RemoveAll(tmp)
		}
	}()
	outDir := filepath.Join(tmp, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		return Built{}, err
	}
	job.report(stage.Event{Stage: s.ID, Event: "start", Msg: s.Uses})
	start := time.Now()
	req := job.req
	req.OutDir = outDir
	art, err := b.Build(ctx, req)
	if err != nil {
		return Built{}, err
	}
	if err := ctx.Err(); err != nil {
		return Built{}, err // a stage that ignored cancellation may have stopped short
	}
	m = entryManifest{Format: cacheFormat, Key: key, Uses: desc.Uses, Version: desc.Version,
		Params: desc.Params, Inputs: desc.Inputs, Model: desc.Model,
		Artifact: encodeArtifact(art, outDir, job.roots, req.Source),
		Stage:    s.ID, Pipeline: job.pipeline, ModelPath: req.Source,
		Seconds: time.Since(start).Seconds(), Created: time.Now().UTC()}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Built{}, err
	}
	// The manifest is written last and the directory renamed after: an entry exists only
	// complete. Files become read-only because runs hard-link them into their work dirs.
	if err := os.WriteFile(filepath.Join(tmp, "manifest.json"), data, 0o644); err != nil {
		return Built{}, fmt.Errorf("cache: %w", err)
	}
	if err := makeReadOnly(tmp); err != nil {
		return Built{}, fmt.Errorf("cache: %w", err)
	}
	dst := c.entryDir(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Built{}, fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		// Without working locks (some file systems) another run can win the race; its entry
		// is as good as ours.
		theirs, ok := c.load(key)
		if !ok {
			return Built{}, fmt.Errorf("cache: %w", err)
		}
		m = theirs
	} else {
		ok = true
	}
	out, err := c.materialise(key, m, job)
	if err != nil {
		return Built{}, err
	}
	if c.MaxBytes > 0 {
		// Best effort: a failure to trim must not fail the build that is done. The new
		// entry is locked (ours), so it stays.
		c.Prune(PruneOptions{MaxBytes: c.MaxBytes})
	}
	job.report(stage.Event{Stage: s.ID, Event: "done", Msg: out.Path})
	return Built{Artifact: out, Key: key}, nil
}

// load reads a finished entry's manifest.
func (c *Cache) load(key string) (entryManifest, bool) {
	var m entryManifest
	data, err := os.ReadFile(filepath.Join(c.entryDir(key), "manifest.json"))
	if err != nil || json.Unmarshal(data, &m) != nil || m.Key != key || m.Format != cacheFormat {
		return entryManifest{}, false
	}
	return m, true
}

// materialise links the entry's files into job.final (through a temporary sibling and a
// rename, like a build) and returns the artifact with its paths decoded for that place.
func (c *Cache) materialise(key string, m entryManifest, job cacheJob) (stage.Artifact, error) {
	entry := c.entryDir(key)
	now := time.Now()
	// Record the use for Prune; at most hourly, as Go's build cache does, to spare the disk.
	if st, err := os.Stat(entry); err == nil && now.Sub(st.ModTime()) > time.Hour {
		os.Chtimes(entry, now, now)
	}
	src := filepath.Join(entry, "out")
	if names, err := os.ReadDir(src); err == nil && len(names) == 0 {
		// Nothing to link (a loader hands on the model itself, a validating compile the
		// package it checked): spare the directory, whose creation is the dearest part of a hit.
		if err := os.RemoveAll(job.final); err != nil {
			return stage.Artifact{}, err
		}
		return c.decoded(key, m, job)
	}
	parent := filepath.Dir(job.final)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(job.final)+".tmp-")
	if err != nil {
		return stage.Artifact{}, err
	}
	if err := linkTree(src, tmp); err != nil {
		os.RemoveAll(tmp)
		return stage.Artifact{}, fmt.Errorf("cache entry %s: %w", key[:12], err)
	}
	if err := replaceDir(tmp, job.final); err != nil {
		os.RemoveAll(tmp)
		return stage.Artifact{}, err
	}
	return c.decoded(key, m, job)
}

func (c *Cache) decoded(key string, m entryManifest, job cacheJob) (stage.Artifact, error) {
	art, err := decodeArtifact(m.Artifact, job.final, job.roots, job.req.Source)
	if err != nil {
		return stage.Artifact{}, fmt.Errorf("cache entry %s: %w", key[:12], err)
	}
	return art, nil
}

// Paths in a cached artifact are stored relative to what they point into, since the entry
// is reused from other work dirs and for other model paths with the same content.
const (
	tokOut    = "$LILIMS_OUT"    // the stage's own output directory
	tokIn     = "$LILIMS_IN"     // followed by the input's index: an input stage's directory
	tokSource = "$LILIMS_SOURCE" // the model file
)

func encodeArtifact(a stage.Artifact, out string, roots []string, source string) stage.Artifact {
	e := stage.Artifact{Kind: a.Kind, Path: encodePath(a.Path, out, roots, source)}
	if a.Meta != nil {
		e.Meta = make(map[string]string, len(a.Meta))
		for k, v := range a.Meta {
			e.Meta[k] = encodePath(v, out, roots, source)
		}
	}
	return e
}

func encodePath(p, out string, roots []string, source string) string {
	if p == "" {
		return p
	}
	if p == source {
		return tokSource
	}
	if abs, err := filepath.Abs(source); err == nil && p == abs {
		return tokSource
	}
	join := func(tok, rel string) string {
		if rel == "." {
			return tok
		}
		return tok + "/" + filepath.ToSlash(rel)
	}
	if rel, ok := within(p, out); ok {
		return join(tokOut, rel)
	}
	for i, r := range roots {
		if rel, ok := within(p, r); ok {
			return join(fmt.Sprintf("%s%d", tokIn, i), rel)
		}
	}
	return p
}

func decodeArtifact(a stage.Artifact, final string, roots []string, source string) (stage.Artifact, error) {
	d := stage.Artifact{Kind: a.Kind}
	var err error
	if d.Path, err = decodePath(a.Path, final, roots, source); err != nil {
		return d, err
	}
	if a.Meta != nil {
		d.Meta = make(map[string]string, len(a.Meta))
		for k, v := range a.Meta {
			if d.Meta[k], err = decodePath(v, final, roots, source); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}

func decodePath(p, final string, roots []string, source string) (string, error) {
	tok, rest, _ := strings.Cut(p, "/")
	var base string
	switch {
	case tok == tokSource:
		return source, nil
	case tok == tokOut:
		base = final
	case strings.HasPrefix(tok, tokIn):
		var i int
		if _, err := fmt.Sscanf(tok[len(tokIn):], "%d", &i); err != nil || i < 0 || i >= len(roots) {
			return "", fmt.Errorf("artifact path %q names input %s of %d", p, tok[len(tokIn):], len(roots))
		}
		base = roots[i]
	default:
		return p, nil
	}
	if rest == "" {
		return base, nil
	}
	clean := filepath.FromSlash(rest)
	if !filepath.IsLocal(clean) {
		return "", fmt.Errorf("artifact path %q leaves its directory", p)
	}
	return filepath.Join(base, clean), nil
}

// linkTree recreates the tree src in the existing directory dst with hard links, copying
// where linking is impossible (another file system).
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			if os.Link(path, target) == nil {
				return nil
			}
			return copyFile(path, target)
		}
		return fmt.Errorf("%s: unsupported file type %v", path, d.Type())
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// makeReadOnly clears the write bits of every regular file under dir (directories stay
// writable so that the tree can be removed).
func makeReadOnly(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(path, info.Mode().Perm()&^0o222)
	})
}

// makeWritable undoes makeReadOnly where a platform needs it to delete files.
func makeWritable(dir string) {
	if runtime.GOOS != "windows" {
		return
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			os.Chmod(path, 0o644)
		}
		return nil
	})
}

// discard removes an entry: first renamed out of sight (atomic, so no reader sees half of it),
// then deleted.
func (c *Cache) discard(entry string) error {
	gone, err := os.MkdirTemp(filepath.Join(c.dir, "tmp"), "discard.")
	if err != nil {
		return err
	}
	dst := filepath.Join(gone, "entry")
	if err := os.Rename(entry, dst); err != nil {
		os.Remove(gone)
		return err
	}
	makeWritable(gone)
	return os.RemoveAll(gone)
}

// removeStale deletes tmp directories of key; the caller holds the key exclusively.
func (c *Cache) removeStale(key string) {
	matches, _ := filepath.Glob(filepath.Join(c.dir, "tmp", key[:16]+".*"))
	for _, m := range matches {
		makeWritable(m)
		os.RemoveAll(m)
	}
}

// CacheEntry describes one cached build output.
type CacheEntry struct {
	Key       string    `json:"key"`
	Uses      string    `json:"uses"`
	Stage     string    `json:"stage"`    // id of the stage that built it
	Pipeline  string    `json:"pipeline"` // name of the pipeline that built it
	ModelPath string    `json:"model_path"`
	Size      int64     `json:"size"` // bytes of its files
	Created   time.Time `json:"created"`
	Used      time.Time `json:"used"` // last use, to the hour
	Dir       string    `json:"dir"`
}

// Entries lists the finished entries, most recently used first.
func (c *Cache) Entries() ([]CacheEntry, error) {
	shards, err := os.ReadDir(filepath.Join(c.dir, "artifacts"))
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var out []CacheEntry
	for _, sh := range shards {
		if !sh.IsDir() {
			continue
		}
		keys, err := os.ReadDir(filepath.Join(c.dir, "artifacts", sh.Name()))
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		for _, k := range keys {
			if len(k.Name()) != 64 || !strings.HasPrefix(k.Name(), sh.Name()) {
				continue
			}
			m, ok := c.load(k.Name())
			if !ok {
				continue
			}
			dir := c.entryDir(k.Name())
			e := CacheEntry{Key: m.Key, Uses: m.Uses, Stage: m.Stage, Pipeline: m.Pipeline,
				ModelPath: m.ModelPath, Created: m.Created, Dir: dir, Size: treeSize(dir)}
			if st, err := os.Stat(dir); err == nil {
				e.Used = st.ModTime()
			}
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Used.Equal(out[j].Used) {
			return out[i].Used.After(out[j].Used)
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

func treeSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// PruneOptions says what Prune removes besides the leftovers of killed runs.
type PruneOptions struct {
	All       bool          // every entry
	OlderThan time.Duration // entries not used for this long (0: none)
	MaxBytes  int64         // then the least recently used, until the rest hold at most this (0: no bound)
}

// PruneStats reports what Prune removed.
type PruneStats struct {
	Entries   int   `json:"entries"`
	Bytes     int64 `json:"bytes"`
	Leftovers int   `json:"leftovers"` // unfinished builds of killed runs, stale file digests
	Busy      int   `json:"busy"`      // entries kept because a run was using them
}

// Prune removes entries as opts says, skipping those in use, and always removes unfinished
// builds left by killed runs and digests of files that are gone or changed.
func (c *Cache) Prune(opts PruneOptions) (PruneStats, error) {
	var st PruneStats
	entries, err := c.Entries()
	if err != nil {
		return st, err
	}
	now := time.Now()
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	// entries are most recently used first: walk from the least recently used end.
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		old := opts.OlderThan > 0 && now.Sub(e.Used) >= opts.OlderThan
		over := opts.MaxBytes > 0 && total > opts.MaxBytes
		if !opts.All && !old && !over {
			continue
		}
		lk, ok, err := c.tryLock(e.Key)
		if err != nil {
			return st, err
		}
		if !ok {
			st.Busy++
			continue
		}
		err = c.discard(e.Dir)
		lk.unlock()
		if err != nil {
			return st, fmt.Errorf("cache: %w", err)
		}
		st.Entries++
		st.Bytes += e.Size
		total -= e.Size
	}
	tmps, _ := os.ReadDir(filepath.Join(c.dir, "tmp"))
	for _, t := range tmps {
		name := t.Name()
		path := filepath.Join(c.dir, "tmp", name)
		if strings.HasPrefix(name, "discard.") {
			makeWritable(path)
			os.RemoveAll(path)
			st.Leftovers++
			continue
		}
		prefix, _, ok := strings.Cut(name, ".")
		if !ok || len(prefix) != 16 {
			continue
		}
		// The tmp name carries 16 hex digits of the key; its lock file has the whole key.
		locks, _ := filepath.Glob(filepath.Join(c.dir, "locks", prefix+"*.lock"))
		if len(locks) != 1 {
			continue
		}
		key := strings.TrimSuffix(filepath.Base(locks[0]), ".lock")
		lk, ok, err := c.tryLock(key)
		if err != nil || !ok {
			continue // being built right now
		}
		makeWritable(path)
		if os.RemoveAll(path) == nil {
			st.Leftovers++
		}
		lk.unlock()
	}
	st.Leftovers += c.pruneDigests()
	return st, nil
}
