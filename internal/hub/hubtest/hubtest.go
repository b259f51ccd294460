// Package hubtest is a fake Hugging Face Hub for tests: it serves the endpoints package hub
// uses (tree listing; resolve redirecting to a "CDN" that honours Range) over repositories
// held in memory, with switches for the failures a download must survive (a private
// repository, a transfer cut mid-file, corrupt content).
package hubtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server speaks the Hub endpoints Client uses — the tree listing and resolve with a
// redirect to a "CDN" path that honours Range (http.ServeContent) — over a set of
// repositories, with switches for the failures a download must survive.
type Server struct {
	t     testing.TB
	Srv   *httptest.Server
	mu    sync.Mutex
	repos map[string]map[string][]byte // repo → path → content
	// Private repositories answer 401 without the token.
	Private map[string]bool
	Token   string
	// CutAfter > 0 cuts the next CDN transfer after that many bytes (then resets).
	CutAfter int
	// Corrupt makes the CDN serve content whose hash differs from the listing.
	Corrupt bool
	// Ranges records the Range headers the CDN saw.
	Ranges []string
}

func New(t testing.TB) *Server {
	h := &Server{t: t, repos: map[string]map[string][]byte{}, Private: map[string]bool{}}
	h.Srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Srv.Close)
	return h
}

func (h *Server) Add(repo, path string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.repos[repo] == nil {
		h.repos[repo] = map[string][]byte{}
	}
	h.repos[repo][path] = data
}

// Configure changes the server's switches (Private, Token, CutAfter, Corrupt) under its lock.
func (h *Server) Configure(f func(*Server)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// URL is the endpoint to give a hub.Client (or HF_ENDPOINT).
func (h *Server) URL() string { return h.Srv.URL }

// LastRange is the Range header of the latest CDN request ("" for none).
func (h *Server) LastRange() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.Ranges) == 0 {
		return ""
	}
	return h.Ranges[len(h.Ranges)-1]
}

// Downloads counts the CDN requests so far.
func (h *Server) Downloads() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.Ranges)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (h *Server) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := r.URL.Path
	authorized := func(repo string) bool {
		return !h.Private[repo] || r.Header.Get("Authorization") == "Bearer "+h.Token
	}
	switch {
	case strings.HasPrefix(p, "/api/models/"):
		// /api/models/OWNER/REPO/tree/main
		rest := strings.TrimPrefix(p, "/api/models/")
		parts := strings.Split(rest, "/")
		if len(parts) != 4 || parts[2] != "tree" {
			jsonError(w, 400, "bad request")
			return
		}
		repo := parts[0] + "/" + parts[1]
		files, ok := h.repos[repo]
		if !ok {
			jsonError(w, 404, "Repository not found")
			return
		}
		if !authorized(repo) {
			jsonError(w, 401, "Invalid credentials in Authorization header")
			return
		}
		if parts[3] != "main" {
			jsonError(w, 404, "Revision not found")
			return
		}
		type lfs struct {
			OID         string `json:"oid"`
			Size        int    `json:"size"`
			PointerSize int    `json:"pointerSize"`
		}
		type entry struct {
			Type string `json:"type"`
			OID  string `json:"oid"`
			Size int    `json:"size"`
			Path string `json:"path"`
			LFS  *lfs   `json:"lfs,omitempty"`
		}
		list := []entry{{Type: "file", OID: "abc", Size: 10, Path: ".gitattributes"}, {Type: "directory", OID: "def", Path: "sub"}}
		for path, data := range files {
			sum := sha256.Sum256(data)
			list = append(list, entry{Type: "file", OID: "0123", Size: len(data), Path: path,
				LFS: &lfs{OID: hex.EncodeToString(sum[:]), Size: len(data), PointerSize: 134}})
		}
		json.NewEncoder(w).Encode(list)
	case strings.HasPrefix(p, "/cdn/"):
		// /cdn/OWNER/REPO/PATH: the file, with Range.
		rest := strings.TrimPrefix(p, "/cdn/")
		parts := strings.SplitN(rest, "/", 3)
		data, ok := h.repos[parts[0]+"/"+parts[1]][parts[2]]
		if !ok {
			jsonError(w, 404, "Entry not found")
			return
		}
		if r.Header.Get("Authorization") != "" {
			h.t.Errorf("the Token reached the CDN host")
		}
		h.Ranges = append(h.Ranges, r.Header.Get("Range"))
		if h.Corrupt {
			data = append([]byte(nil), data...)
			data[len(data)/2] ^= 0xff
		}
		if h.CutAfter > 0 {
			// Send the headers of a whole response, then only CutAfter bytes, and drop
			// the connection.
			n := h.CutAfter
			h.CutAfter = 0
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(200)
			w.Write(data[:n])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, parts[2], time.Time{}, strings.NewReader(string(data)))
	default:
		// /OWNER/REPO/resolve/main/PATH → redirect to the CDN, as the Hub does. The
		// redirect goes to another host name (localhost vs 127.0.0.1) so that the client's
		// dropping of Authorization on a cross-host redirect is exercised.
		parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 5)
		if len(parts) != 5 || parts[2] != "resolve" {
			jsonError(w, 404, "not found")
			return
		}
		repo := parts[0] + "/" + parts[1]
		if _, ok := h.repos[repo]; !ok {
			jsonError(w, 404, "Repository not found")
			return
		}
		if !authorized(repo) {
			jsonError(w, 401, "Invalid credentials")
			return
		}
		if _, ok := h.repos[repo][parts[4]]; !ok {
			jsonError(w, 404, "Entry not found")
			return
		}
		cdn := strings.Replace(h.Srv.URL, "127.0.0.1", "localhost", 1)
		http.Redirect(w, r, cdn+"/cdn/"+repo+"/"+parts[4], http.StatusFound)
	}
}
