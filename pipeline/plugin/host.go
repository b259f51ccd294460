// Package plugin runs lilims stages out of process, through hashicorp/go-plugin: built-ins
// with `isolation: process` (the lilims binary re-executed as its own plugin server) and
// third-party plugins named `uses: plugin:PATH`, where PATH is an executable or a Go main
// package directory that is built on demand into the user cache.
//
// A Host supervises the plugin processes of one lilims run: gRPC only, Managed clients,
// start/call/stage timeouts, sha256 pinning, a minimal environment for third-party code, and
// errors that name the plugin and say what went wrong. Its External method is the hook the
// pipeline runner calls (pipeline.Registry.External); the stages it returns implement the
// same stage interfaces as the built-ins, so the runner cannot tell them apart.
//
// The wire format is in package pluginpb and the adapters in package sdk, which is also
// what a plugin's main imports.
package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/plugin/sdk"
	"github.com/lilims/lilims/pipeline/stage"
)

// Default timeouts (Options fields left zero).
const (
	DefaultStartTimeout   = 30 * time.Second // exec to handshake
	DefaultCallTimeout    = 2 * time.Minute  // Describe, Open, one Prefill/Decode/Sample
	DefaultStageTimeout   = time.Hour        // one whole Build
	DefaultGoBuildTimeout = 10 * time.Minute // `go build` of a plugin package
)

// ServeEnv is the environment variable that turns the lilims binary into the plugin server
// of one built-in stage (its value is the stage's `uses:` name); see ServeBuiltin.
const ServeEnv = "LILIMS_PLUGIN_SERVE"

// PassedEnv are the variables of lilims's environment a third-party plugin inherits; it gets
// nothing else but Options.Env, go-plugin's own handshake variables and sdk.HostPIDEnv.
var PassedEnv = []string{"PATH", "HOME", "USER", "TMPDIR", "LANG", "LC_ALL", "TZ"}

// Options configure a Host. Zero fields take the defaults.
type Options struct {
	StartTimeout   time.Duration
	CallTimeout    time.Duration
	StageTimeout   time.Duration
	GoBuildTimeout time.Duration
	// CacheDir holds plugins built from Go packages (default os.UserCacheDir()/lilims/plugins).
	CacheDir string
	// Executable is the binary re-executed for `isolation: process` (default os.Executable()).
	Executable string
	// Env is added to a third-party plugin's minimal environment (KEY=VALUE).
	Env []string
	// Log receives plugin logs and host warnings (default os.Stderr); LogLevel filters the
	// plugins' hclog lines (default hclog.Warn: warnings, errors and panics).
	Log      io.Writer
	LogLevel hclog.Level
	// Progress, when set, hears of slow work done before a plugin starts: building one from
	// its Go package (a "start" event, then "done" with the time it took).
	Progress stage.Reporter
}

// Host starts and supervises plugin processes. Close (or go-plugin's CleanupClients) stops
// them all.
type Host struct {
	opts Options

	mu     sync.Mutex
	procs  map[string]*proc
	closed bool
}

// NewHost returns a Host; nothing starts until a stage needs it.
func NewHost(opts Options) *Host {
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.StageTimeout <= 0 {
		opts.StageTimeout = DefaultStageTimeout
	}
	if opts.GoBuildTimeout <= 0 {
		opts.GoBuildTimeout = DefaultGoBuildTimeout
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.LogLevel == hclog.NoLevel {
		opts.LogLevel = hclog.Warn
	}
	return &Host{opts: opts, procs: map[string]*proc{}}
}

func (h *Host) report(e stage.Event) {
	if h.opts.Progress != nil {
		h.opts.Progress(e)
	}
}

func (h *Host) warnf(format string, args ...any) {
	fmt.Fprintf(h.opts.Log, "lilims: warning: "+format+"\n", args...)
}

// Close stops every plugin process the host started.
func (h *Host) Close() {
	h.mu.Lock()
	procs := h.procs
	h.procs, h.closed = map[string]*proc{}, true
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.kill() }()
	}
	wg.Wait()
}

// ForceProcess marks every stage of spec `isolation: process` (the --isolation process
// flag); third-party plugins run out of process anyway.
func ForceProcess(spec *pipeline.Spec) {
	for _, st := range spec.Stages {
		if !strings.HasPrefix(st.Uses, "plugin:") {
			st.Isolation = "process"
		}
	}
}

// ForceInProcess marks every built-in stage of spec `isolation: inprocess` (the --isolation
// inprocess flag), overriding the process isolation a stage may have by default (Core ML on
// darwin, docs/mac.md); third-party plugins run out of process anyway.
func ForceInProcess(spec *pipeline.Spec) {
	for _, st := range spec.Stages {
		if !strings.HasPrefix(st.Uses, "plugin:") {
			st.Isolation = "inprocess"
		}
	}
}

// ServeBuiltin serves one built-in stage of reg as a plugin when the process was started
// as such (ServeEnv is set), and then returns true: main should exit. Otherwise it returns
// false at once. Call it first thing in main.
func ServeBuiltin(reg *pipeline.Registry) bool {
	uses, ok := os.LookupEnv(ServeEnv)
	if !ok {
		return false
	}
	e, found := reg.Lookup(uses)
	if !found {
		fmt.Fprintf(os.Stderr, "lilims: %s=%s: no such built-in stage\n", ServeEnv, uses)
		os.Exit(1)
	}
	sdk.Serve(sdk.Stage{Spec: e.Spec, Impl: e.New()})
	return true
}

// Ref names a third-party plugin: the PATH of `uses: plugin:PATH` and its `sha256:` pin.
type Ref struct {
	Path   string // an executable, a Go main package directory, or the NAME of an installed plugin
	SHA256 string // 64 hex digits, or ""
}

// PluginDirs are the directories searched for `uses: plugin:NAME` (a bare name, no path
// separator) and listed by Discover: $LILIMS_PLUGIN_PATH (a list), else
// os.UserConfigDir()/lilims/plugins.
func PluginDirs() []string {
	if v := os.Getenv("LILIMS_PLUGIN_PATH"); v != "" {
		return filepath.SplitList(v)
	}
	if d, err := os.UserConfigDir(); err == nil {
		return []string{filepath.Join(d, "lilims", "plugins")}
	}
	return nil
}

// locate resolves a bare plugin name against PluginDirs; paths are taken as they are
// (relative to the working directory, like the pipeline's model path).
func locate(path string) string {
	if strings.ContainsRune(path, '/') || strings.ContainsRune(path, filepath.Separator) {
		return path
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	for _, d := range PluginDirs() {
		if _, err := os.Stat(filepath.Join(d, path)); err == nil {
			return filepath.Join(d, path)
		}
	}
	return path
}

// Discover lists the stages of the plugins installed in PluginDirs, each under the `uses:`
// name a pipeline writes (plugin:NAME). A plugin that fails to describe itself is reported
// as a warning and skipped.
func (h *Host) Discover(ctx context.Context) ([]stage.Spec, error) {
	var out []stage.Spec
	for _, d := range PluginDirs() {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue // no such directory: nothing installed
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			specs, err := h.Describe(ctx, Ref{Path: filepath.Join(d, e.Name())})
			if err != nil {
				h.warnf("%v", err)
				continue
			}
			for _, s := range specs {
				s.Uses = "plugin:" + e.Name()
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// External resolves an out-of-process stage for the pipeline runner: a built-in with
// `isolation: process` (builtin non-nil) or `uses: plugin:PATH`. A third-party plugin is
// started (built first when PATH is a Go package) to ask it for its stage description.
func (h *Host) External(st *pipeline.StageSpec, builtin *pipeline.Entry) (pipeline.Entry, error) {
	if builtin != nil {
		return h.builtinEntry(*builtin)
	}
	ref := Ref{Path: strings.TrimPrefix(st.Uses, "plugin:"), SHA256: strings.ToLower(st.SHA256)}
	if ref.Path == "" {
		return pipeline.Entry{}, errors.New("plugin: empty path (write uses: plugin:PATH)")
	}
	p, specs, err := h.open(context.Background(), ref)
	if err != nil {
		return pipeline.Entry{}, err
	}
	if len(specs) != 1 {
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.Uses
		}
		return pipeline.Entry{}, fmt.Errorf("%s serves %d stages (%s); a pipeline stage needs a plugin that serves one", p.label, len(specs), strings.Join(names, ", "))
	}
	e := h.entry(p, specs[0])
	e.Version = p.digest
	return e, nil
}

// Describe starts the plugin at ref (building it if it is a Go package) and returns the
// stages it serves, for listings such as `lilims stages`.
func (h *Host) Describe(ctx context.Context, ref Ref) ([]stage.Spec, error) {
	_, specs, err := h.open(ctx, ref)
	return specs, err
}

func (h *Host) builtinEntry(e pipeline.Entry) (pipeline.Entry, error) {
	exe := h.opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return pipeline.Entry{}, fmt.Errorf("isolation: process needs the lilims executable: %w", err)
		}
	}
	key := "builtin:" + e.Spec.Uses
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.procs[key]
	if !ok {
		p = &proc{h: h, label: fmt.Sprintf("built-in %s (isolation: process)", e.Spec.Uses), path: exe,
			env: append(os.Environ(), ServeEnv+"="+e.Spec.Uses), inheritEnv: true}
		h.procs[key] = p
	}
	return h.entry(p, e.Spec), nil
}

// open finds, pins, builds and starts a third-party plugin and asks what it serves.
func (h *Host) open(ctx context.Context, ref Ref) (*proc, []stage.Spec, error) {
	label := "plugin " + ref.Path
	ref.Path = locate(ref.Path)
	if ref.SHA256 != "" {
		if b, err := hex.DecodeString(ref.SHA256); err != nil || len(b) != sha256.Size {
			return nil, nil, fmt.Errorf("%s: sha256 pin %q is not 64 hexadecimal digits", label, ref.SHA256)
		}
	}
	fi, err := os.Stat(ref.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%s: no such file or directory", label)
		}
		return nil, nil, fmt.Errorf("%s: %w", label, err)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		h.warnf("%s is writable by every user (mode %v): anyone on this machine can change the code lilims runs", label, fi.Mode().Perm())
	}
	exe := ref.Path
	if fi.IsDir() {
		if ref.SHA256 != "" {
			return nil, nil, fmt.Errorf("%s: a sha256 pin applies to an executable, not to a package directory", label)
		}
		if exe, err = h.goBuild(ctx, ref.Path); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", label, err)
		}
	} else if fi.Mode()&0o111 == 0 {
		return nil, nil, fmt.Errorf("%s: not executable (mode %v); chmod +x it, or give a Go package directory", label, fi.Mode().Perm())
	}
	if abs, err := filepath.Abs(exe); err == nil {
		exe = abs
	}
	// The digest is the cache's identity of the stage (pipeline.Entry.Version) and the pin's
	// check, made here for a clear message before anything runs; go-plugin checks again right
	// before exec (SecureConfig), narrowing the window in which the file could change.
	got, err := fileSHA256(exe)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", label, err)
	}
	var sum []byte
	if ref.SHA256 != "" {
		if hex.EncodeToString(got) != ref.SHA256 {
			return nil, nil, fmt.Errorf("%s: sha256 mismatch: the file hashes to %x, the pipeline pins %s; refusing to run it", label, got, ref.SHA256)
		}
		sum = got
	}
	key := "ext:" + exe + "@" + ref.SHA256
	h.mu.Lock()
	p, ok := h.procs[key]
	if !ok {
		env := append([]string{}, h.opts.Env...)
		for _, k := range PassedEnv {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
		p = &proc{h: h, label: label, path: exe, env: env, checksum: sum, digest: hex.EncodeToString(got)}
		h.procs[key] = p
	}
	h.mu.Unlock()
	raw, err := p.dispense(sdk.InfoPlugin)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, h.opts.CallTimeout)
	defer cancel()
	specs, err := raw.(*sdk.InfoClient).Describe(cctx)
	if err != nil {
		return nil, nil, p.explain("Describe", h.opts.CallTimeout, err)
	}
	return p, specs, nil
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hw := sha256.New()
	if _, err := io.Copy(hw, f); err != nil {
		return nil, err
	}
	return hw.Sum(nil), nil
}

// proc is one plugin process, started on first use and restarted if it has exited.
type proc struct {
	h          *Host
	label      string
	path       string
	env        []string
	inheritEnv bool   // built-ins: the host's own binary gets the host's environment
	checksum   []byte // the sha256 pin, checked again by go-plugin before each exec
	digest     string // sha256 of the executable (third-party plugins)

	mu     sync.Mutex
	client *goplugin.Client
	cmd    *exec.Cmd
	rpc    goplugin.ClientProtocol
	stderr *tail
}

// dispense starts the process if needed and returns the client of one service.
func (p *proc) dispense(name string) (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil && p.client.Exited() {
		p.client, p.rpc = nil, nil
	}
	if p.client == nil {
		if err := p.start(); err != nil {
			return nil, err
		}
	}
	raw, err := p.rpc.Dispense(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.label, err)
	}
	return raw, nil
}

func (p *proc) start() error {
	p.h.mu.Lock()
	closed := p.h.closed
	p.h.mu.Unlock()
	if closed {
		return fmt.Errorf("%s: the plugin host is shut down", p.label)
	}
	cmd := exec.Command(p.path) // no shell: the path is executed as it is
	cmd.Env = append(p.env[:len(p.env):len(p.env)], sdk.HostPIDEnv+"="+strconv.Itoa(os.Getpid()))
	p.stderr = &tail{}
	cfg := &goplugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.ClientPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Managed:          true,
		StartTimeout:     p.h.opts.StartTimeout,
		SkipHostEnv:      !p.inheritEnv,
		Stderr:           p.stderr,
		SyncStdout:       p.h.opts.Log, // stdout is lilims's results: a plugin's prints go to the log
		SyncStderr:       p.h.opts.Log,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: p.h.opts.Log,
			Level: p.h.opts.LogLevel}),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(sdk.MaxMessageBytes), grpc.MaxCallSendMsgSize(sdk.MaxMessageBytes))},
	}
	if p.checksum != nil {
		cfg.SecureConfig = &goplugin.SecureConfig{Checksum: p.checksum, Hash: sha256.New()}
	}
	client := goplugin.NewClient(cfg)
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return p.startError(cmd, err)
	}
	p.client, p.cmd, p.rpc = client, cmd, rpc
	return nil
}

// startError explains a failed start in the user's terms.
func (p *proc) startError(cmd *exec.Cmd, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "exited before we could connect"), strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		// It closed its stdout without a handshake line: it exited (or closed fd 1) early.
		status := "it exited"
		if cmd.ProcessState != nil {
			status = "it exited: " + cmd.ProcessState.String()
		}
		return fmt.Errorf("%s crashed at start (%s) before its handshake%s", p.label, status, p.stderr.describe())
	case strings.HasPrefix(msg, "Unrecognized remote plugin message"):
		line, _, _ := strings.Cut(strings.TrimPrefix(msg, "Unrecognized remote plugin message: "), "\n")
		return fmt.Errorf("%s wrote %q to stdout before its handshake; a plugin must print nothing on stdout before sdk.Serve (log to stderr)", p.label, line)
	case strings.Contains(strings.ToLower(msg), "incompatible api version"):
		return fmt.Errorf("%s speaks another version of the stage protocol (%s); this lilims speaks version %d: rebuild the plugin against this lilims's SDK",
			p.label, strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0]), sdk.ProtocolVersion)
	case errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("%s: sha256 mismatch: the file changed after it was checked; refusing to run it", p.label)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("%s did not complete its handshake within %v (the start timeout); it was stopped%s", p.label, p.h.opts.StartTimeout, p.stderr.describe())
	}
	return fmt.Errorf("%s: start: %w%s", p.label, err, p.stderr.describe())
}

// explain turns a failed call into an error naming the plugin: a dead process gets its exit
// status, a timeout kills the process (a hung plugin must not hang lilims).
func (p *proc) explain(op string, timeout time.Duration, err error) error {
	if err == nil {
		return nil
	}
	p.mu.Lock()
	client, cmd := p.client, p.cmd
	p.mu.Unlock()
	code := status.Code(err)
	if client != nil && (code == codes.Unavailable || code == codes.Canceled || client.Exited()) {
		// The transport reports a dead peer before go-plugin has reaped it.
		for i := 0; i < 100 && !client.Exited(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if client.Exited() {
			st := "exited"
			if cmd != nil && cmd.ProcessState != nil {
				st = cmd.ProcessState.String()
			}
			return fmt.Errorf("%s (pid %d) died during %s: %s%s", p.label, pidOf(cmd), op, st, p.stderr.describe())
		}
	}
	if code == codes.DeadlineExceeded {
		p.kill()
		return fmt.Errorf("%s: %s did not finish within %v; the plugin was stopped", p.label, op, timeout)
	}
	if code == codes.ResourceExhausted {
		return fmt.Errorf("%s: %s: a message exceeded the %d MiB limit: %v", p.label, op, sdk.MaxMessageBytes>>20, status.Convert(err).Message())
	}
	return fmt.Errorf("%s: %w", p.label, err)
}

func pidOf(cmd *exec.Cmd) int {
	if cmd != nil && cmd.Process != nil {
		return cmd.Process.Pid
	}
	return 0
}

// pid is the running process's id, 0 when none.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil || p.client.Exited() {
		return 0
	}
	return pidOf(p.cmd)
}

// kill stops the process (gracefully, then by force after go-plugin's 2 s) and waits for it.
func (p *proc) kill() {
	p.mu.Lock()
	client, cmd := p.client, p.cmd
	p.client, p.rpc = nil, nil
	p.mu.Unlock()
	if client == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		client.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(killGrace):
		// go-plugin's graceful Kill first asks the plugin to shut down over gRPC and waits
		// for the answer without a deadline: a frozen process (stopped, deadlocked) never
		// answers, and lilims would hang on the plugin it meant to stop (found by
		// TestCallTimeout with a SIGSTOPped plugin). Kill it by pid; the dropped connection
		// then lets client.Kill return.
		if cmd != nil && cmd.Process != nil {
			cmd.Process.Kill()
		}
		<-done
	}
}

// killGrace is how long kill lets go-plugin's graceful shutdown run (which itself allows the
// plugin 2 s to exit after answering) before killing the process outright.
const killGrace = 3 * time.Second

// tail keeps the last lines a plugin wrote to stderr, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailBytes = 2048

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailBytes {
		t.buf = append([]byte{}, t.buf[len(t.buf)-tailBytes:]...)
	}
	return len(b), nil
}

func (t *tail) describe() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(bytes.ToValidUTF8(t.buf, nil)))
	if s == "" {
		return ""
	}
	return "; its stderr ends with:\n" + s
}
