package plugin

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/plugin/sdk"
)

// syncBuffer collects the host's log (warnings) safely from the plugin's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A plugin file anyone may rewrite is still run, but lilims warns, naming the file and its
// mode (docs/plugins.md: "lilims warns when a plugin file is writable by every user").
func TestWorldWritableWarning(t *testing.T) {
	for _, mode := range []os.FileMode{0o755, 0o777} {
		var log syncBuffer
		h := NewHost(Options{CacheDir: t.TempDir(), Log: &log})
		path := pluginScript(t, "ok", "")
		if err := os.Chmod(path, mode); err != nil { // explicit: the umask may have masked 0o777
			h.Close()
			t.Fatal(err)
		}
		_, err := exportPlan(t, h, path, "")
		h.Close()
		if err != nil {
			t.Fatalf("mode %v: %v", mode, err)
		}
		warned := strings.Contains(log.String(), path+" is writable by every user (mode -rwxrwxrwx)")
		if warned != (mode == 0o777) {
			t.Errorf("mode %v: warned %v; log:\n%s", mode, warned, log.String())
		}
	}
}

// A third-party plugin sees only the documented variables (PassedEnv), Options.Env and
// go-plugin's handshake variables: a secret in lilims's environment does not reach it.
// The plugin script records its environment before exec'ing the plugin server.
func TestMinimalEnvironment(t *testing.T) {
	t.Setenv("LILIMS_TEST_SECRET", "hunter2")
	t.Setenv("HOME", "/home/lilims-test")
	dump := filepath.Join(t.TempDir(), "env")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plugin-env")
	script := fmt.Sprintf("#!/bin/sh\nenv > '%s'\n%s=ok exec '%s'\n", dump, testPluginEnv, exe)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := newTestHost(t, Options{Env: []string{"LILIMS_PLUGIN_OPTION=1"}})
	if _, err := exportPlan(t, h, path, ""); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = v
	}
	if vars["HOME"] != "/home/lilims-test" || vars["LILIMS_PLUGIN_OPTION"] != "1" {
		t.Errorf("HOME=%q LILIMS_PLUGIN_OPTION=%q, want the passed values", vars["HOME"], vars["LILIMS_PLUGIN_OPTION"])
	}
	for k := range vars {
		switch {
		case slices.Contains(PassedEnv, k), k == "LILIMS_PLUGIN_OPTION":
		case strings.HasPrefix(k, "PLUGIN_"), k == sdk.Handshake.MagicCookieKey, k == sdk.HostPIDEnv: // the handshake
		case k == "PWD" || k == "SHLVL" || k == "_" || k == "OLDPWD": // set by /bin/sh itself
		default:
			t.Errorf("plugin environment holds %s=%q", k, vars[k])
		}
	}
	if _, leaked := vars["LILIMS_TEST_SECRET"]; leaked {
		t.Error("LILIMS_TEST_SECRET reached the plugin")
	}
}

// A plugin that stops answering mid-session (here: SIGSTOPped after it served a sample)
// fails the next call within the configured call timeout instead of hanging lilims.
func TestCallTimeout(t *testing.T) {
	h := newTestHost(t, Options{CallTimeout: 300 * time.Millisecond})
	spec := &pipeline.Spec{Name: "s", Model: stories, Stages: []*pipeline.StageSpec{
		{ID: "load", Uses: "loader/gguf", With: map[string]any{}},
		{ID: "sample", Uses: "sampler/default", With: map[string]any{"temperature": 0.8, "seed": 1}, Isolation: "process"},
	}}
	reg := builtin.Registry()
	reg.External = h.External
	plan, err := pipeline.Resolve(spec, reg)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := plan.NewSampler(8)
	if err != nil {
		t.Fatal(err)
	}
	logits := []float32{0, 1, 5, 2, 0, 0, 0, 0}
	if tok := ts.Sample(logits); tok < 0 || tok >= 8 {
		t.Fatalf("sampled %d from 8 logits", tok)
	}
	var pid int
	for _, p := range h.procs {
		pid = p.pid()
	}
	if pid == 0 {
		t.Fatal("no plugin process")
	}
	syscall.Kill(pid, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	// SIGSTOP takes effect asynchronously: wait until /proc shows the process stopped.
	for i := 0; i < 500 && procState(pid) != "T"; i++ {
		time.Sleep(2 * time.Millisecond)
	}
	start := time.Now()
	tok := ts.Sample(logits)
	err = nil
	if e, ok := ts.(interface{ Err() error }); ok {
		err = e.Err() // explains the failure: stops the plugin
	}
	took := time.Since(start)
	if tok != -1 || err == nil || !strings.Contains(err.Error(), "Sample did not finish within 300ms; the plugin was stopped") {
		t.Fatalf("stopped plugin: token %d, error %v", tok, err)
	}
	// 300ms for the call, then up to killGrace (3s) for go-plugin's graceful shutdown that a
	// stopped process cannot answer, then the kill.
	if took > 300*time.Millisecond+killGrace+2*time.Second {
		t.Errorf("Sample returned after %v with a 300ms call timeout", took)
	}
	t.Logf("%v; returned after %v", err, took)
	assertGone(t, pid)
}

// procState is the state letter of /proc/PID/stat ("" when unreadable).
func procState(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
