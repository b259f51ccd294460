package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/plugin"
	"github.com/lilims/lilims/pipeline/stage"
)

// serveBuiltinPlugin makes this process the plugin server of one built-in stage when a lilims
// host started it as one (isolation: process); main exits when it returns true.
func serveBuiltinPlugin() bool { return plugin.ServeBuiltin(builtin.Registry()) }

// The plugin host of this run, created when a pipeline first needs it.
var (
	hostOnce sync.Once
	host     *plugin.Host
)

// pluginHost returns the run's plugin host, configured from the environment:
// LILIMS_PLUGIN_START_TIMEOUT, LILIMS_PLUGIN_CALL_TIMEOUT, LILIMS_PLUGIN_STAGE_TIMEOUT (Go
// durations such as 90s or 2h) and LILIMS_PLUGIN_LOG (trace, debug, info, warn, error).
func pluginHost() *plugin.Host {
	hostOnce.Do(func() {
		opts := plugin.Options{}
		for _, d := range []struct {
			env string
			dst *time.Duration
		}{
			{"LILIMS_PLUGIN_START_TIMEOUT", &opts.StartTimeout},
			{"LILIMS_PLUGIN_CALL_TIMEOUT", &opts.CallTimeout},
			{"LILIMS_PLUGIN_STAGE_TIMEOUT", &opts.StageTimeout},
		} {
			if v := os.Getenv(d.env); v != "" {
				t, err := time.ParseDuration(v)
				if err != nil || t <= 0 {
					fmt.Fprintf(os.Stderr, "lilims: warning: %s=%q is not a positive duration; using the default\n", d.env, v)
					continue
				}
				*d.dst = t
			}
		}
		if v := os.Getenv("LILIMS_PLUGIN_LOG"); v != "" {
			opts.LogLevel = hclog.LevelFromString(v)
		}
		opts.Progress = cmdNotes.report
		host = plugin.NewHost(opts)
	})
	return host
}

// cmdNotes reports slow work done on the side of a command — building a plugin from its Go
// package, pulling a model named by a pipeline — on the running command's stderr: a line of
// text, or NDJSON events with --json. The plugin host and the pipeline loader outlive any one
// command, so the command points cmdNotes at its stderr before it resolves a pipeline.
var cmdNotes = &notes{w: os.Stderr}

type notes struct {
	mu     sync.Mutex
	w      io.Writer
	ndjson stage.Reporter // nil: text
}

func (n *notes) to(w io.Writer, asJSON bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.w, n.ndjson = w, nil
	if asJSON {
		n.ndjson = pipeline.NDJSON(w)
	}
}

// writer is the command's stderr.
func (n *notes) writer() io.Writer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.w
}

// events is the NDJSON reporter with --json, else nil.
func (n *notes) events() stage.Reporter {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ndjson
}

func (n *notes) report(e stage.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ndjson != nil {
		n.ndjson(e)
		return
	}
	fmt.Fprintf(n.w, "lilims: %s\n", e.Msg)
}

// withPlugins adds plugin support to a registry: out-of-process stages and the discovery of
// installed plugins go through the run's plugin host.
func withPlugins(reg *pipeline.Registry) *pipeline.Registry {
	h := pluginHost()
	reg.External = h.External
	reg.Discover = h.Discover
	return reg
}

// closePlugins stops every plugin process; main calls it before exiting (os.Exit skips
// deferred calls), also after an interrupt.
func closePlugins() {
	if host != nil {
		host.Close()
	}
	goplugin.CleanupClients()
}

// isolationValue is the --isolation flag: "process" runs every stage out of process.
type isolationValue string

func (v *isolationValue) String() string { return string(*v) }
func (v *isolationValue) Type() string   { return "MODE" }
func (v *isolationValue) Set(s string) error {
	if s != "process" && s != "inprocess" {
		return fmt.Errorf("%q is not process or inprocess", s)
	}
	*v = isolationValue(s)
	return nil
}

var isolation isolationValue

// addPluginFlags adds the global --isolation flag.
func addPluginFlags(root *cobra.Command) {
	isolation = ""
	root.PersistentFlags().Var(&isolation, "isolation",
		"process: run every stage as a plugin process (re-executing lilims); inprocess: every built-in in this process (default: as the pipeline and each stage say)")
}

// isolate applies --isolation to a pipeline before it is resolved.
func isolate(spec *pipeline.Spec) *pipeline.Spec {
	switch isolation {
	case "process":
		plugin.ForceProcess(spec)
	case "inprocess":
		plugin.ForceInProcess(spec)
	}
	return spec
}
