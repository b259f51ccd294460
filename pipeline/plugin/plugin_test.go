package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/plugin/pluginpb"
	"github.com/lilims/lilims/pipeline/plugin/sdk"
	"github.com/lilims/lilims/pipeline/stage"
)

const stories = "../../testdata/oracle/models/stories260K.gguf"

// testPluginEnv selects what the test binary serves when a test runs it as a plugin.
const testPluginEnv = "LILIMS_TEST_PLUGIN"

// TestMain turns the test binary into a plugin server when a test starts it as one: a
// built-in stage (ServeEnv, for isolation: process) or one of the misbehaving plugins below.
func TestMain(m *testing.M) {
	if ServeBuiltin(builtin.Registry()) {
		os.Exit(0)
	}
	if b, ok := os.LookupEnv(testPluginEnv); ok {
		serveTestPlugin(b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var testExportSpec = stage.Spec{Uses: "export/test", Doc: "a test exporter",
	Params: []stage.ParamSpec{{Name: "n", Type: stage.Int, Default: 1, Doc: "unused"}}}

// testExport is an export stage whose behaviour the test picks.
type testExport struct{ behaviour string }

func (t testExport) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	// Half an artifact, as a stage killed mid-way would leave it.
	os.WriteFile(filepath.Join(req.OutDir, "partial.bin"), []byte("half"), 0o644)
	// The event names the plugin's own pid, so a test can kill exactly this process.
	req.Report(stage.Event{Event: "progress", Done: 1, Total: 2, Unit: "tensors", Msg: strconv.Itoa(os.Getpid())})
	switch t.behaviour {
	case "slow": // until cancelled
		<-ctx.Done()
		return stage.Artifact{}, ctx.Err()
	case "hang": // ignores cancellation
		select {}
	case "wrongkind":
		return stage.Artifact{Kind: "gguf", Path: req.Source}, nil
	case "missing":
		return stage.Artifact{Kind: "mlpackage", Path: filepath.Join(req.OutDir, "model.mlpackage")}, nil
	case "outside":
		return stage.Artifact{Kind: "mlpackage", Path: os.TempDir()}, nil
	case "fail":
		return stage.Artifact{}, errors.New("tensor blk.0.attn_q.weight: unsupported type")
	}
	pkg := filepath.Join(req.OutDir, "model.mlpackage")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "Manifest.json"), []byte("{}"), 0o644)
	return stage.Artifact{Kind: "mlpackage", Path: pkg}, nil
}

func serveTestPlugin(behaviour string) {
	st := sdk.Export(testExportSpec, testExport{behaviour})
	switch behaviour {
	case "noisy":
		fmt.Println("loading model weights…") // stdout before the handshake
	case "crash":
		fmt.Fprintln(os.Stderr, "panic: cannot open libfoo.so")
		os.Exit(2)
	case "hangstart":
		time.Sleep(time.Hour)
	case "wrongversion":
		cfg, _ := sdk.ServeConfig(st)
		cfg.HandshakeConfig.ProtocolVersion = sdk.ProtocolVersion + 1
		goplugin.Serve(cfg)
		return
	}
	sdk.Serve(st)
}

// pluginScript writes an executable that runs the test binary as the plugin behaviour;
// if marker is not empty, the script creates it when it runs.
func pluginScript(t *testing.T, behaviour, marker string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	touch := ""
	if marker != "" {
		touch = fmt.Sprintf("echo ran > '%s'\n", marker)
	}
	path := filepath.Join(t.TempDir(), "plugin-"+behaviour)
	script := fmt.Sprintf("#!/bin/sh\n%s%s=%s exec '%s'\n", touch, testPluginEnv, behaviour, exe)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// exportPlan is load (built-in, in process) → export from the plugin at path.
func exportPlan(t *testing.T, h *Host, path, sha string) (*pipeline.Plan, error) {
	t.Helper()
	spec := &pipeline.Spec{Name: "t", Model: stories, Stages: []*pipeline.StageSpec{
		{ID: "load", Uses: "loader/gguf", With: map[string]any{}},
		{ID: "export", Uses: "plugin:" + path, SHA256: sha, With: map[string]any{}},
	}}
	reg := builtin.Registry()
	reg.External = h.External
	return pipeline.Resolve(spec, reg)
}

func newTestHost(t *testing.T, opts Options) *Host {
	opts.CacheDir = t.TempDir()
	opts.Log = testLog{t}
	h := NewHost(opts)
	t.Cleanup(h.Close)
	return h
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Logf("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// Plugins that cannot start are refused before any work, with a message naming the plugin
// and the cause.
func TestRefusedAtStart(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	marker := filepath.Join(t.TempDir(), "ran")
	for _, tc := range []struct {
		name, path, sha string
		want            []string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope"), "", []string{"no such file"}},
		{"not executable", notExec, "", []string{"not executable"}},
		{"stdout before handshake", pluginScript(t, "noisy", ""), "", []string{"wrote \"loading model weights…\" to stdout before its handshake"}},
		{"wrong protocol version", pluginScript(t, "wrongversion", ""), "", []string{"another version of the stage protocol", "Plugin version: 2", "speaks version 1"}},
		{"crash at start", pluginScript(t, "crash", ""), "", []string{"crashed at start", "exit status 2", "cannot open libfoo.so"}},
		{"sha256 mismatch", pluginScript(t, "ok", marker), strings.Repeat("ab", 32), []string{"sha256 mismatch", "refusing to run it"}},
		{"bad pin", pluginScript(t, "ok", ""), "xyz", []string{"not 64 hexadecimal digits"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t, Options{})
			_, err := exportPlan(t, h, tc.path, tc.sha)
			if err == nil {
				t.Fatal("the plugin was accepted")
			}
			msg := err.Error()
			for _, w := range append(tc.want, `stage "export"`, "plugin "+tc.path) {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
		})
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the plugin with a mismatching sha256 was executed")
	}
}

// A correct pin is accepted, and the plugin's digest becomes the entry's cache identity.
func TestPinnedPlugin(t *testing.T) {
	h := newTestHost(t, Options{})
	path := pluginScript(t, "ok", "")
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := exportPlan(t, h, path, fmt.Sprintf("%X", sum)) // upper case is fine
	if err != nil {
		t.Fatal(err)
	}
	if v := plan.Step(stage.KindExport).Entry.Version; v != fmt.Sprintf("%x", sum) {
		t.Errorf("entry version %q, want the plugin's sha256 %x", v, sum)
	}
	if got := plan.Step(stage.KindExport).Entry.Spec; got.Uses != "export/test" || len(got.Params) != 1 || got.Params[0].Default != int64(1) {
		t.Errorf("described spec %+v", got)
	}
	var events []stage.Event
	built, err := plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: t.TempDir(),
		Report: func(e stage.Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := built[len(built)-1].Artifact; got.Kind != "mlpackage" || filepath.Base(got.Path) != "model.mlpackage" {
		t.Errorf("artifact %+v", got)
	}
	// The plugin's progress event reached the host's reporter, with the stage id filled in.
	found := false
	for _, e := range events {
		found = found || (e.Stage == "export" && e.Event == "progress" && e.Done == 1 && e.Total == 2 && e.Unit == "tensors")
	}
	if !found {
		t.Errorf("no progress event from the plugin among %+v", events)
	}
}

// assertNoPartial checks that a failed export left nothing in the work directory.
func assertNoPartial(t *testing.T, work string) {
	t.Helper()
	ents, _ := os.ReadDir(work)
	for _, e := range ents {
		if e.Name() != "load" {
			t.Errorf("work directory holds %s after the failed stage", e.Name())
		}
	}
}

func assertGone(t *testing.T, pid int) {
	t.Helper()
	if pid == 0 {
		t.Fatal("no plugin pid")
	}
	for i := 0; i < 300; i++ {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("plugin process %d is still there", pid)
}

// SIGKILL mid-stage: the build fails naming stage and plugin, leaves no partial artifact and
// no process.
func TestKilledMidStage(t *testing.T) {
	h := newTestHost(t, Options{})
	path := pluginScript(t, "slow", "")
	plan, err := exportPlan(t, h, path, "")
	if err != nil {
		t.Fatal(err)
	}
	// Kill the plugin at its first progress event, which carries its pid; later events (it
	// may send more before the signal lands) must not block the reporter.
	var once sync.Once
	killed := make(chan int, 1)
	report := func(e stage.Event) {
		// Only the plugin's own event: the runner reports progress too (hashing the model).
		if e.Event == "progress" && e.Stage == "export" && e.Msg != "" {
			once.Do(func() {
				n, err := strconv.Atoi(e.Msg)
				if err != nil || n <= 1 {
					t.Errorf("progress event without a pid: %q", e.Msg)
					killed <- 0
					return
				}
				syscall.Kill(n, syscall.SIGKILL)
				killed <- n
			})
		}
	}
	work := t.TempDir()
	_, err = plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: work, Report: report})
	if err == nil {
		t.Fatal("the build succeeded")
	}
	for _, w := range []string{`stage "export"`, "plugin " + path, "died during Build", "signal: killed"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	assertNoPartial(t, work)
	assertGone(t, <-killed)
}

// A hung plugin never hangs lilims: the stage timeout stops it.
func TestStageTimeout(t *testing.T) {
	h := newTestHost(t, Options{StageTimeout: 500 * time.Millisecond})
	path := pluginScript(t, "hang", "")
	plan, err := exportPlan(t, h, path, "")
	if err != nil {
		t.Fatal(err)
	}
	p := h.procs["ext:"+path+"@"]
	pid := p.pid()
	work := t.TempDir()
	start := time.Now()
	_, err = plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: work})
	if err == nil || !strings.Contains(err.Error(), "Build did not finish within 500ms; the plugin was stopped") {
		t.Fatalf("error %v", err)
	}
	t.Logf("returned after %v", time.Since(start))
	assertNoPartial(t, work)
	assertGone(t, pid)
}

func TestStartTimeout(t *testing.T) {
	h := newTestHost(t, Options{StartTimeout: 300 * time.Millisecond})
	_, err := exportPlan(t, h, pluginScript(t, "hangstart", ""), "")
	if err == nil || !strings.Contains(err.Error(), "did not complete its handshake within 300ms") {
		t.Fatalf("error %v", err)
	}
}

// Artifacts are checked before the runner trusts them.
func TestMalformedArtifact(t *testing.T) {
	for _, tc := range []struct{ behaviour, want string }{
		{"wrongkind", `a export stage produces mlpackage, not "gguf"`},
		{"missing", "model.mlpackage: no such file"},
		{"outside", "is outside the stage's output directory"},
		{"fail", "tensor blk.0.attn_q.weight: unsupported type"},
	} {
		t.Run(tc.behaviour, func(t *testing.T) {
			h := newTestHost(t, Options{})
			path := pluginScript(t, tc.behaviour, "")
			plan, err := exportPlan(t, h, path, "")
			if err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			_, err = plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: work})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "plugin "+path) {
				t.Fatalf("error %v, want one naming the plugin and saying %q", err, tc.want)
			}
			assertNoPartial(t, work)
		})
	}
}

// Specs survive the wire: every parameter type, defaults and enums.
func TestSpecRoundTrip(t *testing.T) {
	for _, s := range builtin.Registry().Specs() {
		pb, err := sdk.SpecToPB(s)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := proto.Marshal(pb)
		var back = new(pluginpb.Spec)
		if err := proto.Unmarshal(raw, back); err != nil {
			t.Fatal(err)
		}
		got, err := sdk.SpecFromPB(back)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := s.Resolve(nil)
		have, _ := got.Resolve(nil)
		if fmt.Sprint(want) != fmt.Sprint(have) || got.Uses != s.Uses || got.Kind != s.Kind || len(got.Params) != len(s.Params) {
			t.Errorf("%s: defaults %v came back as %v", s.Uses, want, have)
		}
	}
}

// The sampler through a plugin draws exactly the tokens the in-process one draws (same seed,
// penalties that depend on the accepted history, which travels batched with Sample).
func TestSamplerProcessMatchesInProcess(t *testing.T) {
	params := map[string]any{"temperature": 0.8, "top_k": 40, "repeat_penalty": 1.3, "seed": 42}
	draw := func(isolation string) []int32 {
		h := newTestHost(t, Options{})
		spec := &pipeline.Spec{Name: "s", Model: stories, Stages: []*pipeline.StageSpec{
			{ID: "load", Uses: "loader/gguf", With: map[string]any{}},
			{ID: "sample", Uses: "sampler/default", With: params, Isolation: isolation},
		}}
		reg := builtin.Registry()
		reg.External = h.External
		plan, err := pipeline.Resolve(spec, reg)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := plan.NewSampler(512)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		logits := make([]float32, 512)
		var out []int32
		for i := 0; i < 64; i++ {
			if i == 32 {
				ts.Reset()
			}
			for j := range logits {
				logits[j] = float32(rng.NormFloat64() * 3)
			}
			tok := ts.Sample(logits)
			ts.Accept(tok)
			out = append(out, tok)
		}
		if e, ok := ts.(interface{ Err() error }); ok && e.Err() != nil {
			t.Fatal(e.Err())
		}
		return out
	}
	in, out := draw(""), draw("process")
	if fmt.Sprint(in) != fmt.Sprint(out) {
		t.Errorf("in process %v\nas a plugin %v", in, out)
	}
}

// A plugin whose host died before the plugin could see it as its parent (SIGKILL right
// after the start) is re-parented from its first instant; it still exits, because the host
// it was started for (sdk.HostPIDEnv) is gone.
func TestPluginOfGoneHostExits(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), testPluginEnv+"=slow",
		sdk.Handshake.MagicCookieKey+"="+sdk.Handshake.MagicCookieValue,
		sdk.HostPIDEnv+"="+strconv.Itoa(dead.Process.Pid))
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The handshake line means the plugin serves (it did not just refuse to start).
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "grpc") {
		cmd.Process.Kill()
		t.Fatalf("no handshake: %q, %v", line, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * sdk.ParentPollInterval):
		cmd.Process.Kill()
		t.Fatalf("the plugin still serves %v after its host exited", 5*sdk.ParentPollInterval)
	}
}
