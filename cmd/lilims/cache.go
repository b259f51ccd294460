package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
)

func newCacheCmd() *cobra.Command {
	var dir string
	open := func() (*pipeline.Cache, error) {
		if dir == "" {
			d, err := pipeline.DefaultCacheDir()
			if err != nil {
				return nil, err
			}
			dir = d
		}
		return pipeline.OpenCache(dir)
	}
	cmd := &cobra.Command{
		Use:   "cache ls|prune",
		Short: "Inspect and prune the build cache",
		Long: `Build stages are cached by content: a stage's output is reused when its stage, version,
parameters, inputs and the model's content are unchanged (see docs/pipelines.md). The cache
lives in $LILIMS_CACHE_DIR, or lilims under the user cache directory, or --cache-dir. After
a build adds an entry, the least recently used entries are removed while the cache holds
more than $LILIMS_CACHE_MAX_SIZE (default 32GiB; "off" for no bound).`,
	}
	cmd.PersistentFlags().StringVar(&dir, "cache-dir", "", "build cache directory")

	var lsJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List cached build outputs, most recently used first",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			entries, err := c.Entries()
			if err != nil {
				return err
			}
			if lsJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"dir": c.Dir(), "entries": entries})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tUSES\tSTAGE\tPIPELINE\tSIZE\tUSED")
			var total int64
			for _, e := range entries {
				total += e.Size
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Key[:12], e.Uses, e.Stage, e.Pipeline,
					humanBytes(e.Size), e.Used.Local().Format(time.DateTime))
			}
			tw.Flush()
			fmt.Fprintf(cmd.ErrOrStderr(), "%d entries, %s in %s\n", len(entries), humanBytes(total), c.Dir())
			return nil
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, `print {"dir", "entries": [{"key", "uses", "stage", "pipeline", "size", "created", "used", ...}]}`)

	var (
		all       bool
		olderThan time.Duration
		maxSize   string
		pruneJSON bool
	)
	prune := &cobra.Command{
		Use:   "prune [--all | --older-than DURATION] [--max-size SIZE]",
		Short: "Remove cached outputs not used lately, and leftovers of interrupted runs",
		Long: `Remove entries not used for --older-than (default 720h, 30 days), or every entry with
--all; then, with --max-size, the least recently used entries until the rest fit. Entries a
running build is using are kept. Unfinished builds left by killed runs and remembered
digests of files that changed or vanished are always removed.`,
		Example: `  lilims cache prune
  lilims cache prune --older-than 24h
  lilims cache prune --all
  lilims cache prune --max-size 10GiB`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, a []string) error {
			if olderThan < 0 {
				return usagef("--older-than must not be negative")
			}
			var maxBytes int64
			if maxSize != "" {
				n, err := pipeline.ParseSize(maxSize)
				if err != nil {
					return usagef("--max-size: %v", err)
				}
				maxBytes = n
			}
			c, err := open()
			if err != nil {
				return err
			}
			st, err := c.Prune(pipeline.PruneOptions{All: all, OlderThan: olderThan, MaxBytes: maxBytes})
			if err != nil {
				return err
			}
			if pruneJSON {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d entries (%s), %d leftovers", st.Entries, humanBytes(st.Bytes), st.Leftovers)
			if st.Busy > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "; kept %d in use", st.Busy)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	prune.Flags().BoolVar(&all, "all", false, "remove every entry")
	prune.Flags().DurationVar(&olderThan, "older-than", 30*24*time.Hour, "remove entries not used for this long")
	prune.Flags().StringVar(&maxSize, "max-size", "", "then remove least recently used entries until the cache holds at most this (e.g. 10GiB)")
	prune.Flags().BoolVar(&pruneJSON, "json", false, `print {"entries", "bytes", "leftovers", "busy"}`)

	cmd.AddCommand(ls, prune)
	return cmd
}
