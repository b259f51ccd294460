package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// DefaultEndpoint is the Hub's address; $HF_ENDPOINT overrides it (mirrors, tests), as the
// huggingface_hub library and llama.cpp do.
const DefaultEndpoint = "https://huggingface.co"

// Client talks to the Hub. Endpoints used (the Hub's HTTP API, as huggingface_hub calls it):
//
//	GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true   file list: path, size, lfs.oid (SHA-256)
//	GET {endpoint}/{repo}/resolve/{revision}/{file}                   the file, usually a redirect to a CDN; Range honoured
type Client struct {
	Endpoint string       // without a trailing slash
	Token    string       // bearer token ($HF_TOKEN) for gated and private repositories
	HTTP     *http.Client // nil: a client without an overall timeout (downloads are long)
	Revision string       // "" means main
}

// NewClient returns a client set up from $HF_ENDPOINT and $HF_TOKEN.
func NewClient() *Client {
	c := &Client{Endpoint: DefaultEndpoint, Token: os.Getenv("HF_TOKEN")}
	if e := os.Getenv("HF_ENDPOINT"); e != "" {
		c.Endpoint = strings.TrimRight(e, "/")
	}
	return c
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
	}}
}

func (c *Client) revision() string {
	if c.Revision == "" {
		return "main"
	}
	return c.Revision
}

// RemoteFile is one file of a repository as the Hub lists it.
type RemoteFile struct {
	Repo   string
	Path   string
	Size   int64
	SHA256 string // hex; the Git LFS object id; "" for a file not stored in LFS
}

// HTTPError is a failed request: the status and what the Hub said.
type HTTPError struct {
	URL    string
	Status int
	Msg    string
}

func (e *HTTPError) Error() string {
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = " (a gated or private repository needs a token: set HF_TOKEN, and accept the model's terms on its Hub page)"
	case http.StatusNotFound:
		hint = " (no such repository, revision or file)"
	}
	msg := ""
	if e.Msg != "" {
		msg = ": " + e.Msg
	}
	return fmt.Sprintf("%s: HTTP %d%s%s", e.URL, e.Status, msg, hint)
}

func (c *Client) get(ctx context.Context, u string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "lilims")
	if c.Token != "" {
		// Go drops Authorization on a redirect to another host, so the token never
		// reaches the CDN the Hub redirects downloads to.
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return nil, &HTTPError{URL: u, Status: resp.StatusCode, Msg: msg}
	}
	return resp, nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// Files lists the files of a repository.
func (c *Client) Files(ctx context.Context, repo string) ([]RemoteFile, error) {
	u := fmt.Sprintf("%s/api/models/%s/tree/%s?recursive=true", c.Endpoint, escapePath(repo), url.PathEscape(c.revision()))
	resp, err := c.get(ctx, u, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var entries []struct {
		Type string `json:"type"`
		Path string `json:"path"`
		Size int64  `json:"size"`
		LFS  *struct {
			OID  string `json:"oid"`
			Size int64  `json:"size"`
		} `json:"lfs"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&entries); err != nil {
		return nil, fmt.Errorf("%s: the file list is not the Hub's JSON: %w", u, err)
	}
	var files []RemoteFile
	for _, e := range entries {
		if e.Type != "file" {
			continue
		}
		f := RemoteFile{Repo: repo, Path: e.Path, Size: e.Size}
		if e.LFS != nil {
			f.SHA256, f.Size = strings.ToLower(e.LFS.OID), e.LFS.Size
		}
		files = append(files, f)
	}
	return files, nil
}

// splitPart matches the shards of a split GGUF (llama.cpp's gguf-split names).
var splitPart = regexp.MustCompile(`(?i)-\d{5}-of-\d{5}\.gguf$`)

// preferred quantizations, in the order a default pick tries them (what llama.cpp's -hf
// and ollama pick by default: Q4_K_M first).
var preferred = []string{"Q4_K_M", "Q4_K_S", "Q4_0", "Q5_K_M", "Q8_0", "Q6_K", "F16", "BF16", "F32"}

// Resolve picks the file ref names among the repository's files (see Pick).
func (c *Client) Resolve(ctx context.Context, ref Ref) (RemoteFile, error) {
	files, err := c.Files(ctx, ref.Repo)
	if err != nil {
		return RemoteFile{}, err
	}
	return Pick(ref, files)
}

// Pick chooses the file ref names from files: ref.File itself, else the .gguf whose name
// carries the quantization tag ref.Quant, else the first of the preferred quantizations.
// Multimodal projectors (mmproj) are never picked, and split (sharded) files are refused
// with a clear message.
func Pick(ref Ref, files []RemoteFile) (RemoteFile, error) {
	var ggufs []RemoteFile
	for _, f := range files {
		if ref.File != "" && f.Path == ref.File {
			return f, nil
		}
		name := strings.ToLower(path.Base(f.Path))
		if strings.HasSuffix(name, ".gguf") && !strings.Contains(name, "mmproj") {
			ggufs = append(ggufs, f)
		}
	}
	if ref.File != "" {
		return RemoteFile{}, fmt.Errorf("%s: no file %s in the repository (%s)", ref.Repo, ref.File, listNames(ggufs))
	}
	if len(ggufs) == 0 {
		return RemoteFile{}, fmt.Errorf("%s: the repository holds no .gguf file (lilims reads GGUF models; look for a repository named …-GGUF)", ref.Repo)
	}
	var found []RemoteFile
	if ref.Quant != "" {
		if found = withTag(ggufs, ref.Quant); len(found) == 0 {
			return RemoteFile{}, fmt.Errorf("%s: no .gguf file for quantization %s (%s)", ref.Repo, ref.Quant, listNames(ggufs))
		}
	} else {
		for _, q := range preferred {
			if found = withTag(ggufs, q); len(found) > 0 {
				break
			}
		}
		if len(found) == 0 {
			found = ggufs
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Path < found[j].Path })
	f := found[0]
	if splitPart.MatchString(f.Path) {
		return RemoteFile{}, fmt.Errorf("%s: %s is one part of a split GGUF; lilims reads single-file models (merge the parts with llama.cpp's llama-gguf-split --merge)", ref.Repo, f.Path)
	}
	return f, nil
}

// withTag returns the files whose base name holds tag as a separate word, any case
// (Q4_K_M matches model.Q4_K_M.gguf and model-q4_k_m.gguf, not model-Q4_K_M_L.gguf).
func withTag(files []RemoteFile, tag string) []RemoteFile {
	re := regexp.MustCompile(`(?i)(^|[^a-z0-9])` + regexp.QuoteMeta(tag) + `($|[^a-z0-9_])`)
	var out []RemoteFile
	for _, f := range files {
		if re.MatchString(strings.TrimSuffix(path.Base(f.Path), path.Ext(f.Path))) {
			out = append(out, f)
		}
	}
	return out
}

func listNames(fs []RemoteFile) string {
	if len(fs) == 0 {
		return "it has no .gguf files"
	}
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Path
	}
	return "it has " + strings.Join(names, ", ")
}

// ErrChecksum is returned when a downloaded file's SHA-256 differs from the Hub's record.
var ErrChecksum = errors.New("checksum mismatch")

// Progress is told how many bytes of total are on disk, as they arrive.
type Progress func(done, total int64)

// Download fetches f into dst, resuming from dst+".partial" when an earlier download was
// cut, and verifies its SHA-256 before renaming it into place. An interrupted download
// keeps its .partial file for the next try; a file whose checksum is wrong is deleted.
func (c *Client) Download(ctx context.Context, f RemoteFile, dst string, progress Progress) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	part := dst + ".partial"
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	// Hash what an earlier try left, so the whole file is verified without reading it twice.
	h := sha256.New()
	have, err := io.Copy(h, out)
	if err != nil {
		return fmt.Errorf("%s: %w", part, err)
	}
	restart := func() error { // drop what the .partial file holds
		h.Reset()
		have = 0
		if err := out.Truncate(0); err != nil {
			return err
		}
		_, err := out.Seek(0, io.SeekStart)
		return err
	}
	if f.Size > 0 && have > f.Size {
		// Not a prefix of this file (the repository changed): start again.
		if err := restart(); err != nil {
			return err
		}
	}
	if f.Size <= 0 || have < f.Size {
		u := fmt.Sprintf("%s/%s/resolve/%s/%s", c.Endpoint, escapePath(f.Repo), url.PathEscape(c.revision()), escapePath(f.Path))
		var header http.Header
		if have > 0 {
			header = http.Header{"Range": {fmt.Sprintf("bytes=%d-", have)}}
		}
		resp, err := c.get(ctx, u, header)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch {
		case have > 0 && resp.StatusCode == http.StatusPartialContent:
			if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)) {
				return fmt.Errorf("%s: the server answered range %q to a request from byte %d", u, resp.Header.Get("Content-Range"), have)
			}
		case resp.StatusCode == http.StatusOK:
			// No resume: the server sends the whole file.
			if err := restart(); err != nil {
				return err
			}
		default:
			return &HTTPError{URL: u, Status: resp.StatusCode, Msg: "unexpected status"}
		}
		total := f.Size
		if total <= 0 && resp.ContentLength > 0 {
			total = have + resp.ContentLength
		}
		w := io.MultiWriter(out, h)
		buf := make([]byte, 1<<20)
		for {
			n, rerr := resp.Body.Read(buf)
			if n > 0 {
				if _, err := w.Write(buf[:n]); err != nil {
					return fmt.Errorf("%s: %w", part, err)
				}
				have += int64(n)
				if progress != nil {
					progress(have, total)
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("download of %s cut at byte %d of %d (run the same command again to resume): %w", f.Path, have, total, rerr)
			}
		}
		if f.Size > 0 && have != f.Size {
			return fmt.Errorf("download of %s ended at byte %d of %d (run the same command again to resume)", f.Path, have, f.Size)
		}
	} else if progress != nil {
		progress(have, f.Size)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if f.SHA256 != "" {
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			os.Remove(part)
			return fmt.Errorf("%s: %w: the Hub records sha256 %s, the download has %s (deleted; run again to retry)", f.Path, ErrChecksum, f.SHA256, got)
		}
	}
	return os.Rename(part, dst)
}
