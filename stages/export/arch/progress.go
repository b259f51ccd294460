package arch

import "github.com/lilims/lilims/stages/export/mil"

// WeightProgress counts the model weights an export binds and reports each one as the
// program's serialiser reads it (which is when it is dequantized, converted and written to
// weight.bin), so a long export can show progress in tensors. A weight shared by the prefill
// and decode functions of a program counts once; one bound by two programs (the tied
// embedding of a chunked export's first and last package) counts in each, as it is written
// to each. Builder-made constants (rope tables) are not counted. Like a mil.Program, it is
// for one goroutine.
type WeightProgress struct {
	report      func(done, total int)
	bound       map[progressKey]bool
	done, total int
}

type progressKey struct {
	p   *mil.Program
	key string
}

// NewWeightProgress returns a counter calling report (which may be nil) after each weight is
// read. total is final once every function of the export has been built.
func NewWeightProgress(report func(done, total int)) *WeightProgress {
	return &WeightProgress{report: report, bound: map[progressKey]bool{}}
}

// Total is the number of weights bound so far.
func (w *WeightProgress) Total() int { return w.total }

// Done is the number of weights read so far.
func (w *WeightProgress) Done() int { return w.done }

// track returns src counted under key: bound now, done when first read. The MIL builder
// keeps the first source bound under a name, so counting the first binding of a key matches
// what is read.
func (fn *Func) track(key string, src mil.WeightSource) mil.WeightSource {
	src, _ = fn.tracked(key, src, nil)
	return src
}

// tracked is track for a weight whose bytes may also be written in place by fill (nil if
// not): done when the first of them has run.
func (fn *Func) tracked(key string, src mil.WeightSource, fill mil.WeightFill) (mil.WeightSource, mil.WeightFill) {
	w := fn.Progress
	if w == nil {
		return src, fill
	}
	k := progressKey{fn.prog, key}
	if w.bound[k] {
		return src, fill
	}
	w.bound[k] = true
	w.total++
	read := false
	count := func(err error) {
		if err == nil && !read {
			// Values stored inline rather than in weight.bin are read once per function
			// that uses them: count the first.
			read = true
			w.done++
			if w.report != nil {
				w.report(w.done, w.total)
			}
		}
	}
	counted := func() ([]byte, error) {
		b, err := src()
		count(err)
		return b, err
	}
	if fill == nil {
		return counted, nil
	}
	return counted, func(dst []byte) error {
		err := fill(dst)
		count(err)
		return err
	}
}
