package pipeline_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/stage"
)

var sample = []stage.Event{
	{Stage: "load", Event: "cached", Msg: "151f4901ab24"},
	{Stage: "export", Event: "start", Msg: "export/mil"},
	{Stage: "export", Event: "progress", Done: 12, Total: 48, Unit: "tensors"},
	{Stage: "export", Event: "progress", Done: 48, Total: 48, Unit: "tensors"},
	{Stage: "export", Event: "done", Msg: "/w/export/model.mlpackage"},
}

// NDJSON writes one object per event with the event's own fields.
func TestNDJSON(t *testing.T) {
	var buf bytes.Buffer
	r := pipeline.NDJSON(&buf)
	for _, e := range sample {
		r(e)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(sample) {
		t.Fatalf("%d lines for %d events", len(lines), len(sample))
	}
	for i, l := range lines {
		var got struct {
			stage.Event
			Time    string  `json:"time"`
			Seconds float64 `json:"seconds"`
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if got.Event != sample[i] || got.Time == "" {
			t.Errorf("line %d: %+v, want %+v", i, got.Event, sample[i])
		}
		if sample[i].Event == "done" && got.Seconds <= 0 {
			t.Errorf("done without seconds: %s", l)
		}
	}
}

// ProgressBars draws a bar with count and unit while a stage runs, and a line per stage.
func TestProgressBars(t *testing.T) {
	var buf bytes.Buffer
	r, finish := pipeline.ProgressBars(&buf)
	for _, e := range sample {
		r(e)
	}
	finish()
	out := buf.String()
	for _, want := range []string{"load     cached\n", "(12/48, ", "tensors", "export   done in "} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in %q", want, out)
		}
	}
}

// A bar that reaches its total is erased before the stage's summary line, and a bar with
// nothing done yet is not drawn (it could only show a rate of "0 tensors/hr").
func TestProgressBarsClearFinished(t *testing.T) {
	var buf bytes.Buffer
	r, finish := pipeline.ProgressBars(&buf)
	r(stage.Event{Stage: "load", Event: "start"})
	r(stage.Event{Stage: "load", Event: "progress", Done: 0, Total: 50, Unit: "tensors"})
	r(stage.Event{Stage: "load", Event: "progress", Done: 48, Total: 48, Unit: "tensors"})
	r(stage.Event{Stage: "load", Event: "done"})
	finish()
	out := buf.String()
	if strings.Contains(out, "/hr") || strings.Contains(out, "0/50") {
		t.Errorf("a bar with nothing done was drawn: %q", out)
	}
	if !strings.Contains(out, "\nload     done in ") && !strings.HasPrefix(out, "load     done in ") && !strings.Contains(out, "\rload     done in ") {
		t.Errorf("summary line does not start a clean line: %q", out)
	}
	if strings.Contains(out, "|load") || strings.Contains(out, "/s)load") {
		t.Errorf("finished bar left before the summary: %q", out)
	}
}
