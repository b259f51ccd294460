// Package sampler turns a vector of next-token logits into the next token the way llama.cpp's
// default sampler chain does (common/sampling.cpp with mirostat off):
//
//	penalties → top-k → typical → top-p → min-p → temperature → dist
//
// Each stage follows the rule of its llama.cpp counterpart in src/llama-sampling.cpp; the
// comments on each stage restate that rule. Stages llama.cpp disables by default (logit bias,
// DRY, top-n-sigma, XTC, dynamic temperature, mirostat) are not implemented.
//
// The final draw uses Go's math/rand/v2 PCG generator seeded from Params.Seed, not llama.cpp's
// std::mt19937: the same seed reproduces the same sequence of tokens here, but does not
// reproduce llama.cpp's choices draw for draw. Greedy decoding (Temperature <= 0 or TopK = 1)
// is exact and is what tests compare against llama.cpp.
//
// The package also holds Softmax and Greedy, small helpers used outside the chain, and
// StopDetector, which finds user stop strings in streamed text. It does not decode tokens to
// text; the tokenizer does that.
package sampler

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// RandomSeed is the Seed value that asks for a fresh random seed, as llama.cpp's
// LLAMA_DEFAULT_SEED (0xFFFFFFFF) does. The seed actually used is reported by Sampler.Seed.
const RandomSeed uint64 = 0xFFFFFFFF

// maxVocab bounds the vocabulary size New accepts before allocating per-token state.
// Real vocabularies are at most a few hundred thousand tokens.
const maxVocab = 1 << 24

// pcgStream is the fixed second word of the PCG state; the first word is the seed.
// ("lilims" in ASCII.)
const pcgStream = 0x6c696c696d73

// Params are the sampling parameters. DefaultParams returns llama.cpp's common defaults.
type Params struct {
	Temperature float32 // logits are divided by it; <= 0 keeps only the top token (greedy)
	TopK        int     // keep the K most likely tokens; <= 0 is off
	TopP        float32 // nucleus: smallest set with cumulative probability >= TopP; 1 is off
	MinP        float32 // keep tokens with p >= MinP·p_max; 0 is off
	TypicalP    float32 // locally typical sampling; 1 is off

	RepeatPenalty    float32 // divides positive logits, multiplies non-positive ones; 1 is off
	FrequencyPenalty float32 // subtracted once per occurrence in the window; 0 is off
	PresencePenalty  float32 // subtracted once if the token occurs in the window; 0 is off
	PenaltyLastN     int     // penalty window in accepted tokens; 0 is off, -1 is all since Reset

	Seed    uint64 // PRNG seed; RandomSeed picks a random one
	MinKeep int    // top-p, min-p and typical keep at least this many tokens

	// Stop lists user stop strings. The sampler itself ignores them: the generation loop
	// checks decoded text with a StopDetector.
	Stop []string
}

// DefaultParams returns llama.cpp's defaults (common_params_sampling): temperature 0.8,
// top-k 40, top-p 0.95, min-p 0.05, typical 1.0, repeat penalty 1.0, frequency and presence
// penalties 0, penalty window 64, random seed, min_keep 0.
func DefaultParams() Params {
	return Params{
		Temperature:      0.8,
		TopK:             40,
		TopP:             0.95,
		MinP:             0.05,
		TypicalP:         1.0,
		RepeatPenalty:    1.0,
		FrequencyPenalty: 0,
		PresencePenalty:  0,
		PenaltyLastN:     64,
		Seed:             RandomSeed,
		MinKeep:          0,
	}
}

// A ParamError reports an invalid or unknown sampling parameter. Key is the parameter's
// snake_case name as it is spelled in a pipeline file (top_p, penalty_last_n, …).
type ParamError struct {
	Key string
	Msg string
}

func (e *ParamError) Error() string { return "sampler: " + e.Key + ": " + e.Msg }

func finite(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

func inUnit(x float32) bool { return x >= 0 && x <= 1 } // false for NaN

// Validate reports every invalid parameter at once, joined, each as a *ParamError.
func (p Params) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ParamError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if !finite(p.Temperature) {
		bad("temperature", "must be a finite number, got %v", p.Temperature)
	}
	if !inUnit(p.TopP) {
		bad("top_p", "must be in [0,1], got %v", p.TopP)
	}
	if !inUnit(p.MinP) {
		bad("min_p", "must be in [0,1], got %v", p.MinP)
	}
	if !inUnit(p.TypicalP) {
		bad("typical_p", "must be in [0,1], got %v", p.TypicalP)
	}
	// The repeat penalty divides positive logits: zero or negative would flip or blow them up.
	if !finite(p.RepeatPenalty) || p.RepeatPenalty <= 0 {
		bad("repeat_penalty", "must be a finite number > 0, got %v", p.RepeatPenalty)
	}
	if !finite(p.FrequencyPenalty) {
		bad("frequency_penalty", "must be a finite number, got %v", p.FrequencyPenalty)
	}
	if !finite(p.PresencePenalty) {
		bad("presence_penalty", "must be a finite number, got %v", p.PresencePenalty)
	}
	if p.PenaltyLastN < -1 {
		bad("penalty_last_n", "must be >= -1 (-1 = whole context, 0 = off), got %d", p.PenaltyLastN)
	}
	if p.MinKeep < 0 {
		bad("min_keep", "must be >= 0, got %d", p.MinKeep)
	}
	for i, s := range p.Stop {
		if s == "" {
			bad("stop", "entry %d is empty (it would stop before the first token)", i)
		}
	}
	return errors.Join(errs...)
}

// candidate is one token still in the running, llama_token_data's counterpart.
type candidate struct {
	id    int32
	logit float32
	p     float32 // probability, valid after softmax (or weight, inside dist)
	score float32 // typical sampling's |surprisal − entropy|
}

// A Sampler draws tokens from logits with a fixed chain of stages and keeps the token history
// the penalties need. It is not safe for concurrent use. After the first call, Sample does not
// allocate.
type Sampler struct {
	p     Params
	vocab int

	buf    []candidate // len vocab; reused by every Sample
	cur    []candidate // survivors: a prefix of buf
	sorted bool        // cur is ordered by descending logit (ties: lower id first)

	// Penalty history: counts[id] is how often id occurs in the window. ring holds the window
	// (PenaltyLastN > 0) in arrival order, oldest at ring[head] once it is full.
	counts []int32
	ring   []int32
	head   int

	seed uint64 // seed in use (never RandomSeed unless drawn so)
	rng  rand.PCG
}

// New returns a Sampler for a vocabulary of vocabSize tokens.
func New(p Params, vocabSize int) (*Sampler, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if vocabSize <= 0 || vocabSize > maxVocab {
		return nil, fmt.Errorf("sampler: vocabulary size %d out of range [1,%d]", vocabSize, maxVocab)
	}
	s := &Sampler{
		p:      p,
		vocab:  vocabSize,
		buf:    make([]candidate, vocabSize),
		counts: make([]int32, vocabSize),
	}
	s.p.Stop = append([]string(nil), p.Stop...)
	s.reseed()
	return s, nil
}

// Params returns the parameters the sampler was made with.
func (s *Sampler) Params() Params { return s.p }

// Seed returns the seed in use; with RandomSeed it is the randomly chosen one, which can be
// passed back as Params.Seed to reproduce a run.
func (s *Sampler) Seed() uint64 { return s.seed }

// reseed seeds the PRNG as llama.cpp's dist sampler does on creation and reset: a fixed seed
// is reused, the RandomSeed sentinel draws a new one each time.
func (s *Sampler) reseed() {
	s.seed = s.p.Seed
	if s.seed == RandomSeed {
		s.seed = rand.Uint64() // from the runtime's randomly seeded source
	}
	s.rng.Seed(s.seed, pcgStream)
}

// Reset forgets the token history and reseeds the generator, as llama.cpp's chain reset does.
func (s *Sampler) Reset() {
	clear(s.counts)
	s.ring = s.ring[:0]
	s.head = 0
	s.reseed()
}

// Accept records token in the history the penalties look at. llama-cli accepts the prompt
// tokens as well as every generated one; callers should do the same to match it.
// Tokens outside the vocabulary occupy a place in the window but are never penalised.
func (s *Sampler) Accept(token int32) {
	n := s.p.PenaltyLastN
	if n == 0 {
		return // llama.cpp records nothing when the window is off
	}
	if n > 0 {
		if len(s.ring) < n {
			s.ring = append(s.ring, token)
		} else {
			// The window is full: the oldest token leaves it.
			s.uncount(s.ring[s.head])
			s.ring[s.head] = token
			s.head = (s.head + 1) % n
		}
	}
	if token >= 0 && int(token) < s.vocab {
		s.counts[token]++
	}
}

func (s *Sampler) uncount(token int32) {
	if token >= 0 && int(token) < s.vocab {
		s.counts[token]--
	}
}

// Sample returns the next token for logits, which must hold one logit per vocabulary entry.
// The caller's slice is not modified. NaN logits are treated as −Inf (never chosen). Sample
// returns -1 when len(logits) differs from the vocabulary size given to New.
func (s *Sampler) Sample(logits []float32) int32 {
	if id, ok := s.greedy(logits); ok {
		s.rng.Uint64() // the draw dist would take: the stream of draws stays the chain's
		return id
	}
	if !s.filter(logits) {
		return -1
	}
	return s.dist()
}

// greedy is the chain's result where it can only be the most likely token — temperature ≤ 0,
// neutral penalties, typical sampling off (top-k, top-p and min-p always keep the top
// token) — found without loading and filtering every candidate; ties go to the lower id as
// in the chain. Logits whose best is −Inf (or all NaN) take the chain.
func (s *Sampler) greedy(logits []float32) (int32, bool) {
	p := s.p
	neutral := p.PenaltyLastN == 0 || (p.RepeatPenalty == 1 && p.FrequencyPenalty == 0 && p.PresencePenalty == 0)
	if p.Temperature > 0 || p.TypicalP < 1 || !neutral || len(logits) != s.vocab {
		return 0, false
	}
	best := -1
	for i, l := range logits {
		if l == l && (best < 0 || l > logits[best]) {
			best = i
		}
	}
	if best < 0 || math.IsInf(float64(logits[best]), -1) {
		return 0, false
	}
	return int32(best), true
}
