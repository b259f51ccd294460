package hub_test

import (
	"bytes"
	"context"
	"errors"
	. "github.com/lilims/lilims/internal/hub"
	"github.com/lilims/lilims/internal/hub/hubtest"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ref
		err  string
	}{
		{in: "TheBloke/phi-2-GGUF", want: Ref{Repo: "TheBloke/phi-2-GGUF"}},
		{in: "bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", want: Ref{Repo: "bartowski/Llama-3.2-1B-Instruct-GGUF", Quant: "Q4_K_M"}},
		{in: "hf://TheBloke/phi-2-GGUF/phi-2.Q4_0.gguf", want: Ref{Repo: "TheBloke/phi-2-GGUF", File: "phi-2.Q4_0.gguf"}},
		{in: "hf.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF:q8_0", want: Ref{Repo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF", Quant: "q8_0"}},
		{in: "https://huggingface.co/TheBloke/phi-2-GGUF/blob/main/phi-2.Q4_0.gguf", want: Ref{Repo: "TheBloke/phi-2-GGUF", File: "phi-2.Q4_0.gguf"}},
		{in: "hf://o/r/sub/dir/m.gguf", want: Ref{Repo: "o/r", File: "sub/dir/m.gguf"}},
		{in: "phi-2", err: "want OWNER/REPO"},
		{in: "o/r:", err: "bad quantization tag"},
		{in: "o/r/m.gguf", err: "hf://OWNER/REPO/FILE.gguf"},
		{in: "hf://o/r/../x.gguf", err: "bad file path"},
		{in: "hf://o/r/readme.md", err: "not a .gguf file"},
		{in: "o w/r", err: "want OWNER/REPO"},
	} {
		got, err := ParseRef(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRef(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestLooksLikeRef(t *testing.T) {
	for in, want := range map[string]bool{
		"TheBloke/phi-2-GGUF":           true,
		"TheBloke/phi-2-GGUF:Q4_0":      true,
		"hf://o/r/m.gguf":               true,
		"models/phi-2.Q4_0.gguf":        false,
		"pipelines/stories.yaml":        false,
		"./o/r":                         false,
		"/abs/path":                     false,
		"model.gguf":                    false,
		"out/model.mlpackage":           false,
		"testdata/oracle/models/x.gguf": false,
		"a/b/c":                         false,
	} {
		if got := LooksLikeRef(in); got != want {
			t.Errorf("LooksLikeRef(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestPick(t *testing.T) {
	files := func(names ...string) []RemoteFile {
		var fs []RemoteFile
		for _, n := range names {
			fs = append(fs, RemoteFile{Repo: "o/r", Path: n})
		}
		return fs
	}
	repo := files("README.md", "m.Q2_K.gguf", "m.Q4_0.gguf", "m.Q4_K_M.gguf", "m.Q4_K_M_L.gguf", "mmproj-m-f16.gguf", "m-Q8_0.gguf")
	for _, tc := range []struct {
		ref   Ref
		files []RemoteFile
		want  string
		err   string
	}{
		{ref: Ref{Repo: "o/r"}, files: repo, want: "m.Q4_K_M.gguf"},
		{ref: Ref{Repo: "o/r", Quant: "q8_0"}, files: repo, want: "m-Q8_0.gguf"},
		{ref: Ref{Repo: "o/r", Quant: "Q4_K_M"}, files: repo, want: "m.Q4_K_M.gguf"},
		{ref: Ref{Repo: "o/r", File: "m.Q2_K.gguf"}, files: repo, want: "m.Q2_K.gguf"},
		{ref: Ref{Repo: "o/r", Quant: "IQ4_XS"}, files: repo, err: "no .gguf file for quantization IQ4_XS (it has m.Q2_K.gguf"},
		{ref: Ref{Repo: "o/r"}, files: files("x.gguf", "mmproj.gguf"), want: "x.gguf"},
		{ref: Ref{Repo: "o/r"}, files: files("README.md"), err: "holds no .gguf file"},
		{ref: Ref{Repo: "o/r", Quant: "Q4_K_M"}, files: files("m-Q4_K_M-00001-of-00002.gguf", "m-Q4_K_M-00002-of-00002.gguf"), err: "one part of a split GGUF"},
	} {
		got, err := Pick(tc.ref, tc.files)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Pick(%v) = %v, %v; want error containing %q", tc.ref, got.Path, err, tc.err)
			}
			continue
		}
		if err != nil || got.Path != tc.want {
			t.Errorf("Pick(%v) = %q, %v; want %q", tc.ref, got.Path, err, tc.want)
		}
	}
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestPullResumeAndVerify(t *testing.T) {
	ctx := context.Background()
	h := hubtest.New(t)
	model := randomBytes(3<<20 + 17)
	h.Add("acme/tiny-GGUF", "tiny.Q4_K_M.gguf", model)
	h.Add("acme/tiny-GGUF", "tiny.Q8_0.gguf", randomBytes(1000))
	s := &Store{Dir: t.TempDir()}
	c := &Client{Endpoint: h.URL()}
	ref, _ := ParseRef("acme/tiny-GGUF")

	// A transfer cut mid-file fails, keeps its .partial file and says how to resume.
	h.Configure(func(h *hubtest.Server) { h.CutAfter = 1 << 20 })
	_, err := s.Pull(ctx, c, ref, nil)
	if err == nil || !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Fatalf("cut transfer: %v", err)
	}
	dst := filepath.Join(s.Dir, "acme", "tiny-GGUF", "tiny.Q4_K_M.gguf")
	if info, err := os.Stat(dst + ".partial"); err != nil || info.Size() != 1<<20 {
		t.Fatalf("partial file after the cut: %v, %v", info, err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("the model is in place after a cut download: %v", err)
	}

	// The next pull resumes with a Range request and verifies the whole file.
	var last, total int64
	got, err := s.Pull(ctx, c, ref, func(f RemoteFile) Progress {
		return func(done, tot int64) { last, total = done, tot }
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != dst {
		t.Errorf("pulled into %s, want %s", got, dst)
	}
	if r := h.LastRange(); r != "bytes=1048576-" {
		t.Errorf("resume sent Range %q, want bytes=1048576-", r)
	}
	if last != int64(len(model)) || total != int64(len(model)) {
		t.Errorf("progress ended at %d of %d, want %d", last, total, len(model))
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, model) {
		t.Fatal("the pulled file differs from the Hub's")
	}
	if _, err := os.Stat(dst + ".partial"); !os.IsNotExist(err) {
		t.Errorf(".partial left behind: %v", err)
	}

	// A second pull of a whole, verified file downloads nothing.
	n := h.Downloads()
	if _, err := s.Pull(ctx, c, ref, nil); err != nil || h.Downloads() != n {
		t.Errorf("re-pull of a complete file: %v, %d downloads", err, h.Downloads()-n)
	}

	// Get finds the local file without the network.
	h.Srv.Close()
	file, pulled, err := s.Get(ctx, c, ref, nil)
	if err != nil || pulled || file != dst {
		t.Errorf("Get offline = %s, %v, %v", file, pulled, err)
	}
	// ls, and rm of one quantization.
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name() != "hf://acme/tiny-GGUF/tiny.Q4_K_M.gguf" || list[0].Size != int64(len(model)) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if _, err := s.Remove(Ref{Repo: "acme/tiny-GGUF", Quant: "Q8_0"}); err == nil {
		t.Error("removing a model that is not local succeeded")
	}
	gone, err := s.Remove(Ref{Repo: "acme/tiny-GGUF"})
	if err != nil || len(gone) != 1 {
		t.Fatalf("Remove = %v, %v", gone, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "acme")); !os.IsNotExist(err) {
		t.Errorf("empty directories left after rm: %v", err)
	}
}

func TestPullFailures(t *testing.T) {
	ctx := context.Background()
	h := hubtest.New(t)
	h.Add("acme/secret", "m.Q4_0.gguf", randomBytes(5000))
	h.Configure(func(h *hubtest.Server) { h.Private["acme/secret"], h.Token = true, "hf_test" })
	h.Add("acme/open", "m.Q4_0.gguf", randomBytes(70000))
	s := &Store{Dir: t.TempDir()}

	// 401 without the token names HF_TOKEN; with it, the pull works (and the fake checks
	// that the token is not sent on to the CDN).
	_, err := s.Pull(ctx, &Client{Endpoint: h.URL()}, Ref{Repo: "acme/secret"}, nil)
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 401 || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Errorf("private repository without a token: %v", err)
	}
	c := &Client{Endpoint: h.URL(), Token: "hf_test"}
	if _, err := s.Pull(ctx, c, Ref{Repo: "acme/secret"}, nil); err != nil {
		t.Errorf("private repository with the token: %v", err)
	}

	// 404.
	_, err = s.Pull(ctx, &Client{Endpoint: h.URL()}, Ref{Repo: "acme/nothing"}, nil)
	if !errors.As(err, &he) || he.Status != 404 || !strings.Contains(err.Error(), "no such repository") {
		t.Errorf("unknown repository: %v", err)
	}

	// A wrong checksum deletes the download and says so.
	h.Configure(func(h *hubtest.Server) { h.Corrupt = true })
	_, err = s.Pull(ctx, &Client{Endpoint: h.URL()}, Ref{Repo: "acme/open"}, nil)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupt download: %v", err)
	}
	matches, _ := filepath.Glob(filepath.Join(s.Dir, "acme", "open", "*"))
	if len(matches) != 0 {
		t.Errorf("files left after a checksum failure: %v", matches)
	}

	// Endpoint set by HF_ENDPOINT, token by HF_TOKEN.
	t.Setenv("HF_ENDPOINT", h.URL()+"/")
	t.Setenv("HF_TOKEN", "x")
	if c := NewClient(); c.Endpoint != h.URL() || c.Token != "x" {
		t.Errorf("NewClient from the environment = %+v", c)
	}
}
