package pipeline

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/lilims/lilims/pipeline/stage"
)

// NDJSON returns a Reporter that writes every event as one JSON object per line —
// {"stage","event","done","total","unit","msg"} plus "time" (RFC 3339) and, on "done" and
// "cached", "seconds" since the stage's "start" — for programs that follow a build.
func NDJSON(w io.Writer) stage.Reporter {
	var mu sync.Mutex
	started := map[string]time.Time{}
	return func(e stage.Event) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		line := struct {
			stage.Event
			Time    string  `json:"time"`
			Seconds float64 `json:"seconds,omitempty"`
		}{Event: e, Time: now.UTC().Format(time.RFC3339Nano)}
		switch e.Event {
		case "start":
			started[e.Stage] = now
		case "done":
			if t, ok := started[e.Stage]; ok {
				line.Seconds = now.Sub(t).Seconds()
			}
		}
		b, err := json.Marshal(line)
		if err != nil {
			return
		}
		w.Write(append(b, '\n'))
	}
}

// ProgressBars returns a Reporter that draws, on w (a terminal), one progress bar per running
// stage — done/total in the stage's unit (bytes or tensors), rate and time left — and one
// summary line per finished or cached stage. Call the returned finish when the build is over;
// it clears a bar left by a stage that failed.
func ProgressBars(w io.Writer) (report stage.Reporter, finish func()) {
	var mu sync.Mutex
	type running struct {
		bar   *progressbar.ProgressBar
		unit  string
		start time.Time
	}
	stages := map[string]*running{}
	report = func(e stage.Event) {
		mu.Lock()
		defer mu.Unlock()
		r := stages[e.Stage]
		switch e.Event {
		case "start":
			stages[e.Stage] = &running{start: time.Now()}
		case "progress":
			if r == nil {
				r = &running{start: time.Now()}
				stages[e.Stage] = r
			}
			// Until the first unit is done a bar has no rate to show but "0 tensors/hr".
			if e.Total <= 0 || e.Done <= 0 {
				return
			}
			if r.bar == nil || r.unit != e.Unit {
				if r.bar != nil {
					r.bar.Clear()
				}
				r.bar, r.unit = newBar(w, e), e.Unit
			}
			if r.bar.GetMax64() != e.Total {
				r.bar.ChangeMax64(e.Total)
			}
			if e.Msg != "" {
				r.bar.Describe(fmt.Sprintf("%-8s %s", e.Stage, e.Msg))
			}
			r.bar.Set64(e.Done)
		case "done", "cached":
			secs := 0.0
			if r != nil {
				if r.bar != nil {
					r.bar.Clear()
				}
				secs = time.Since(r.start).Seconds()
				delete(stages, e.Stage)
			}
			if e.Event == "cached" {
				fmt.Fprintf(w, "%-8s cached\n", e.Stage)
			} else {
				fmt.Fprintf(w, "%-8s done in %.2fs\n", e.Stage, secs)
			}
		}
	}
	finish = func() {
		mu.Lock()
		defer mu.Unlock()
		for id, r := range stages {
			if r.bar != nil {
				r.bar.Clear()
			}
			delete(stages, id)
		}
	}
	return report, finish
}

func newBar(w io.Writer, e stage.Event) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-8s", e.Stage)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionUseANSICodes(true),
		// A finished bar is erased, so that the stage's summary line starts a clean line.
		progressbar.OptionClearOnFinish(),
	}
	if e.Unit == "bytes" {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true))
	} else if e.Unit != "" {
		opts = append(opts, progressbar.OptionSetItsString(e.Unit))
	}
	return progressbar.NewOptions64(e.Total, opts...)
}
