package sampler

import (
	"slices"
	"testing"
)

func TestStopDetector(t *testing.T) {
	stops := []string{"\nUser:", "###"}
	tests := []struct {
		name    string
		pieces  []string
		out     []string // what Feed returns for each piece fed (feeding ends at the stop)
		stopped int      // index of the piece at which the stop is reported, -1 for none
		stop    string
		flush   string
	}{
		{"no stop", []string{"Hello", " world"}, []string{"Hello", " world"}, -1, "", ""},
		// "\nUs" could begin "\nUser:", so it is held until "er:" completes the stop.
		{"across pieces", []string{"Hello", "\nUs", "er: hi"}, []string{"Hello", "", ""}, 2, "\nUser:", ""},
		// The held "\nU" turns out not to be a stop: it is released with the next piece.
		{"false start", []string{"a\nU", "x"}, []string{"a", "\nUx"}, -1, "", ""},
		{"one char at a time", []string{"#", "#", "#", "!"}, []string{"", "", ""}, 2, "###", ""},
		// Text before the stop inside one piece is printed; after it, nothing.
		{"inside a piece", []string{"ok###tail"}, []string{"ok"}, 0, "###", ""},
		// The earliest stop wins even when another stop string is listed first.
		{"earliest", []string{"x###y\nUser:"}, []string{"x"}, 0, "###", ""},
		// Generation ends without a stop: the held prefix is flushed.
		{"flush", []string{"done\nUse"}, []string{"done"}, -1, "", "\nUse"},
		// Held text is the longest candidate: "##" could start "###".
		{"longest hold", []string{"a##"}, []string{"a"}, -1, "", "##"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewStopDetector(stops)
			var outs []string
			stoppedAt := -1
			for i, p := range tc.pieces {
				text, stopped := d.Feed(p)
				outs = append(outs, text)
				if stopped && stoppedAt < 0 {
					stoppedAt = i
				}
				if stopped {
					break
				}
			}
			if !slices.Equal(outs, tc.out) {
				t.Errorf("Feed outputs = %q, want %q", outs, tc.out)
			}
			if stoppedAt != tc.stopped {
				t.Errorf("stopped at piece %d, want %d", stoppedAt, tc.stopped)
			}
			if stop, ok := d.Stopped(); ok != (tc.stopped >= 0) || stop != tc.stop {
				t.Errorf("Stopped() = %q, %v; want %q, %v", stop, ok, tc.stop, tc.stopped >= 0)
			}
			if got := d.Flush(); got != tc.flush {
				t.Errorf("Flush() = %q, want %q", got, tc.flush)
			}
			if tc.stopped >= 0 {
				if text, stopped := d.Feed("more"); text != "" || !stopped {
					t.Errorf("Feed after stop = %q, %v; want \"\", true", text, stopped)
				}
			}
		})
	}

	// No stop strings: pieces pass straight through.
	d := NewStopDetector([]string{""})
	if text, stopped := d.Feed("abc"); text != "abc" || stopped {
		t.Errorf("Feed without stops = %q, %v", text, stopped)
	}
}
