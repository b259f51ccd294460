// Command lilims converts GGUF language models into Core ML ML Programs and runs them: on the
// Neural Engine on a Mac, and everywhere through the pure-Go reference runtime.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, as `go` and llama.cpp's tools use them.
const (
	exitOK          = 0
	exitError       = 1 // bad input, failed work
	exitUsage       = 2 // bad command line
	exitInterrupted = 130
)

// usageError marks command-line mistakes (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// flagError rewords pflag's report of a bad flag value ("invalid argument "abc" for
// "--temperature" flag: strconv.ParseFloat: parsing "abc": invalid syntax") as the flag and
// what it wants: --temperature: "abc" is not a number.
func flagError(err error) error {
	var ive *pflag.InvalidValueError
	if !errors.As(err, &ive) {
		return err
	}
	name := "--" + ive.GetFlag().Name
	want := map[string]string{"float64": "a number", "float32": "a number", "int": "a whole number",
		"int64": "a whole number", "int32": "a whole number", "uint": "a whole number ≥ 0",
		"uint64": "a whole number ≥ 0", "bool": "true or false", "duration": "a duration (e.g. 90s, 2h)"}
	if w, ok := want[ive.GetFlag().Value.Type()]; ok {
		return fmt.Errorf("%s: %q is not %s", name, ive.GetValue(), w)
	}
	return fmt.Errorf("%s: %v", name, errors.Unwrap(ive)) // our own Values say what they want
}

// args wraps a cobra positional-argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "lilims",
		Short: "GGUF → INT4 → Core ML ML Program → Neural Engine, without Python",
		Long: `lilims takes a GGUF language model (Llama, Qwen, Gemma, Phi, StarCoder2 through a plugin …), quantizes it,
exports a Core ML ML Program package and runs it — on Apple's Neural Engine on a Mac, and
anywhere through the pure-Go reference runtime that executes the exported package op by op.`,
		Example: `  lilims run testdata/oracle/models/stories260K.gguf --prompt "Once upon a time" --max-tokens 64
  lilims chat testdata/oracle/models/stories260K.gguf --system "Tell short stories."
  lilims serve testdata/oracle/models/stories260K.gguf --port 11434
  lilims pull TheBloke/phi-2-GGUF:Q4_0
  lilims run pipelines/stories.yaml --prompt "Lily" --temperature 0
  lilims build model.gguf -o out/ --json
  lilims score model.gguf --prompt "Hello" --top 5 --json
  lilims inspect model.gguf
  lilims tokenize model.gguf --text "Hello world" --bos`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{flagError(err)} })
	root.Version = readBuildVersion().String()
	root.SetVersionTemplate("{{.Version}}\n")
	// Declared here so that cobra gives it no -v, which every other command uses for --verbose.
	root.Flags().Bool("version", false, "print the lilims version (as lilims version does)")
	addPluginFlags(root)
	root.AddCommand(newRunCmd(), newBuildCmd(), newScoreCmd(), newPredictCmd(),
		newInspectCmd(), newTokenizeCmd(), newDetokenizeCmd(), newDoctorCmd(), newChatCmd())
	root.AddCommand(newPerplexityCmd(), newCompareCmd())
	root.AddCommand(newValidateCmd(), newStagesCmd(), newCacheCmd())
	root.AddCommand(newBenchCmd(), newVersionCmd())
	root.AddCommand(newPullCmd(), newListCmd(), newRemoveCmd(), newServeCmd())
	root.AddCommand(newVerifyCmd(), newPlanCmd())
	return root
}

func main() {
	if serveBuiltinPlugin() {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	pullContext = ctx
	root := newRootCmd()
	stopProfile := startProfile()
	err := execute(ctx, root)
	stopProfile()
	closePlugins()
	os.Exit(exitCode(ctx, err))
}

// startProfile writes a CPU profile to $LILIMS_CPUPROFILE when it is set (for `go tool
// pprof`): the way to see where a slow conversion or run spends its time.
func startProfile() (stop func()) {
	path := os.Getenv("LILIMS_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lilims: LILIMS_CPUPROFILE:", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// execute runs the command line. A command run with --json that fails says so as one NDJSON
// event on stderr (see errorReport), so that its stderr stays machine-readable to the end.
func execute(ctx context.Context, root *cobra.Command) error {
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && cmd != nil {
		if f := cmd.Flags().Lookup("json"); f != nil && f.Value.String() == "true" {
			return jsonError{err}
		}
	}
	return err
}

// jsonError marks the failure of a command run with --json.
type jsonError struct{ err error }

func (e jsonError) Error() string { return e.err.Error() }
func (e jsonError) Unwrap() error { return e.err }

func exitCode(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitError
	var ue usageError
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		code = exitInterrupted
	case errors.As(err, &ue) || isCobraUsage(err):
		code = exitUsage
	}
	os.Stderr.WriteString(errorReport(err, code))
	return code
}

// errorReport is what a failure prints on stderr: "lilims: message" (and where to find the
// usage), or with --json {"event": "error", "error": message, "exit": status}.
func errorReport(err error, code int) string {
	msg := err.Error()
	if code == exitInterrupted {
		msg = "interrupted"
	}
	var je jsonError
	if errors.As(err, &je) {
		b, _ := json.Marshal(struct {
			Event string `json:"event"`
			Error string `json:"error"`
			Exit  int    `json:"exit"`
		}{"error", msg, code})
		return string(b) + "\n"
	}
	if code == exitUsage {
		return "lilims: " + msg + "\nRun 'lilims --help' for usage.\n"
	}
	return "lilims: " + msg + "\n"
}

// isCobraUsage recognises cobra's own errors for unknown commands.
func isCobraUsage(err error) bool {
	msg := err.Error()
	return len(msg) > 16 && msg[:16] == "unknown command "
}
