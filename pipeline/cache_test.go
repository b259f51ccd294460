package pipeline_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/stage"
)

const storiesModel = "../testdata/oracle/models/stories260K.gguf"

// events records what a build reported, safe for concurrent use.
type events struct {
	mu   sync.Mutex
	list []stage.Event
}

func (e *events) report(ev stage.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

// outcome maps each stage id to how it ended: "done" (it ran) or "cached".
func (e *events) outcome() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for _, ev := range e.list {
		if ev.Event == "done" || ev.Event == "cached" {
			out[ev.Stage] = ev.Event
		}
	}
	return out
}

func (e *events) count(event string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.list {
		if ev.Event == event {
			n++
		}
	}
	return n
}

// storiesPlan resolves pipelines/stories.yaml (the README's demo) for model.
func storiesPlan(t testing.TB, model string, sets ...string) *pipeline.Plan {
	t.Helper()
	t.Setenv("LILIMS_MODEL", model)
	spec, err := pipeline.LoadFile("../pipelines/stories.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		if err := spec.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := pipeline.Resolve(spec, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func build(t testing.TB, plan *pipeline.Plan, cache *pipeline.Cache) ([]pipeline.Built, *events) {
	t.Helper()
	ev := &events{}
	built, err := plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: t.TempDir(), Report: ev.report, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	return built, ev
}

func openCache(t testing.TB) *pipeline.Cache {
	t.Helper()
	c, err := pipeline.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantOutcome(t *testing.T, ev *events, want map[string]string) {
	t.Helper()
	got := ev.outcome()
	for id, w := range want {
		if got[id] != w {
			t.Errorf("stage %s: %q, want %q (all: %v)", id, got[id], w, got)
		}
	}
}

// The second run of pipelines/stories.yaml with unchanged inputs takes every build stage
// from the cache, and what it hands on is usable: the runtime opens it and computes the same
// logits as on the first run's artifacts.
func TestCacheHitStories(t *testing.T) {
	cache := openCache(t)
	plan := storiesPlan(t, storiesModel)
	first, ev1 := build(t, plan, cache)
	wantOutcome(t, ev1, map[string]string{"load": "done", "export": "done", "compile": "done"})
	second, ev2 := build(t, plan, cache)
	wantOutcome(t, ev2, map[string]string{"load": "cached", "export": "cached", "compile": "cached"})
	if n := ev2.count("start"); n != 0 {
		t.Errorf("second run started %d stages, want 0", n)
	}
	// The export artifact is a hard link of the first run's files (same inode), in the second
	// run's own work dir.
	w1 := filepath.Join(first[1].Artifact.Path, "Data", "com.apple.CoreML", "weights", "weight.bin")
	w2 := filepath.Join(second[1].Artifact.Path, "Data", "com.apple.CoreML", "weights", "weight.bin")
	if w1 == w2 {
		t.Fatalf("both runs point at %s", w1)
	}
	s1, err1 := os.Stat(w1)
	s2, err2 := os.Stat(w2)
	if err1 != nil || err2 != nil || !os.SameFile(s1, s2) {
		t.Errorf("cached weight.bin is not a link of the built one: %v %v", err1, err2)
	}
	// compile/coreml without coremlcompiler hands on the export's package: the cached
	// artifact must point into this run's export dir, not the first run's.
	if !strings.HasPrefix(second[2].Artifact.Path, filepath.Dir(second[1].Artifact.Path)) {
		t.Errorf("compile artifact %s is not under %s", second[2].Artifact.Path, filepath.Dir(second[1].Artifact.Path))
	}
	if second[0].Artifact.Path != plan.Spec.Model {
		t.Errorf("load artifact %s, want the model %s", second[0].Artifact.Path, plan.Spec.Model)
	}
	logits := func(built []pipeline.Built) []float32 {
		sess, err := plan.OpenSession(context.Background(), built)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		out, err := sess.Prefill(context.Background(), []int32{1}) // BOS
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	l1, l2 := logits(first), logits(second)
	if len(l1) != 512 { // stories260K's vocabulary (oracle README)
		t.Fatalf("%d logits, want 512", len(l1))
	}
	for i := range l1 {
		if l1[i] != l2[i] { // the same package, bit for bit
			t.Fatalf("logit %d: %v from the cache, %v built", i, l2[i], l1[i])
		}
	}
}

// A changed parameter rebuilds its stage and those after it; the loader stays cached.
func TestCacheInvalidatedByParam(t *testing.T) {
	cache := openCache(t)
	build(t, storiesPlan(t, storiesModel), cache)
	_, ev := build(t, storiesPlan(t, storiesModel, "export.prefill_chunk=16"), cache)
	wantOutcome(t, ev, map[string]string{"load": "cached", "export": "done", "compile": "done"})
	// A runtime or sampler parameter is not part of any build stage's key.
	_, ev = build(t, storiesPlan(t, storiesModel, "sample.temperature=0"), cache)
	wantOutcome(t, ev, map[string]string{"load": "cached", "export": "cached", "compile": "cached"})
}

// The key follows the model's content: a new mtime alone keeps the cache (the digest is
// re-computed and equal), one changed byte invalidates every stage.
func TestCacheInvalidatedByModel(t *testing.T) {
	cache := openCache(t)
	model := filepath.Join(t.TempDir(), "model.gguf")
	data, err := os.ReadFile(storiesModel)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	build(t, storiesPlan(t, model), cache)

	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(model, later, later); err != nil {
		t.Fatal(err)
	}
	_, ev := build(t, storiesPlan(t, model), cache)
	wantOutcome(t, ev, map[string]string{"load": "cached", "export": "cached", "compile": "cached"})

	// The last byte belongs to the last tensor's data (F32 weights): still a valid model.
	data[len(data)-1] ^= 1
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(model, later, later) // same size and mtime as before: only ctime and content differ
	_, ev = build(t, storiesPlan(t, model), cache)
	wantOutcome(t, ev, map[string]string{"load": "done", "export": "done", "compile": "done"})

	// The same content under another path finds the entries: the key holds the digest, not the path.
	other := filepath.Join(t.TempDir(), "copy.gguf")
	os.WriteFile(other, data, 0o644)
	_, ev = build(t, storiesPlan(t, other), cache)
	wantOutcome(t, ev, map[string]string{"load": "cached", "export": "cached", "compile": "cached"})
}

// Two runs sharing one cache both succeed, and each stage is built once: the second waits
// for the first's lock and then finds the entry.
func TestCacheConcurrentRuns(t *testing.T) {
	cache := openCache(t)
	plan := storiesPlan(t, storiesModel)
	const runs = 3
	evs := make([]*events, runs)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		evs[i] = &events{}
		dir := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: dir, Report: evs[i].report, Cache: cache})
		}()
	}
	wg.Wait()
	built := map[string]int{}
	for i := range runs {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		for id, how := range evs[i].outcome() {
			if how == "done" {
				built[id]++
			}
		}
	}
	for _, id := range []string{"load", "export", "compile"} {
		if built[id] != 1 {
			t.Errorf("stage %s built %d times by %d concurrent runs, want 1", id, built[id], runs)
		}
	}
}

// testStage is a build stage whose behaviour the test chooses.
type testStage func(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error)

func (f testStage) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	return f(ctx, req)
}

// flakyPlan is load → export/test, where export/test runs fn after writing half a file.
func flakyPlan(t testing.TB, fn func(ctx context.Context) error) *pipeline.Plan {
	t.Helper()
	reg := builtin.Registry()
	reg.Register(pipeline.Entry{Version: "test-1",
		Spec: stage.Spec{Uses: "export/test", Kind: stage.KindExport, Doc: "test"},
		New: func() any {
			return testStage(func(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
				out := filepath.Join(req.OutDir, "model.bin")
				if err := os.WriteFile(out, []byte("half a mod"), 0o644); err != nil {
					return stage.Artifact{}, err
				}
				if err := fn(ctx); err != nil {
					return stage.Artifact{}, err
				}
				return stage.Artifact{Kind: "test", Path: out}, nil
			})
		}})
	spec, err := pipeline.Parse("p.yaml", []byte("model: "+storiesModel+
		"\nstages:\n  - {id: load, uses: loader/gguf}\n  - {id: export, uses: export/test}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pipeline.Resolve(spec, reg)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func cachedUses(t *testing.T, c *pipeline.Cache) []string {
	t.Helper()
	entries, err := c.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var uses []string
	for _, e := range entries {
		uses = append(uses, e.Uses)
	}
	sort.Strings(uses)
	return uses
}

// A failing or cancelled stage leaves no entry (and no temporary files); the next run
// builds it.
func TestCacheFailedStageLeavesNoEntry(t *testing.T) {
	cache := openCache(t)
	boom := errors.New("boom")
	ev := &events{}
	_, err := flakyPlan(t, func(context.Context) error { return boom }).Build(context.Background(),
		pipeline.BuildOptions{WorkDir: t.TempDir(), Cache: cache, Report: ev.report})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if got := strings.Join(cachedUses(t, cache), ","); got != "loader/gguf" {
		t.Errorf("entries %q, want only loader/gguf", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = flakyPlan(t, func(ctx context.Context) error { cancel(); <-ctx.Done(); return ctx.Err() }).Build(ctx,
		pipeline.BuildOptions{WorkDir: t.TempDir(), Cache: cache})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if got := strings.Join(cachedUses(t, cache), ","); got != "loader/gguf" {
		t.Errorf("entries %q, want only loader/gguf", got)
	}
	if tmp, _ := os.ReadDir(filepath.Join(cache.Dir(), "tmp")); len(tmp) != 0 {
		t.Errorf("%d leftovers in tmp", len(tmp))
	}
	_, ev = build(t, flakyPlan(t, func(context.Context) error { return nil }), cache)
	wantOutcome(t, ev, map[string]string{"load": "cached", "export": "done"})
}

// A run killed (SIGKILL) in the middle of a stage leaves a temporary directory that no run
// takes for an entry; the next run builds the stage and clears the leftover.
func TestCacheKilledRunLeavesNoEntry(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("needs SIGKILL")
	}
	cache := openCache(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCacheKilledRunHelper$")
	// The helper's work directory is ours: killed, it cannot remove its own.
	cmd.Env = append(os.Environ(), "LILIMS_TEST_KILL_CACHE="+cache.Dir(), "LILIMS_TEST_KILL_WORK="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "writing\n" {
		cmd.Process.Kill()
		t.Fatalf("helper said %q, %v", line, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	if got := strings.Join(cachedUses(t, cache), ","); got != "loader/gguf" {
		t.Errorf("entries after the kill %q, want only loader/gguf", got)
	}
	if tmp, _ := os.ReadDir(filepath.Join(cache.Dir(), "tmp")); len(tmp) != 1 {
		t.Errorf("%d directories in tmp after the kill, want the killed build's 1", len(tmp))
	}
	_, ev := build(t, flakyPlan(t, func(context.Context) error { return nil }), cache)
	wantOutcome(t, ev, map[string]string{"load": "cached", "export": "done"})
	if tmp, _ := os.ReadDir(filepath.Join(cache.Dir(), "tmp")); len(tmp) != 0 {
		t.Errorf("%d leftovers in tmp after the next run, want 0", len(tmp))
	}
}

// TestCacheKilledRunHelper is the process TestCacheKilledRunLeavesNoEntry kills.
func TestCacheKilledRunHelper(t *testing.T) {
	dir := os.Getenv("LILIMS_TEST_KILL_CACHE")
	if dir == "" {
		t.Skip("run by TestCacheKilledRunLeavesNoEntry")
	}
	cache, err := pipeline.OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	plan := flakyPlan(t, func(ctx context.Context) error {
		fmt.Println("writing")
		select {} // until killed
	})
	plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: os.Getenv("LILIMS_TEST_KILL_WORK"), Cache: cache})
}

// Prune removes unused entries and never one a run is linking out; ls lists what is there.
func TestCachePrune(t *testing.T) {
	cache := openCache(t)
	build(t, storiesPlan(t, storiesModel), cache)
	entries, err := cache.Entries()
	if err != nil || len(entries) != 3 {
		t.Fatalf("%d entries, %v; want 3 (load, export, compile)", len(entries), err)
	}
	for _, e := range entries {
		if e.Pipeline != "stories" || e.Size <= 0 && e.Uses == "export/mil" {
			t.Errorf("entry %+v", e)
		}
	}
	st, err := cache.Prune(pipeline.PruneOptions{OlderThan: time.Hour})
	if err != nil || st.Entries != 0 {
		t.Errorf("prune of entries used just now removed %d, %v", st.Entries, err)
	}
	st, err = cache.Prune(pipeline.PruneOptions{All: true})
	if err != nil || st.Entries != 3 || st.Bytes == 0 {
		t.Errorf("prune --all: %+v, %v; want 3 entries", st, err)
	}
	if entries, _ := cache.Entries(); len(entries) != 0 {
		t.Errorf("%d entries after prune --all", len(entries))
	}
	_, ev := build(t, storiesPlan(t, storiesModel), cache)
	wantOutcome(t, ev, map[string]string{"load": "done", "export": "done", "compile": "done"})
}

// FileDigest is the SHA-256 of the content, remembered across calls.
func TestFileDigest(t *testing.T) {
	cache := openCache(t)
	path := filepath.Join(t.TempDir(), "f")
	// sha256("abc") = ba7816bf… (FIPS 180-2, appendix B.1)
	os.WriteFile(path, []byte("abc"), 0o644)
	const want = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	for i := range 2 {
		d, err := cache.FileDigest(path, nil)
		if err != nil || d != want {
			t.Errorf("call %d: %s, %v; want %s", i, d, err, want)
		}
	}
	if memos, _ := os.ReadDir(filepath.Join(cache.Dir(), "files")); len(memos) != 1 {
		t.Errorf("%d memos, want 1", len(memos))
	}
	os.WriteFile(path, []byte("abd"), 0o644)
	if d, _ := cache.FileDigest(path, nil); d == want {
		t.Error("digest unchanged after the content changed")
	}
}

// BenchmarkStoriesBuild compares a first build of pipelines/stories.yaml's build stages
// (load, export, compile) with a re-run that finds them all cached.
func BenchmarkStoriesBuild(b *testing.B) {
	plan := storiesPlan(b, storiesModel)
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			cache := openCache(b)
			dir := b.TempDir()
			b.StartTimer()
			if _, err := plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: dir, Cache: cache}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		cache := openCache(b)
		build(b, plan, cache)
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			b.StartTimer()
			if _, err := plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: dir, Cache: cache}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nocache", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			b.StartTimer()
			if _, err := plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: dir}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// textStage is a build stage with a path-valued parameter; it copies the file's bytes.
type textStage struct{}

func (textStage) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	data, err := os.ReadFile(req.Params.String("text"))
	if err != nil {
		return stage.Artifact{}, err
	}
	out := filepath.Join(req.OutDir, "copy.txt")
	return stage.Artifact{Kind: "quantized", Path: out}, os.WriteFile(out, data, 0o644)
}

// A path-valued parameter keys the stage on the file's contents: editing the file in place
// (same path, same parameters) rebuilds the stage.
func TestCacheKeysPathParamsOnContent(t *testing.T) {
	reg := builtin.Registry()
	reg.Register(pipeline.Entry{Spec: stage.Spec{Uses: "quantize/text", Kind: stage.KindQuantize,
		Params: []stage.ParamSpec{{Name: "text", Type: stage.Path, Required: true}}},
		New: func() any { return textStage{} }})
	text := filepath.Join(t.TempDir(), "calibration.txt")
	os.WriteFile(text, []byte("one"), 0o644)
	spec := &pipeline.Spec{Name: "t", Model: storiesModel, Stages: []*pipeline.StageSpec{
		{ID: "load", Uses: "loader/gguf", With: map[string]any{}},
		{ID: "q", Uses: "quantize/text", With: map[string]any{"text": text}},
	}}
	plan, err := pipeline.Resolve(spec, reg)
	if err != nil {
		t.Fatal(err)
	}
	cache := openCache(t)
	build(t, plan, cache)
	_, ev := build(t, plan, cache)
	wantOutcome(t, ev, map[string]string{"load": "cached", "q": "cached"})
	os.WriteFile(text, []byte("two"), 0o644)
	later := time.Now().Add(time.Minute)
	os.Chtimes(text, later, later)
	built, ev := build(t, plan, cache)
	wantOutcome(t, ev, map[string]string{"load": "cached", "q": "done"})
	if got, _ := os.ReadFile(built[1].Artifact.Path); string(got) != "two" {
		t.Errorf("stage output %q, want the edited file's contents", got)
	}
}

// A bounded cache drops its least recently used entries: Prune with MaxBytes keeps the most
// recent ones that fit, and a build that adds an entry trims the cache to Cache.MaxBytes
// (the entry just built stays, even when it alone is over the bound).
func TestCacheMaxBytes(t *testing.T) {
	cache := openCache(t)
	build(t, storiesPlan(t, storiesModel), cache)
	entries, err := cache.Entries()
	if err != nil || len(entries) != 3 {
		t.Fatalf("%d entries, %v; want 3", len(entries), err)
	}
	// Make the order of use explicit: entries[0] most recent, entries[2] least.
	now := time.Now()
	for i, e := range entries {
		os.Chtimes(e.Dir, now, now.Add(-time.Duration(i)*time.Hour))
	}
	keep := entries[0].Size + entries[1].Size
	st, err := cache.Prune(pipeline.PruneOptions{MaxBytes: keep})
	if err != nil || st.Entries != 1 {
		t.Fatalf("prune to %d bytes removed %d entries, %v; want the least recently used one", keep, st.Entries, err)
	}
	left, _ := cache.Entries()
	if len(left) != 2 || left[0].Key != entries[0].Key || left[1].Key != entries[1].Key {
		t.Errorf("left %v, want the two most recent entries", left)
	}

	cache.MaxBytes = 1 // every build trims to almost nothing
	cache.Prune(pipeline.PruneOptions{All: true})
	build(t, storiesPlan(t, storiesModel), cache)
	left, _ = cache.Entries()
	if len(left) != 1 || left[0].Uses != "compile/coreml" {
		var uses []string
		for _, e := range left {
			uses = append(uses, e.Uses)
		}
		t.Errorf("after a build with MaxBytes 1: entries %v, want only the last stage's", uses)
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"off", 0, true}, {"1024", 1024, true}, {"32GiB", 32 << 30, true},
		{"20GB", 20e9, true}, {"1.5 MiB", 3 << 19, true}, {"7b", 7, true},
		{"-1GB", 0, false}, {"lots", 0, false}, {"1e30TB", 0, false}, {"", 0, false},
	} {
		got, err := pipeline.ParseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}
