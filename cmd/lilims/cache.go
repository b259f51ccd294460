package main

import (
	"fmt"
	"regexp"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/plugin"
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
		Short: "Inspect and prune the build cache and the plugins built from Go packages",
		Long: `Build stages are cached by content: a stage's output is reused when its stage, version,
parameters, inputs and the model's content are unchanged (see docs/pipelines.md). The cache
lives in $LILIMS_CACHE_DIR, or lilims under the user cache directory, or --cache-dir. After
a build adds an entry, the least recently used entries are removed while the cache holds
more than $LILIMS_CACHE_MAX_SIZE (default 32GiB; "off" for no bound). Plugins built from
their Go package directories (uses: plugin:DIR) are kept in its plugins directory.`,
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
			plugins, err := plugin.BuiltPlugins(plugin.CacheDirIn(c.Dir()))
			if err != nil {
				return err
			}
			if lsJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"dir": c.Dir(), "entries": entries, "plugins": plugins})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tUSES\tSTAGE\tPIPELINE\tMODEL\tSIZE\tUSED")
			var total int64
			for _, e := range entries {
				total += e.Size
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Key[:12], e.Uses, e.Stage, e.Pipeline,
					orDash(e.ModelPath), humanBytes(e.Size), e.Used.Local().Format(time.DateTime))
			}
			tw.Flush()
			if len(plugins) > 0 {
				fmt.Fprintln(cmd.OutOrStdout())
				tw = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PLUGIN\tSOURCE\tSIZE\tUSED")
				for _, p := range plugins {
					total += p.Size
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Path, orDash(p.Source), humanBytes(p.Size), p.Used.Local().Format(time.DateTime))
				}
				tw.Flush()
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d entries, %d built plugins, %s in %s\n", len(entries), len(plugins), humanBytes(total), c.Dir())
			return nil
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, `print {"dir", "entries": [{"key", "uses", "stage", "pipeline", "model_path", "size", "created", "used", ...}], "plugins": [{"path", "source", "size", "used"}]}`)

	var (
		all       bool
		olderThan = age(30 * 24 * time.Hour)
		maxSize   string
		pruneJSON bool
	)
	prune := &cobra.Command{
		Use:   "prune [--all | --older-than DURATION] [--max-size SIZE]",
		Short: "Remove cached outputs not used lately, and leftovers of interrupted runs",
		Long: `Remove entries and built plugins not used for --older-than (default 30d), or every one
with --all; then, with --max-size, the least recently used entries until the rest fit. Entries
a running build is using are kept. Unfinished builds left by killed runs and remembered
digests of files that changed or vanished are always removed. A pruned plugin is built
again when a pipeline next needs it.`,
		Example: `  lilims cache prune
  lilims cache prune --older-than 7d
  lilims cache prune --older-than 24h
  lilims cache prune --all
  lilims cache prune --max-size 10GiB`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, a []string) error {
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
			st, err := c.Prune(pipeline.PruneOptions{All: all, OlderThan: time.Duration(olderThan), MaxBytes: maxBytes})
			if err != nil {
				return err
			}
			cutoff := time.Now().Add(-time.Duration(olderThan))
			if all {
				cutoff = time.Time{}
			}
			np, pbytes, err := plugin.PruneBuilt(plugin.CacheDirIn(c.Dir()), cutoff)
			if err != nil {
				return err
			}
			if pruneJSON {
				return writeJSON(cmd.OutOrStdout(), struct {
					pipeline.PruneStats
					Plugins     int   `json:"plugins"`
					PluginBytes int64 `json:"plugin_bytes"`
				}{st, np, pbytes})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d entries (%s), %d built plugins (%s), %d leftovers",
				st.Entries, humanBytes(st.Bytes), np, humanBytes(pbytes), st.Leftovers)
			if st.Busy > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "; kept %d in use", st.Busy)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	prune.Flags().BoolVar(&all, "all", false, "remove every entry")
	prune.Flags().Var(&olderThan, "older-than", "remove entries not used for this long (e.g. 7d, 2w, 36h)")
	prune.Flags().StringVar(&maxSize, "max-size", "", "then remove least recently used entries until the cache holds at most this (e.g. 10GiB)")
	prune.Flags().BoolVar(&pruneJSON, "json", false, `print {"entries", "bytes", "leftovers", "busy"}`)

	cmd.AddCommand(ls, prune)
	return cmd
}

// age is a duration flag that also takes days and weeks ("7d", "2w", "1d12h"), the units in
// which people think of a cache's age; time.ParseDuration stops at hours.
type age time.Duration

var dayWeek = regexp.MustCompile(`(\d+(?:\.\d+)?)([dw])`)

func (a *age) Set(s string) error {
	hours := dayWeek.ReplaceAllStringFunc(s, func(m string) string {
		g := dayWeek.FindStringSubmatch(m)
		n, _ := strconv.ParseFloat(g[1], 64)
		if g[2] == "w" {
			n *= 7
		}
		return strconv.FormatFloat(n*24, 'f', -1, 64) + "h"
	})
	d, err := time.ParseDuration(hours)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 7d, 2w, 36h, 90m)", s)
	}
	if d < 0 {
		return fmt.Errorf("%q: a duration must not be negative", s)
	}
	*a = age(d)
	return nil
}

func (a *age) String() string {
	d := time.Duration(*a)
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func (a *age) Type() string { return "DURATION" }
