// Package hub gets GGUF models from the Hugging Face Hub into a local model store, the way
// llama.cpp's `-hf` and `ollama pull` do: a model name (OWNER/REPO[:QUANT], or
// hf://OWNER/REPO/FILE.gguf) is resolved through the Hub's API, downloaded with resume
// (HTTP Range), verified against the SHA-256 the Hub records for the file (its Git LFS
// object id) and renamed into place only when whole.
//
// The package speaks only the Hub's public endpoints (see hub.go); it knows nothing of GGUF
// beyond the file extension, and nothing of pipelines. The store (store.go) is a plain
// directory tree, $LILIMS_MODELS/OWNER/REPO/FILE.gguf, that any tool can read.
package hub

import (
	"fmt"
	"path"
	"strings"
)

// A Ref names a model on the Hub: a repository and either one file in it or a quantization
// tag that picks a file (Q4_K_M, q8_0 …). With neither, Resolve picks a default file.
type Ref struct {
	Repo  string // OWNER/REPO
	File  string // path of a .gguf file in the repository, or ""
	Quant string // quantization tag to match in file names, or ""
}

func (r Ref) String() string {
	switch {
	case r.File != "":
		return "hf://" + r.Repo + "/" + r.File
	case r.Quant != "":
		return r.Repo + ":" + r.Quant
	}
	return r.Repo
}

// ParseRef reads a model name: hf://OWNER/REPO/FILE.gguf (also with a huggingface.co/ or
// hf.co/ prefix), or OWNER/REPO[:QUANT]. It is a name, not a path: callers first check
// whether the argument names a local file.
func ParseRef(s string) (Ref, error) {
	orig := s
	explicit := false
	for _, p := range []string{"hf://", "https://huggingface.co/", "huggingface.co/", "hf.co/"} {
		if strings.HasPrefix(s, p) {
			s, explicit = strings.TrimPrefix(s, p), true
			break
		}
	}
	var r Ref
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "/") {
		s, r.Quant = s[:i], s[i+1:]
		if r.Quant == "" || !validPart(r.Quant) {
			return Ref{}, fmt.Errorf("model name %q: bad quantization tag %q", orig, r.Quant)
		}
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || !validPart(parts[0]) || !validPart(parts[1]) {
		return Ref{}, fmt.Errorf("model name %q: want OWNER/REPO[:QUANT] or hf://OWNER/REPO/FILE.gguf", orig)
	}
	r.Repo = parts[0] + "/" + parts[1]
	if len(parts) > 2 {
		if !explicit {
			return Ref{}, fmt.Errorf("model name %q: a file in a repository is named hf://OWNER/REPO/FILE.gguf", orig)
		}
		rest := parts[2:]
		// A browser address: .../blob/main/FILE or .../resolve/main/FILE.
		if len(rest) > 2 && (rest[0] == "blob" || rest[0] == "resolve") {
			rest = rest[2:]
		}
		for _, p := range rest {
			if p == "" || p == "." || p == ".." {
				return Ref{}, fmt.Errorf("model name %q: bad file path", orig)
			}
		}
		r.File = path.Join(rest...)
		if r.Quant != "" {
			return Ref{}, fmt.Errorf("model name %q: give a file or a quantization tag, not both", orig)
		}
		if !strings.HasSuffix(strings.ToLower(r.File), ".gguf") {
			return Ref{}, fmt.Errorf("model name %q: %s is not a .gguf file", orig, r.File)
		}
	}
	return r, nil
}

// LooksLikeRef reports whether s is meant as a Hub name rather than a local path: an hf://
// address, or OWNER/REPO[:QUANT] without a file extension. A path that exists on disk is
// always a path; callers check that first.
func LooksLikeRef(s string) bool {
	if strings.HasPrefix(s, "hf://") || strings.HasPrefix(s, "hf.co/") || strings.HasPrefix(s, "huggingface.co/") {
		return true
	}
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~") || strings.Contains(s, `\`) {
		return false
	}
	base := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		base = s[:i]
	}
	if strings.Count(base, "/") != 1 {
		return false
	}
	ext := strings.ToLower(path.Ext(base))
	return ext != ".gguf" && ext != ".yaml" && ext != ".yml" && ext != ".mlpackage"
}

// validPart: Hub names are letters, digits, '-', '_' and '.' (not "." or "..").
func validPart(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 96 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
