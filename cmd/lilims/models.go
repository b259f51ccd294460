package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/lilims/lilims/internal/hub"
	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize"
)

// pullContext is the context model names are pulled under when a command resolves one
// (main sets it to the interrupt-aware context, so Ctrl-C stops a download).
var pullContext = context.Background()

func newPullCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "pull OWNER/REPO[:QUANT] | hf://OWNER/REPO/FILE.gguf",
		Short: "Download a GGUF model from the Hugging Face Hub into the local model store",
		Long: `Resolve a model on the Hugging Face Hub, download it with a progress bar (an interrupted
download resumes where it stopped), verify its SHA-256 against the Hub's record, and place it
in the model store: $LILIMS_MODELS, else lilims/models under the user cache directory.

OWNER/REPO picks Q4_K_M (else Q4_0, Q5_K_M, Q8_0 …) among the repository's .gguf files;
:QUANT picks that quantization; hf://OWNER/REPO/FILE.gguf names one file. HF_TOKEN is sent
for gated and private repositories; HF_ENDPOINT points at a mirror.

run, chat, serve, build and the other model commands accept the same names and pull on
first use.`,
		Example: `  lilims pull TheBloke/phi-2-GGUF:Q4_0
  lilims pull hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf
  lilims run TheBloke/phi-2-GGUF:Q4_0 --prompt "Instruct: hello\nOutput:"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, a []string) error {
			ref, err := hub.ParseRef(a[0])
			if err != nil {
				return usageError{err}
			}
			if err := readableQuant(ref); err != nil {
				return err
			}
			store, err := hub.DefaultStore()
			if err != nil {
				return err
			}
			var events stage.Reporter
			if jsonOut {
				events = pipeline.NDJSON(c.ErrOrStderr())
			}
			file, err := store.Pull(c.Context(), hub.NewClient(), ref, pullProgress(c.ErrOrStderr(), events))
			if err != nil {
				return err
			}
			if jsonOut {
				return json.NewEncoder(c.OutOrStdout()).Encode(map[string]string{"model": ref.String(), "file": file})
			}
			fmt.Fprintln(c.OutOrStdout(), file)
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print {model, file} as JSON")
	return cmd
}

func newListCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the models in the local model store",
		Args:    args(cobra.NoArgs),
		RunE: func(c *cobra.Command, a []string) error {
			store, err := hub.DefaultStore()
			if err != nil {
				return err
			}
			list, err := store.List()
			if err != nil {
				return err
			}
			type row struct {
				Name         string    `json:"name"`
				File         string    `json:"file"`
				Size         int64     `json:"size"`
				Architecture string    `json:"architecture"`
				Quantization string    `json:"quantization"`
				Modified     time.Time `json:"modified"`
			}
			rows := make([]row, 0, len(list))
			for _, l := range list {
				r := row{Name: l.Name(), File: l.File, Size: l.Size, Modified: l.Modified, Architecture: "?", Quantization: "?"}
				if f, err := gguf.Open(l.File); err == nil {
					r.Architecture, r.Quantization = f.Architecture(), f.FileType()
					f.Close()
				}
				rows = append(rows, r)
			}
			if jsonOut {
				return json.NewEncoder(c.OutOrStdout()).Encode(rows)
			}
			if len(rows) == 0 {
				fmt.Fprintf(c.ErrOrStderr(), "no models in %s (get one with: lilims pull OWNER/REPO[:QUANT])\n", store.Dir)
				return nil
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tARCH\tQUANT\tPULLED")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, humanBytes(r.Size), r.Architecture, r.Quantization, r.Modified.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the list as JSON")
	return cmd
}

func newRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm OWNER/REPO[:QUANT] | hf://OWNER/REPO/FILE.gguf …",
		Short: "Remove models from the local model store (a bare OWNER/REPO removes all its files)",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(c *cobra.Command, a []string) error {
			store, err := hub.DefaultStore()
			if err != nil {
				return err
			}
			for _, name := range a {
				ref, err := hub.ParseRef(name)
				if err != nil {
					return usageError{err}
				}
				gone, err := store.Remove(ref)
				if err != nil {
					return err
				}
				for _, l := range gone {
					fmt.Fprintf(c.OutOrStdout(), "removed %s (%s)\n", l.Name(), humanBytes(l.Size))
				}
			}
			return nil
		},
	}
}

// pullProgress draws a byte progress bar for a download on a terminal, and one line
// before and after it elsewhere.
func pullProgress(w io.Writer, events stage.Reporter) func(hub.RemoteFile) hub.Progress {
	return func(f hub.RemoteFile) hub.Progress {
		name := hub.Ref{Repo: f.Repo, File: f.Path}.String()
		if events != nil { // --json: NDJSON events, a progress one at most every half second
			events(stage.Event{Stage: "pull", Event: "start", Msg: name, Total: f.Size, Unit: "bytes"})
			var last time.Time
			finished := false
			return func(done, total int64) {
				switch {
				case finished:
				case done >= total:
					finished = true
					events(stage.Event{Stage: "pull", Event: "done", Msg: name, Done: done, Total: total, Unit: "bytes"})
				case time.Since(last) >= 500*time.Millisecond:
					last = time.Now()
					events(stage.Event{Stage: "pull", Event: "progress", Done: done, Total: total, Unit: "bytes"})
				}
			}
		}
		if !isTerminalWriter(w) {
			fmt.Fprintf(w, "lilims: pulling %s (%s)\n", name, humanBytes(f.Size))
			return nil
		}
		bar := progressbar.NewOptions64(f.Size,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("pull    "),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionClearOnFinish(),
		)
		fmt.Fprintf(w, "lilims: pulling %s\n", name)
		return func(done, total int64) {
			bar.Set64(done)
			if done >= total {
				bar.Finish()
			}
		}
	}
}

// resolveModel makes the plan's model a local file: a path that exists stays; a Hub name
// (OWNER/REPO[:QUANT], hf://…) becomes its file in the model store, pulled on first use.
// A path that does not exist gets an error that says how to get a model.
func resolveModel(plan *pipeline.Plan, stderr io.Writer) error {
	m := plan.Spec.Model
	if m == "" {
		return nil
	}
	if _, err := os.Stat(m); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) || !hub.LooksLikeRef(m) {
		return missingModel(m, err)
	}
	ref, err := hub.ParseRef(m)
	if err != nil {
		return err
	}
	if err := readableQuant(ref); err != nil {
		return err
	}
	store, err := hub.DefaultStore()
	if err != nil {
		return err
	}
	file, _, err := store.Get(pullContext, hub.NewClient(), ref, pullProgress(stderr, cmdNotes.events()))
	if err != nil {
		return fmt.Errorf("model %s: %w", m, err)
	}
	plan.Spec.Model = file
	return nil
}

// readableQuant refuses, before any download, a quantization tag whose files lilims cannot
// read: the tag's family (IQ3 of IQ3_M, TQ1 of TQ1_0) holds only types that are not
// quantize.Readable. A tag of a mix llama.cpp names otherwise (Q4_K_M) passes.
func readableQuant(ref hub.Ref) error {
	if ref.Quant == "" {
		return nil
	}
	family, _, _ := strings.Cut(strings.ToUpper(ref.Quant), "_")
	members := 0
	for _, t := range ggml.Types() {
		if name := t.String(); name == family || strings.HasPrefix(name, family+"_") {
			if quantize.Readable(t) {
				return nil
			}
			members++
		}
	}
	if members == 0 {
		return nil // not a ggml type's name
	}
	return fmt.Errorf("%s: lilims cannot read %s files (Core ML has no form for their blocks, and lilims does not decode them); "+
		"pick a quantization of %s, e.g. %s:Q4_K_M", ref, ref.Quant, strings.Join(quantize.ReadableTypes(), ", "), ref.Repo)
}

// missingModel explains a model path that cannot be opened, with the ways to get one.
func missingModel(path string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return fmt.Errorf("model %s: no such file\n"+
		"  get a model with `lilims pull OWNER/REPO[:QUANT]` (e.g. TheBloke/phi-2-GGUF:Q4_0) and pass that name,\n"+
		"  or point a pipeline at a local file with LILIMS_MODEL=/path/to/model.gguf (docs/mac.md)", path)
}
