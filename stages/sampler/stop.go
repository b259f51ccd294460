package sampler

import "strings"

// A StopDetector finds user stop strings in text that arrives one decoded token piece at a
// time. A stop string may span several pieces ("\nUs" + "er:"), so text that could be the start
// of a stop string is held back until the next piece settles it. The text before the first
// stop string is printed; the stop string and everything after it are not (llama.cpp's
// server does the same with its partial-stop check).
//
// The detector compares bytes: a stop string matches wherever its bytes occur, even inside
// a longer word.
type StopDetector struct {
	stops []string
	held  string // undecided tail: a proper prefix of some stop string
	hit   string // the stop string found, once found
	done  bool
}

// NewStopDetector returns a detector for stops. Empty strings are ignored.
func NewStopDetector(stops []string) *StopDetector {
	d := &StopDetector{}
	for _, s := range stops {
		if s != "" {
			d.stops = append(d.stops, s)
		}
	}
	return d
}

// Feed adds the next decoded piece. It returns the text that is now safe to print and
// whether a stop string has been reached; once it has, Feed returns ("", true) and the
// generation loop should end.
func (d *StopDetector) Feed(piece string) (text string, stopped bool) {
	if d.done {
		return "", true
	}
	buf := d.held + piece
	// The earliest occurrence of any stop string ends the text.
	at := -1
	for _, s := range d.stops {
		if i := strings.Index(buf, s); i >= 0 && (at < 0 || i < at) {
			at, d.hit = i, s
		}
	}
	if at >= 0 {
		d.done, d.held = true, ""
		return buf[:at], true
	}
	// Hold back the longest tail of buf that is a proper prefix of a stop string.
	hold := 0
	for _, s := range d.stops {
		for n := min(len(s)-1, len(buf)); n > hold; n-- {
			if strings.HasSuffix(buf, s[:n]) {
				hold = n
				break
			}
		}
	}
	d.held = buf[len(buf)-hold:]
	return buf[:len(buf)-hold], false
}

// Flush returns the held-back text when generation ends for another reason (end-of-generation
// token, length limit): it did not turn into a stop string, so it is printed.
func (d *StopDetector) Flush() string {
	t := d.held
	d.held = ""
	return t
}

// Stopped reports whether a stop string was found, and which one.
func (d *StopDetector) Stopped() (stop string, ok bool) { return d.hit, d.done }

// Reset prepares the detector for a new generation.
func (d *StopDetector) Reset() { d.held, d.hit, d.done = "", "", false }
