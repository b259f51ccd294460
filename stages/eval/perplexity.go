// Package eval measures how well a model predicts a text: perplexity computed exactly as
// llama.cpp's llama-perplexity computes it, and the KL divergence and top-1 agreement of one
// model's next-token distributions against a base model's (llama.cpp's KL-divergence mode).
// It also holds the scheme comparison report: the table, JSON and chart that `lilims compare`
// prints.
//
// The package works on open sessions (stage.Session) and token ids; it does not tokenize,
// build pipelines or read model files.
package eval

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/lilims/lilims/pipeline/stage"
)

// Options say how a text is cut into chunks and scored.
type Options struct {
	// Context is the number of tokens per chunk (llama-perplexity's -c).
	Context int
	// BOS replaces the first token of every chunk when AddBOS is set, as llama.cpp does for
	// models whose vocabulary adds a BOS token.
	BOS    int32
	AddBOS bool
	// MaxChunks limits the number of chunks scored (llama-perplexity's --chunks); 0 or less
	// scores every whole chunk.
	MaxChunks int
	// KeepLogProbs keeps the log-softmax of every scored position in the result, so that later
	// runs can be compared against this one (Options.Base).
	KeepLogProbs bool
	// Base, when it holds log-probabilities (a run with KeepLogProbs on the same tokens and
	// options), makes Perplexity also compute the KL divergence of this run from it.
	Base *Result
	// Progress, when set, is called after each chunk with the chunks done, their total and
	// the running perplexity estimate (llama.cpp prints the same "[i]ppl" sequence).
	Progress func(done, total int, ppl float64)
}

// Result is a perplexity run.
type Result struct {
	Context int // tokens per chunk
	Chunks  int // chunks scored
	Scored  int // tokens scored (Chunks × (Context − 1 − Context/2))
	// NLL is the mean negative log-likelihood (natural log) of the scored tokens, and PPL =
	// exp(NLL). PPLError is llama.cpp's uncertainty estimate: PPL × the standard error of the
	// mean NLL.
	NLL, PPL, PPLError float64
	// Running holds the perplexity over the first i+1 chunks, as llama.cpp prints it after
	// each chunk.
	Running []float64
	// LogProbs[i] is the log-softmax over the vocabulary at the i-th scored position (only
	// with Options.KeepLogProbs). Argmax[i] is the most likely token there (always kept).
	LogProbs [][]float32
	Argmax   []int32
	// KL is set when Options.Base was given.
	KL *Divergence
}

// Divergence compares a run's next-token distributions with a base run's over the same
// scored positions.
type Divergence struct {
	// Mean is the mean over scored tokens of KL(base ‖ test) = Σ p_base (log p_base − log p_test),
	// in nats; MeanError its standard error.
	Mean, MeanError float64
	// Top1 is the share of scored tokens at which both runs' most likely tokens agree;
	// Top1Error its standard error (binomial).
	Top1, Top1Error float64
	Tokens          int
}

// ErrTooFewTokens is returned when the text holds fewer than two chunks of tokens
// (llama-perplexity refuses the same input).
var ErrTooFewTokens = errors.New("eval: too few tokens")

// ScoredPerChunk returns how many tokens of a chunk of n are scored: llama.cpp scores the
// tokens after position n/2 (the first half only gives the model context), the logits at
// positions n/2 … n−2 predicting tokens n/2+1 … n−1.
func ScoredPerChunk(n int) int { return n - 1 - n/2 }

// Perplexity scores tokens on sess as llama-perplexity does (tools/perplexity/perplexity.cpp,
// restated in testdata/oracle/perplexity.json): the tokens, already tokenized with BOS, are cut
// into ⌊len/Context⌋ non-overlapping chunks (a partial tail is dropped); in each chunk the
// first token is replaced by BOS when the vocabulary adds one; the session is reset and
// consumes the chunk; the log-probabilities (log-softmax in float64) of the chunk's second
// half are summed. PPL = exp(mean NLL).
func Perplexity(ctx context.Context, sess stage.Session, tokens []int32, opts Options) (*Result, error) {
	n := opts.Context
	if ScoredPerChunk(n) < 1 {
		return nil, fmt.Errorf("eval: context %d scores no tokens (need at least 3)", n)
	}
	if n > sess.ContextLength() {
		return nil, fmt.Errorf("eval: context %d exceeds the session's context of %d tokens (re-export with a larger context)", n, sess.ContextLength())
	}
	// llama-perplexity: "you need at least 2*n_ctx tokens".
	if len(tokens) < 2*n {
		return nil, fmt.Errorf("%w: %d tokens, need at least 2 × %d = %d for context %d", ErrTooFewTokens, len(tokens), n, 2*n, n)
	}
	vocab := sess.VocabSize()
	for i, t := range tokens {
		if t < 0 || int(t) >= vocab {
			return nil, fmt.Errorf("eval: token %d at position %d is outside the vocabulary of %d", t, i, vocab)
		}
	}
	chunks := len(tokens) / n
	if opts.MaxChunks > 0 {
		chunks = min(chunks, opts.MaxChunks)
	}
	per := ScoredPerChunk(n)
	base := opts.Base
	if base != nil {
		if base.Context != n || base.Chunks != chunks || len(base.LogProbs) != chunks*per {
			return nil, fmt.Errorf("eval: the base run has %d log-probability rows for %d chunks of %d, want %d chunks of %d (run it with KeepLogProbs on the same text)",
				len(base.LogProbs), base.Chunks, base.Context, chunks, n)
		}
		if len(base.LogProbs[0]) != vocab {
			return nil, fmt.Errorf("eval: the base run's vocabulary has %d tokens and the session's %d: KL needs the same vocabulary", len(base.LogProbs[0]), vocab)
		}
	}

	r := &Result{Context: n, Chunks: chunks, Argmax: make([]int32, 0, chunks*per)}
	var kl divergenceSum
	var nll, nll2 float64
	logp := make([]float64, vocab)
	chunk := make([]int32, n)
	for c := 0; c < chunks; c++ {
		copy(chunk, tokens[c*n:(c+1)*n])
		if opts.AddBOS {
			chunk[0] = opts.BOS
		}
		sess.Reset()
		logits, err := sess.Prefill(ctx, chunk)
		if err != nil {
			return nil, fmt.Errorf("eval: chunk %d of %d: %w", c+1, chunks, err)
		}
		if len(logits) != n {
			return nil, fmt.Errorf("eval: chunk %d: the session returned %d rows of logits for %d tokens", c+1, len(logits), n)
		}
		for i := n / 2; i < n-1; i++ {
			row := logits[i]
			if len(row) != vocab {
				return nil, fmt.Errorf("eval: chunk %d position %d: %d logits, want the vocabulary size %d", c+1, i, len(row), vocab)
			}
			top := logSoftmax(row, logp)
			lp := logp[chunk[i+1]]
			if math.IsNaN(lp) || math.IsInf(lp, 0) {
				return nil, fmt.Errorf("eval: chunk %d position %d: log-probability of token %d is %v", c+1, i, chunk[i+1], lp)
			}
			nll -= lp
			nll2 += lp * lp
			r.Argmax = append(r.Argmax, top)
			k := len(r.Argmax) - 1
			if opts.KeepLogProbs {
				row := make([]float32, vocab)
				for j, v := range logp {
					row[j] = float32(v)
				}
				r.LogProbs = append(r.LogProbs, row)
			}
			if base != nil {
				kl.add(base.LogProbs[k], logp, base.Argmax[k] == top)
			}
		}
		r.Scored += per
		r.Running = append(r.Running, math.Exp(nll/float64(r.Scored)))
		if opts.Progress != nil {
			opts.Progress(c+1, chunks, r.Running[c])
		}
	}
	r.NLL = nll / float64(r.Scored)
	r.PPL = math.Exp(r.NLL)
	if r.Scored > 1 {
		// llama.cpp: uncertainty = PPL · sqrt((⟨nll²⟩ − ⟨nll⟩²) / (count − 1)).
		v := nll2/float64(r.Scored) - r.NLL*r.NLL
		r.PPLError = r.PPL * math.Sqrt(math.Max(v, 0)/float64(r.Scored-1))
	}
	if base != nil {
		r.KL = kl.result()
	}
	return r, nil
}

// logSoftmax writes log softmax(logits) in float64 into dst and returns the index of the
// largest logit (the first one on ties). Working in float64, with the maximum subtracted
// before exponentiating, follows llama.cpp's log_softmax in perplexity.cpp.
func logSoftmax(logits []float32, dst []float64) int32 {
	top := 0
	for i, l := range logits {
		if l > logits[top] {
			top = i
		}
	}
	maxL := float64(logits[top])
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - maxL)
	}
	lse := maxL + math.Log(sum)
	for i, l := range logits {
		dst[i] = float64(l) - lse
	}
	return int32(top)
}

// divergenceSum accumulates KL divergences and top-1 agreements position by position.
type divergenceSum struct {
	n          int
	sum, sum2  float64
	agreements int
}

func (d *divergenceSum) add(base []float32, test []float64, sameTop bool) {
	var kl float64
	for j, lb := range base {
		if math.IsInf(float64(lb), -1) {
			continue // p_base = 0 contributes nothing
		}
		// Both sides at float32 precision, the precision the base was kept in, so that a
		// run compared with itself gives exactly zero.
		kl += math.Exp(float64(lb)) * (float64(lb) - float64(float32(test[j])))
	}
	d.n++
	d.sum += kl
	d.sum2 += kl * kl
	if sameTop {
		d.agreements++
	}
}

func (d *divergenceSum) result() *Divergence {
	if d.n == 0 {
		return &Divergence{}
	}
	n := float64(d.n)
	out := &Divergence{Tokens: d.n, Mean: d.sum / n, Top1: float64(d.agreements) / n}
	if d.n > 1 {
		v := d.sum2/n - out.Mean*out.Mean
		out.MeanError = math.Sqrt(math.Max(v, 0) / (n - 1))
		out.Top1Error = math.Sqrt(out.Top1 * (1 - out.Top1) / (n - 1))
	}
	return out
}

// KL returns the divergence of test from base, two runs made with KeepLogProbs over the same
// tokens and options: the mean of KL(base ‖ test) over scored tokens and the share of them at
// which both argmaxes agree.
func KL(base, test *Result) (*Divergence, error) {
	if base == nil || test == nil {
		return nil, errors.New("eval: KL needs two results")
	}
	if len(base.LogProbs) == 0 || len(base.LogProbs) != len(test.LogProbs) || base.Context != test.Context {
		return nil, fmt.Errorf("eval: KL needs two runs kept with KeepLogProbs over the same chunks (base %d rows of context %d, test %d rows of context %d)",
			len(base.LogProbs), base.Context, len(test.LogProbs), test.Context)
	}
	var d divergenceSum
	lt := make([]float64, 0)
	for i := range base.LogProbs {
		if len(base.LogProbs[i]) != len(test.LogProbs[i]) {
			return nil, fmt.Errorf("eval: KL: scored position %d has %d log-probabilities in the base run and %d in the test run", i, len(base.LogProbs[i]), len(test.LogProbs[i]))
		}
		lt = lt[:0]
		for _, v := range test.LogProbs[i] {
			lt = append(lt, float64(v))
		}
		d.add(base.LogProbs[i], lt, base.Argmax[i] == test.Argmax[i])
	}
	return d.result(), nil
}
