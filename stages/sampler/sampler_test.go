package sampler

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// offParams switches every stage off (temperature 1 leaves logits as they are), so a test can
// turn on the one stage it checks.
func offParams() Params {
	return Params{Temperature: 1, TopK: 0, TopP: 1, MinP: 0, TypicalP: 1, RepeatPenalty: 1,
		PenaltyLastN: 64, Seed: 1}
}

// lnProbs returns ln(p) for each p: softmax of the result is p again (Σp = 1).
func lnProbs(p ...float64) []float32 {
	out := make([]float32, len(p))
	for i, x := range p {
		out[i] = float32(math.Log(x))
	}
	return out
}

// survivors runs the chain without the final draw and returns the surviving ids, sorted.
func survivors(t *testing.T, p Params, logits []float32) []int32 {
	t.Helper()
	s, err := New(p, len(logits))
	if err != nil {
		t.Fatal(err)
	}
	if !s.filter(logits) {
		t.Fatal("filter rejected logits")
	}
	ids := make([]int32, len(s.cur))
	for i, c := range s.cur {
		ids[i] = c.id
	}
	slices.Sort(ids)
	return ids
}

func TestStages(t *testing.T) {
	// Probabilities 0.5, 0.3, 0.15, 0.05 as logits ln p.
	probs := lnProbs(0.5, 0.3, 0.15, 0.05)
	tests := []struct {
		name   string
		set    func(*Params)
		logits []float32
		want   []int32
	}{
		// Top-k keeps the k largest logits; equal logits both rank before smaller ones.
		{"top_k 2", func(p *Params) { p.TopK = 2 }, []float32{1, 5, 3, 5, 2}, []int32{1, 3}},
		{"top_k 3", func(p *Params) { p.TopK = 3 }, []float32{1, 5, 3, 5, 2}, []int32{1, 2, 3}},
		// A tie at the cut: our order puts the lower id first.
		{"top_k tie at cut", func(p *Params) { p.TopK = 2 }, []float32{5, 4, 4, 1}, []int32{0, 1}},
		{"top_k > vocab", func(p *Params) { p.TopK = 10 }, []float32{5, 4, 4, 1}, []int32{0, 1, 2, 3}},
		{"top_k off", func(p *Params) { p.TopK = -1 }, []float32{5, 4, 4, 1}, []int32{0, 1, 2, 3}},

		// Top-p keeps the shortest prefix with cumulative p ≥ top_p: 0.5, 0.8, 0.95, 1.0.
		{"top_p 0.75", func(p *Params) { p.TopP = 0.75 }, probs, []int32{0, 1}},
		{"top_p 0.9", func(p *Params) { p.TopP = 0.9 }, probs, []int32{0, 1, 2}},
		{"top_p 0.97", func(p *Params) { p.TopP = 0.97 }, probs, []int32{0, 1, 2, 3}},
		{"top_p 0 keeps one", func(p *Params) { p.TopP = 0 }, probs, []int32{0}},
		{"top_p min_keep 3", func(p *Params) { p.TopP = 0.4; p.MinKeep = 3 }, probs, []int32{0, 1, 2}},

		// Min-p keeps p ≥ min_p·p_max, p_max = 0.5.
		{"min_p 0.2 (p>=0.1)", func(p *Params) { p.MinP = 0.2 }, probs, []int32{0, 1, 2}},
		{"min_p 0.5 (p>=0.25)", func(p *Params) { p.MinP = 0.5 }, probs, []int32{0, 1}},
		{"min_p 1 keeps top", func(p *Params) { p.MinP = 1 }, probs, []int32{0}},
		{"min_p min_keep 3", func(p *Params) { p.MinP = 0.9; p.MinKeep = 3 }, probs, []int32{0, 1, 2}},
		// After top-k the candidates are sorted: the prefix path gives the same rule.
		{"min_p sorted", func(p *Params) { p.TopK = 3; p.MinP = 0.5 }, probs, []int32{0, 1}},

		// Typical: H = −Σ p ln p = 1.14212; |−ln p − H| = 0.4490, 0.0619, 0.7549, 1.8536,
		// so the order is ids 1, 0, 2, 3 with cumulative p 0.3, 0.8, 0.95, 1.0; keep the
		// shortest prefix with cum > typical_p.
		{"typical 0.2", func(p *Params) { p.TypicalP = 0.2 }, probs, []int32{1}},
		{"typical 0.5", func(p *Params) { p.TypicalP = 0.5 }, probs, []int32{0, 1}},
		{"typical 0.9", func(p *Params) { p.TypicalP = 0.9 }, probs, []int32{0, 1, 2}},
		{"typical min_keep 2", func(p *Params) { p.TypicalP = 0.2; p.MinKeep = 2 }, probs, []int32{0, 1}},

		// Boundaries, exact in float32: four equal logits have p = 0.25 each, cumulative
		// 0.25, 0.5, …; top-p stops at cum ≥ 0.5 (2 tokens), typical only at cum > 0.5 (3).
		{"top_p boundary", func(p *Params) { p.TopP = 0.5 }, []float32{0, 0, 0, 0}, []int32{0, 1}},
		{"typical boundary", func(p *Params) { p.TypicalP = 0.5 }, []float32{0, 0, 0, 0}, []int32{0, 1, 2}},
		// Min-p keeps a logit equal to max + ln(min_p) (≥, not >).
		{"min_p boundary", func(p *Params) { p.MinP = 0.5 }, lnProbs(1, 0.5, 0.25), []int32{0, 1}},

		// Chained: top-k 3 leaves 0.5, 0.3, 0.15 (renormalised 0.526, 0.316, 0.158);
		// top-p 0.8 then stops at cum 0.842 → ids 0, 1.
		{"top_k then top_p", func(p *Params) { p.TopK = 3; p.TopP = 0.8 }, probs, []int32{0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := offParams()
			tc.set(&p)
			if got := survivors(t, p, tc.logits); !slices.Equal(got, tc.want) {
				t.Errorf("survivors = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTemperature(t *testing.T) {
	inf := float32(math.Inf(-1))
	tests := []struct {
		temp   float32
		logits []float32
		want   []float32 // logits after the stage, in id order (no other stage sorts)
	}{
		{0.5, []float32{1, 2, 3}, []float32{2, 4, 6}},     // l / 0.5
		{2, []float32{1, -2, 3}, []float32{0.5, -1, 1.5}}, // l / 2
		{0, []float32{1, 2, 3}, []float32{inf, inf, 3}},   // keep only the max
		{-1, []float32{3, 1, 3}, []float32{3, inf, inf}},  // first max wins
	}
	for _, tc := range tests {
		p := offParams()
		p.Temperature = tc.temp
		s, err := New(p, len(tc.logits))
		if err != nil {
			t.Fatal(err)
		}
		s.filter(tc.logits)
		for i, c := range s.cur {
			if c.id != int32(i) || c.logit != tc.want[i] {
				t.Errorf("temp %v: candidate %d = (id %d, %v), want (id %d, %v)", tc.temp, i, c.id, c.logit, i, tc.want[i])
			}
		}
	}
}

func TestPenalties(t *testing.T) {
	logits := []float32{2, -1, 0.5, 3, 0}
	tests := []struct {
		name    string
		lastN   int
		history []int32
		want    []float32
	}{
		// Window [0 0 1 4]: counts 0→2, 1→1, 4→1. repeat 1.5, freq 0.25, presence 0.5:
		// id0: 2/1.5 − (2·0.25 + 0.5) = 0.333333 (positive: divided)
		// id1: −1·1.5 − (0.25 + 0.5) = −2.25   (negative: multiplied)
		// id4: 0·1.5 − 0.75 = −0.75             (zero counts as ≤ 0)
		{"window 64", 64, []int32{0, 0, 1, 4}, []float32{0.3333333, -2.25, 0.5, 3, -0.75}},
		// Window of 2 keeps [1 4]: id0 is no longer penalised.
		{"window 2", 2, []int32{0, 0, 1, 4}, []float32{2, -2.25, 0.5, 3, -0.75}},
		// Window of 3 keeps [0 1 4]: id0 counted once: 2/1.5 − 0.75 = 0.583333.
		{"window 3", 3, []int32{0, 0, 1, 4}, []float32{0.5833333, -2.25, 0.5, 3, -0.75}},
		// −1: everything since Reset, counts 0→3: 2/1.5 − (0.75 + 0.5) = 0.083333.
		{"whole context", -1, []int32{0, 0, 1, 0}, []float32{0.0833333, -2.25, 0.5, 3, 0}},
		{"window off", 0, []int32{0, 0, 1, 4}, []float32{2, -1, 0.5, 3, 0}},
		// Out-of-vocabulary tokens are kept in the window but penalise nothing.
		{"foreign tokens", 2, []int32{0, 99, -3}, []float32{2, -1, 0.5, 3, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := offParams()
			p.RepeatPenalty, p.FrequencyPenalty, p.PresencePenalty = 1.5, 0.25, 0.5
			p.PenaltyLastN = tc.lastN
			s, err := New(p, len(logits))
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range tc.history {
				s.Accept(tok)
			}
			s.filter(logits)
			for i, c := range s.cur {
				if math.Abs(float64(c.logit-tc.want[i])) > 1e-6 {
					t.Errorf("logit[%d] = %v, want %v", i, c.logit, tc.want[i])
				}
			}
			// Reset forgets the history.
			s.Reset()
			s.filter(logits)
			for i, c := range s.cur {
				if c.logit != logits[i] {
					t.Errorf("after Reset: logit[%d] = %v, want %v", i, c.logit, logits[i])
				}
			}
		})
	}
}

func TestGreedy(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		logits []float32
		want   int32
	}{
		{[]float32{0.1, 0.7, 0.2}, 1},
		{[]float32{3, 5, 5, 1}, 1}, // first max wins
		{[]float32{-4, -2, -3}, 1},
		{[]float32{nan, 1, 2}, 2}, // NaN never wins
		{[]float32{float32(math.Inf(-1)), float32(math.Inf(-1))}, 0},
		{[]float32{nan}, -1},
		{nil, -1},
	}
	for _, tc := range tests {
		if got := Greedy(tc.logits); got != tc.want {
			t.Errorf("Greedy(%v) = %d, want %d", tc.logits, got, tc.want)
		}
	}
}

func TestSoftmax(t *testing.T) {
	inf := float32(math.Inf(-1))
	tests := []struct {
		logits, want []float32
	}{
		// e^1, e^2, e^3 over their sum: 0.09003057, 0.24472847, 0.66524096.
		{[]float32{1, 2, 3}, []float32{0.09003057, 0.24472847, 0.66524096}},
		// Subtracting the max keeps exp from overflowing: 1/(1+e) and e/(1+e).
		{[]float32{1000, 1001}, []float32{0.26894142, 0.73105858}},
		{[]float32{0, inf, 0}, []float32{0.5, 0, 0.5}},
		{[]float32{inf, inf}, []float32{0.5, 0.5}},
	}
	for _, tc := range tests {
		dst := make([]float32, len(tc.logits))
		Softmax(tc.logits, dst)
		for i := range dst {
			if math.Abs(float64(dst[i]-tc.want[i])) > 1e-7 {
				t.Errorf("Softmax(%v)[%d] = %v, want %v", tc.logits, i, dst[i], tc.want[i])
			}
		}
	}
}

// oracleSteps loads llama.cpp's recorded next-token distributions for stories260K.
func oracleSteps(t *testing.T) (vocab int, steps []oracleStep) {
	t.Helper()
	data, err := os.ReadFile("../../testdata/oracle/llamacpp-reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Models map[string]struct {
			Prompts []struct {
				Steps []oracleStep `json:"steps"`
			} `json:"prompts"`
		} `json:"models"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	for _, p := range ref.Models["stories260K.gguf"].Prompts {
		steps = append(steps, p.Steps...)
	}
	if len(steps) == 0 {
		t.Fatal("no stories260K steps in the oracle")
	}
	return 512, steps // stories260K's SentencePiece vocabulary has 512 tokens
}

type oracleStep struct {
	Argmax int32        `json:"argmax"`
	Top    [][2]float64 `json:"top"` // [token, probability]
}

// logits rebuilds logits from the 20 recorded probabilities: ln p for the listed tokens,
// −Inf elsewhere. Softmax of ln p is p renormalised over the 20, so order and argmax are
// llama.cpp's.
func (st oracleStep) logits(vocab int) []float32 {
	l := make([]float32, vocab)
	for i := range l {
		l[i] = float32(math.Inf(-1))
	}
	for _, tp := range st.Top {
		l[int(tp[0])] = float32(math.Log(tp[1]))
	}
	return l
}

// TestOracleGreedy checks against llama.cpp's recorded argmax on stories260K: Greedy, and the
// full default chain at temperature 0 (what llama-cli --temp 0 runs), pick the same token.
func TestOracleGreedy(t *testing.T) {
	vocab, steps := oracleSteps(t)
	p := DefaultParams()
	p.Temperature = 0
	s, err := New(p, vocab)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, vocab)
	for i, st := range steps {
		logits := st.logits(vocab)
		if got := Greedy(logits); got != st.Argmax {
			t.Errorf("step %d: Greedy = %d, llama.cpp argmax %d", i, got, st.Argmax)
		}
		if got := s.Sample(logits); got != st.Argmax {
			t.Errorf("step %d: Sample(temp 0) = %d, llama.cpp argmax %d", i, got, st.Argmax)
		}
		// Softmax gives back llama.cpp's probabilities renormalised over the 20 listed.
		var sum float64
		for _, tp := range st.Top {
			sum += tp[1]
		}
		Softmax(logits, dst)
		for _, tp := range st.Top {
			if want := tp[1] / sum; math.Abs(float64(dst[int(tp[0])])-want) > 1e-6 {
				t.Errorf("step %d token %d: Softmax = %v, want %v", i, int(tp[0]), dst[int(tp[0])], want)
			}
		}
	}
}

func randomLogits(r *rand.Rand, n int) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 3)
	}
	return l
}

// TestTemperatureZeroIsGreedy: with the default chain at temperature 0 and no penalties,
// every stage keeps the top token, so Sample must equal Greedy.
func TestTemperatureZeroIsGreedy(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, set := range []func(*Params){
		func(p *Params) { p.Temperature = 0 },
		func(p *Params) { p.Temperature = -1; p.TopK = 0 },
		func(p *Params) { p.TopK = 1 }, // top-k 1 is greedy at any temperature
	} {
		p := DefaultParams()
		set(&p)
		s, err := New(p, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			l := randomLogits(r, 1000)
			if got, want := s.Sample(l), Greedy(l); got != want {
				t.Fatalf("params %+v: Sample = %d, Greedy = %d", p, got, want)
			}
		}
	}
}

func TestSampleDoesNotModifyLogits(t *testing.T) {
	p := DefaultParams()
	p.RepeatPenalty, p.TypicalP = 1.3, 0.9
	s, err := New(p, 500)
	if err != nil {
		t.Fatal(err)
	}
	l := randomLogits(rand.New(rand.NewPCG(1, 2)), 500)
	for i := range 50 {
		s.Accept(int32(i))
	}
	orig := slices.Clone(l)
	s.Sample(l)
	if !slices.Equal(l, orig) {
		t.Error("Sample modified the caller's logits")
	}
	if got := s.Sample(l[:10]); got != -1 {
		t.Errorf("Sample with wrong-length logits = %d, want -1", got)
	}
}

// drawSequence samples n tokens, feeding each back into the history as a generation loop does.
func drawSequence(s *Sampler, logits []float32, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = s.Sample(logits)
		s.Accept(out[i])
	}
	return out
}

func TestSeedReproducible(t *testing.T) {
	l := randomLogits(rand.New(rand.NewPCG(3, 4)), 2000)
	newSampler := func(seed uint64) *Sampler {
		p := DefaultParams()
		p.Temperature = 1.5 // spread the draws over many tokens
		p.RepeatPenalty = 1.1
		p.Seed = seed
		s, err := New(p, len(l))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, c := newSampler(42), newSampler(42), newSampler(43)
	seqA, seqB, seqC := drawSequence(a, l, 200), drawSequence(b, l, 200), drawSequence(c, l, 200)
	if !slices.Equal(seqA, seqB) {
		t.Error("same seed gave different sequences")
	}
	if slices.Equal(seqA, seqC) {
		t.Error("seeds 42 and 43 gave the same 200 tokens")
	}
	if distinct := len(slices.Compact(slices.Sorted(slices.Values(seqA)))); distinct < 5 {
		t.Errorf("only %d distinct tokens in 200 draws: the test does not exercise sampling", distinct)
	}
	a.Reset()
	if again := drawSequence(a, l, 200); !slices.Equal(again, seqA) {
		t.Error("Reset did not restart the same sequence")
	}
	if a.Seed() != 42 {
		t.Errorf("Seed() = %d, want 42", a.Seed())
	}

	r1, r2 := newSampler(RandomSeed), newSampler(RandomSeed)
	if r1.Seed() == RandomSeed || r1.Seed() == r2.Seed() {
		t.Errorf("random seeds %#x and %#x: want two fresh seeds", r1.Seed(), r2.Seed())
	}
	// The chosen seed reproduces the run.
	replay := newSampler(r1.Seed())
	if !slices.Equal(drawSequence(r1, l, 50), drawSequence(replay, l, 50)) {
		t.Error("replaying the reported random seed gave a different sequence")
	}
}

// TestDistribution draws 20000 tokens and checks each count within 5 standard deviations
// (σ = √(n·p·(1−p))) of n·p.
func TestDistribution(t *testing.T) {
	const n = 20000
	tests := []struct {
		name   string
		temp   float32
		logits []float32
		want   []float64
	}{
		// Temperature 1 on ln p returns p.
		{"temp 1", 1, lnProbs(0.1, 0.2, 0.3, 0.4), []float64{0.1, 0.2, 0.3, 0.4}},
		// Temperature 0.5 squares the probabilities: p² / Σp² = (1, 4, 9, 16) / 30.
		{"temp 0.5", 0.5, lnProbs(0.1, 0.2, 0.3, 0.4), []float64{1.0 / 30, 4.0 / 30, 9.0 / 30, 16.0 / 30}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := offParams()
			p.Temperature = tc.temp
			p.Seed = 2024
			s, err := New(p, len(tc.logits))
			if err != nil {
				t.Fatal(err)
			}
			counts := make([]int, len(tc.logits))
			for range n {
				counts[s.Sample(tc.logits)]++
			}
			for i, q := range tc.want {
				mean, sigma := n*q, math.Sqrt(n*q*(1-q))
				if d := math.Abs(float64(counts[i]) - mean); d > 5*sigma {
					t.Errorf("token %d: %d draws, want %.0f ± %.0f (5σ)", i, counts[i], mean, 5*sigma)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		key string
		set func(*Params)
	}{
		{"temperature", func(p *Params) { p.Temperature = nan }},
		{"top_p", func(p *Params) { p.TopP = 1.5 }},
		{"top_p", func(p *Params) { p.TopP = -0.1 }},
		{"min_p", func(p *Params) { p.MinP = 2 }},
		{"typical_p", func(p *Params) { p.TypicalP = nan }},
		{"repeat_penalty", func(p *Params) { p.RepeatPenalty = 0 }},
		{"frequency_penalty", func(p *Params) { p.FrequencyPenalty = float32(math.Inf(1)) }},
		{"presence_penalty", func(p *Params) { p.PresencePenalty = nan }},
		{"penalty_last_n", func(p *Params) { p.PenaltyLastN = -2 }},
		{"min_keep", func(p *Params) { p.MinKeep = -1 }},
		{"stop", func(p *Params) { p.Stop = []string{"ok", ""} }},
	}
	for _, tc := range tests {
		p := DefaultParams()
		tc.set(&p)
		err := p.Validate()
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Key != tc.key {
			t.Errorf("%s: Validate() = %v, want a ParamError for %s", tc.key, err, tc.key)
		}
		if err != nil && !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: message %q does not name the parameter", tc.key, err)
		}
		if _, err := New(p, 10); err == nil {
			t.Errorf("%s: New accepted invalid params", tc.key)
		}
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	// Every problem is reported at once.
	p := DefaultParams()
	p.TopP, p.MinKeep = 3, -1
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "top_p") || !strings.Contains(err.Error(), "min_keep") {
		t.Errorf("Validate() = %v, want both top_p and min_keep", err)
	}
	for _, v := range []int{0, -5, maxVocab + 1} {
		if _, err := New(DefaultParams(), v); err == nil {
			t.Errorf("New with vocabulary %d: want an error", v)
		}
	}
}

func TestFromMap(t *testing.T) {
	// As yaml.v3 decodes `{temperature: 0.7, top_k: 40, seed: 42, stop: ["\n\n", "User:"], …}`.
	got, err := FromMap(map[string]any{
		"temperature": 0.7, "top_k": 20, "top_p": 0.9, "min_p": 0, "typical_p": 1,
		"repeat_penalty": 1.1, "frequency_penalty": 0.5, "presence_penalty": 0.25,
		"penalty_last_n": -1, "seed": 42, "min_keep": 2, "stop": []any{"\n\n", "User:"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Params{Temperature: 0.7, TopK: 20, TopP: 0.9, MinP: 0, TypicalP: 1, RepeatPenalty: 1.1,
		FrequencyPenalty: 0.5, PresencePenalty: 0.25, PenaltyLastN: -1, Seed: 42, MinKeep: 2,
		Stop: []string{"\n\n", "User:"}}
	if !equalParams(got, want) {
		t.Errorf("FromMap = %+v, want %+v", got, want)
	}

	// Absent keys keep the defaults; JSON numbers (float64) are accepted for integers;
	// YAML's uint64 for seeds above MaxInt64.
	got, err = FromMap(map[string]any{"top_k": float64(10), "seed": uint64(1 << 63), "stop": "###"})
	if err != nil {
		t.Fatal(err)
	}
	want = DefaultParams()
	want.TopK, want.Seed, want.Stop = 10, 1<<63, []string{"###"}
	if !equalParams(got, want) {
		t.Errorf("FromMap = %+v, want %+v", got, want)
	}

	bad := []struct {
		m    map[string]any
		keys []string
	}{
		{map[string]any{"temprature": 0.5}, []string{"temprature"}},
		{map[string]any{"top_k": "forty"}, []string{"top_k"}},
		{map[string]any{"top_k": 4.5}, []string{"top_k"}},
		{map[string]any{"seed": -1}, []string{"seed"}},
		{map[string]any{"stop": []any{"a", 3}}, []string{"stop"}},
		{map[string]any{"temperature": true, "min_keep": "2"}, []string{"temperature", "min_keep"}},
		{map[string]any{"top_p": 1.2}, []string{"top_p"}}, // well-typed, but invalid
	}
	for _, tc := range bad {
		_, err := FromMap(tc.m)
		if err == nil {
			t.Errorf("FromMap(%v): want an error", tc.m)
			continue
		}
		for _, k := range tc.keys {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("FromMap(%v) = %q, does not name %s", tc.m, err, k)
			}
		}
	}
}

func equalParams(a, b Params) bool {
	return slices.Equal(a.Stop, b.Stop) &&
		a.Temperature == b.Temperature && a.TopK == b.TopK && a.TopP == b.TopP &&
		a.MinP == b.MinP && a.TypicalP == b.TypicalP && a.RepeatPenalty == b.RepeatPenalty &&
		a.FrequencyPenalty == b.FrequencyPenalty && a.PresencePenalty == b.PresencePenalty &&
		a.PenaltyLastN == b.PenaltyLastN && a.Seed == b.Seed && a.MinKeep == b.MinKeep
}

// TestNoAllocs: after the first call Sample allocates nothing, with every stage switched on.
func TestNoAllocs(t *testing.T) {
	p := DefaultParams()
	p.Seed = 9
	p.RepeatPenalty, p.FrequencyPenalty, p.PresencePenalty = 1.1, 0.1, 0.1
	p.TypicalP = 0.95
	s, err := New(p, 51200)
	if err != nil {
		t.Fatal(err)
	}
	l := randomLogits(rand.New(rand.NewPCG(5, 6)), 51200)
	for i := range 100 { // fill the penalty window
		s.Accept(int32(i))
	}
	allocs := testing.AllocsPerRun(50, func() { s.Accept(s.Sample(l)) })
	if allocs != 0 {
		t.Errorf("Sample allocates %v times per call, want 0", allocs)
	}
}

func BenchmarkSample(b *testing.B) {
	p := DefaultParams()
	p.Seed = 1
	s, err := New(p, 51200) // phi-2's vocabulary size
	if err != nil {
		b.Fatal(err)
	}
	l := randomLogits(rand.New(rand.NewPCG(1, 1)), 51200)
	b.ReportAllocs()
	for b.Loop() {
		s.Accept(s.Sample(l))
	}
}

// Parameters covers exactly the keys FromMap reads, with DefaultParams' values.
func TestParametersAreFromMapKeys(t *testing.T) {
	m := map[string]any{}
	for _, p := range Parameters() {
		if p.Default != nil {
			m[p.Key] = p.Default
		} else {
			m[p.Key] = []any{}
		}
	}
	got, err := FromMap(m)
	if err != nil {
		t.Fatalf("FromMap(Parameters' defaults): %v", err)
	}
	want := DefaultParams()
	want.Stop = []string{}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("defaults %+v, want DefaultParams %+v", got, want)
	}
	if Parameters()[0].Default != 0.8 {
		t.Errorf("temperature default %v, want 0.8 (llama.cpp)", Parameters()[0].Default)
	}
}

// The greedy shortcut gives the chain's token and leaves the generator where the chain
// leaves it, on random logits with ties and NaNs, for every setting that takes it.
func TestGreedyShortcutIsTheChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for _, p := range []Params{
		{Temperature: 0, TopK: 40, TopP: 0.95, MinP: 0.05, TypicalP: 1, RepeatPenalty: 1, PenaltyLastN: 64, MinKeep: 1, Seed: 3},
		{Temperature: -1, TopK: 0, TopP: 1, MinP: 0, TypicalP: 1, RepeatPenalty: 1.1, PenaltyLastN: 0, MinKeep: 1, Seed: 4},
	} {
		fast, err := New(p, 97)
		if err != nil {
			t.Fatal(err)
		}
		chain, _ := New(p, 97)
		for round := 0; round < 300; round++ {
			logits := make([]float32, 97)
			for i := range logits {
				logits[i] = float32(rng.IntN(9)) // many ties
			}
			if round%7 == 0 {
				logits[rng.IntN(97)] = float32(math.NaN())
			}
			if _, ok := fast.greedy(logits); !ok {
				t.Fatalf("%+v: the shortcut was not taken", p)
			}
			got := fast.Sample(logits)
			chain.filter(logits)
			want := chain.dist()
			if got != want {
				t.Fatalf("%+v round %d: shortcut %d, chain %d", p, round, got, want)
			}
			fast.Accept(got)
			chain.Accept(want)
		}
		if fast.rng.Uint64() != chain.rng.Uint64() {
			t.Errorf("%+v: the generators drifted apart", p)
		}
	}
}
