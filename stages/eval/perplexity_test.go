package eval

import (
	"context"
	"errors"
	"math"
	"testing"
)

// fakeSession returns logits from a function of the token just consumed, and records what
// it was fed, so that the chunking and scoring can be checked against hand-computed numbers.
type fakeSession struct {
	vocab, ctxLen int
	next          func(tok int32) []float32
	fed           [][]int32 // tokens fed since each Reset
	pos           int
}

func (s *fakeSession) Prefill(_ context.Context, tokens []int32) ([][]float32, error) {
	if len(s.fed) == 0 {
		s.fed = append(s.fed, nil)
	}
	s.fed[len(s.fed)-1] = append(s.fed[len(s.fed)-1], tokens...)
	out := make([][]float32, len(tokens))
	for i, t := range tokens {
		out[i] = s.next(t)
	}
	s.pos += len(tokens)
	return out, nil
}

func (s *fakeSession) Decode(ctx context.Context, token int32) ([]float32, error) {
	l, err := s.Prefill(ctx, []int32{token})
	return l[0], err
}
func (s *fakeSession) Pos() int           { return s.pos }
func (s *fakeSession) ContextLength() int { return s.ctxLen }
func (s *fakeSession) VocabSize() int     { return s.vocab }
func (s *fakeSession) Reset()             { s.pos = 0; s.fed = append(s.fed, nil) }
func (s *fakeSession) Close() error       { return nil }

// uniform gives every token the same logit.
func uniform(vocab int) func(int32) []float32 {
	return func(int32) []float32 { return make([]float32, vocab) }
}

// successor puts logit log 2 on token (t+1) mod V after token t, 0 elsewhere: the successor
// has probability 2/(V+1), every other token 1/(V+1).
func successor(vocab int) func(int32) []float32 {
	return func(t int32) []float32 {
		l := make([]float32, vocab)
		l[(int(t)+1)%vocab] = float32(math.Ln2)
		return l
	}
}

func counting(n, vocab int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i % vocab)
	}
	return out
}

func TestPerplexityMethod(t *testing.T) {
	const V = 10
	tests := []struct {
		name       string
		next       func(int32) []float32
		tokens     int
		ctx        int
		maxChunks  int
		wantChunks int
		wantScored int
		wantPPL    float64
	}{
		// Uniform logits: every token has probability 1/V, so PPL = V = 10 exactly.
		// 2·16+5 tokens give ⌊37/16⌋ = 2 chunks (the tail of 5 is dropped), each scoring
		// 16 − 1 − 8 = 7 tokens.
		{"uniform", uniform(V), 37, 16, 0, 2, 14, 10},
		// Every scored token is its predecessor's successor, so each has probability
		// 2/(V+1) and PPL = 11/2 = 5.5. Scoring the token at the logits' own position instead
		// of the next one would give 11.
		{"successor", successor(V), 48, 16, 0, 3, 21, 5.5},
		// --chunks 2 stops after two of the three chunks: 2 × 7 scored.
		{"max chunks", successor(V), 48, 16, 2, 2, 14, 5.5},
		// Odd context 7: positions 3..5 score tokens 4..6, 3 per chunk.
		{"odd context", uniform(V), 21, 7, 0, 3, 9, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &fakeSession{vocab: V, ctxLen: 64, next: tc.next}
			r, err := Perplexity(context.Background(), s, counting(tc.tokens, V), Options{Context: tc.ctx, MaxChunks: tc.maxChunks})
			if err != nil {
				t.Fatal(err)
			}
			if r.Chunks != tc.wantChunks || r.Scored != tc.wantScored || len(r.Running) != tc.wantChunks {
				t.Errorf("chunks %d scored %d running %d, want %d %d", r.Chunks, r.Scored, len(r.Running), tc.wantChunks, tc.wantScored)
			}
			// The logit log 2 is a float32: 1e-7 relative is its rounding.
			if math.Abs(r.PPL/tc.wantPPL-1) > 1e-7 {
				t.Errorf("PPL %.12f, want %g", r.PPL, tc.wantPPL)
			}
			// Every scored token has the same probability: no spread, no uncertainty (up to
			// the cancellation in ⟨nll²⟩ − ⟨nll⟩²).
			if r.PPLError > 1e-6 {
				t.Errorf("PPL error %g, want 0", r.PPLError)
			}
		})
	}
}

// In every chunk the first token is replaced by BOS (and only there), and the session is
// reset before each chunk.
func TestPerplexityBOS(t *testing.T) {
	const V, n, bos = 10, 8, 9
	s := &fakeSession{vocab: V, ctxLen: n, next: uniform(V)}
	tokens := counting(3*n, V)
	if _, err := Perplexity(context.Background(), s, tokens, Options{Context: n, BOS: bos, AddBOS: true}); err != nil {
		t.Fatal(err)
	}
	var chunks [][]int32
	for _, f := range s.fed {
		if len(f) > 0 {
			chunks = append(chunks, f)
		}
	}
	if len(chunks) != 3 {
		t.Fatalf("fed %d chunks, want 3", len(chunks))
	}
	for c, got := range chunks {
		for i, tok := range got {
			want := tokens[c*n+i]
			if i == 0 {
				want = bos
			}
			if tok != want {
				t.Errorf("chunk %d position %d: fed %d, want %d", c, i, tok, want)
			}
		}
	}
	// The caller's tokens are left as they were.
	if tokens[n] != int32(n%V) {
		t.Errorf("input modified: tokens[%d] = %d", n, tokens[n])
	}
}

func TestKL(t *testing.T) {
	const V, n = 4, 8
	tokens := counting(2*n, V)
	ctx := context.Background()
	run := func(next func(int32) []float32, base *Result) *Result {
		t.Helper()
		r, err := Perplexity(ctx, &fakeSession{vocab: V, ctxLen: n, next: next}, tokens, Options{Context: n, KeepLogProbs: true, Base: base})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	peaked := func(at int) func(int32) []float32 {
		return func(int32) []float32 { l := make([]float32, V); l[at] = float32(math.Ln2); return l }
	}
	base := run(successor(V), nil)
	same := run(successor(V), base)
	// A run compared with itself: KL exactly 0, argmaxes agree everywhere.
	if same.KL == nil || same.KL.Mean != 0 || same.KL.Top1 != 1 || same.KL.Tokens != base.Scored {
		t.Errorf("identical runs: %+v, want mean 0, top-1 1 over %d tokens", same.KL, base.Scored)
	}

	// Base uniform over 4 tokens (argmax: token 0, the first of equals); test puts logit
	// log 2 on one token: p_test = (2/5, 1/5, 1/5, 1/5) up to order. KL(u ‖ p_test) =
	// ¼·ln(¼ / ⅖) + ¾·ln(¼ / ⅕) = ¼·ln(5/8) + ¾·ln(5/4) ≈ 0.049857.
	wantKL := 0.25*math.Log(5.0/8) + 0.75*math.Log(5.0/4)
	uni := run(uniform(V), nil)
	for _, tc := range []struct {
		name     string
		peak     int
		wantTop1 float64
	}{
		{"same top", 0, 1},      // both argmaxes are token 0
		{"different top", 2, 0}, // test's argmax is token 2
	} {
		test := run(peaked(tc.peak), uni)
		if math.Abs(test.KL.Mean-wantKL) > 1e-6 || test.KL.Top1 != tc.wantTop1 {
			t.Errorf("%s: KL %.6f top-1 %g, want %.6f and %g", tc.name, test.KL.Mean, test.KL.Top1, wantKL, tc.wantTop1)
		}
		// KL of two kept runs gives the same as computing it during the run.
		d, err := KL(uni, test)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(d.Mean-test.KL.Mean) > 1e-12 || d.Top1 != test.KL.Top1 {
			t.Errorf("%s: KL() = %+v, during the run %+v", tc.name, d, test.KL)
		}
	}
}

func TestPerplexityErrors(t *testing.T) {
	const V = 10
	sess := func() *fakeSession { return &fakeSession{vocab: V, ctxLen: 16, next: uniform(V)} }
	short := &Result{Context: 16, Chunks: 1}
	otherVocab := &Result{Context: 16, Chunks: 2, LogProbs: make([][]float32, 14), Argmax: make([]int32, 14)}
	for i := range otherVocab.LogProbs {
		otherVocab.LogProbs[i] = make([]float32, V+1)
	}
	tests := []struct {
		name   string
		tokens []int32
		opts   Options
		is     error
	}{
		{"one chunk only", counting(31, V), Options{Context: 16}, ErrTooFewTokens},
		{"context too small", counting(40, V), Options{Context: 2}, nil},
		{"context beyond the session", counting(80, V), Options{Context: 32}, nil},
		{"token outside the vocabulary", append(counting(40, V), V), Options{Context: 16}, nil},
		{"negative token", append(counting(40, V), -1), Options{Context: 16}, nil},
		{"base of another run", counting(40, V), Options{Context: 16, Base: short}, nil},
		{"base of another vocabulary", counting(40, V), Options{Context: 16, Base: otherVocab}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Perplexity(context.Background(), sess(), tc.tokens, tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
	if _, err := KL(short, short); err == nil {
		t.Error("KL of results without log-probabilities: no error")
	}
}
