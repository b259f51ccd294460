// Package server serves a model over HTTP with the OpenAI API (POST /v1/chat/completions and
// /v1/completions, streaming as server-sent events or not; GET /v1/models; GET /health), the
// way llama.cpp's llama-server and ollama do.
//
// The model is opened once and kept: an Engine holds N sessions (slots), each with its own
// KV state, and hands them to requests first come, first served. A slot remembers the tokens
// its KV state holds, so a request that repeats a previous conversation (a chat client
// re-sends the whole history every turn) prefills only what is new. The package knows
// nothing of pipelines or files: the command builds the pipeline and gives it sessions, a
// tokenizer, a chat formatter and a sampler factory.
package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/lilims/lilims/internal/generate"
	"github.com/lilims/lilims/pipeline/stage"
)

// Tokenizer is what generation needs of the model's tokenizer.
type Tokenizer interface {
	Encode(text string, addSpecial, parseSpecial bool) []int32
	generate.Tokenizer
}

// Rewinder is a session that can forget the positions from pos on and continue from there
// (the KV rows beyond pos are masked out and overwritten). A session without it is reset
// and prefilled from the start.
type Rewinder interface {
	Rewind(pos int) error
}

// ErrBusy is returned when every slot is taken and the queue is full.
var ErrBusy = errors.New("server busy: every session is generating and the queue is full")

// slot is one session with the tokens its KV state holds.
type slot struct {
	sess   stage.Session
	tokens []int32
}

// Engine owns the sessions and runs generations on them.
type Engine struct {
	Tok        Tokenizer
	NewSampler func(params map[string]any) (stage.TokenSampler, error)
	Stops      []string // stop strings of every request (the pipeline's)
	MaxQueue   int      // requests that may wait for a slot; more get ErrBusy (0: 64)

	mu      sync.Mutex
	free    []*slot
	waiters []chan *slot
	all     []*slot
}

// NewEngine serves over sessions, one slot each.
func NewEngine(tok Tokenizer, sessions []stage.Session, newSampler func(map[string]any) (stage.TokenSampler, error)) *Engine {
	e := &Engine{Tok: tok, NewSampler: newSampler}
	for _, s := range sessions {
		sl := &slot{sess: s}
		e.free = append(e.free, sl)
		e.all = append(e.all, sl)
	}
	return e
}

// ContextLength is the sessions' context.
func (e *Engine) ContextLength() int { return e.all[0].sess.ContextLength() }

// Slots is the number of sessions.
func (e *Engine) Slots() int { return len(e.all) }

// Close closes every session.
func (e *Engine) Close() error {
	var errs []error
	for _, s := range e.all {
		errs = append(errs, s.sess.Close())
	}
	return errors.Join(errs...)
}

// acquire takes a free slot — the one whose KV state shares the longest prefix with tokens —
// or waits in line for one. Waiters are served in arrival order.
func (e *Engine) acquire(ctx context.Context, tokens []int32) (*slot, error) {
	e.mu.Lock()
	if len(e.free) > 0 {
		best, bestN := 0, -1
		for i, s := range e.free {
			if n := commonPrefix(s.tokens, tokens); n > bestN {
				best, bestN = i, n
			}
		}
		s := e.free[best]
		e.free = slices.Delete(e.free, best, best+1)
		e.mu.Unlock()
		return s, nil
	}
	limit := e.MaxQueue
	if limit <= 0 {
		limit = 64
	}
	if len(e.waiters) >= limit {
		e.mu.Unlock()
		return nil, ErrBusy
	}
	ch := make(chan *slot, 1)
	e.waiters = append(e.waiters, ch)
	e.mu.Unlock()
	select {
	case s := <-ch:
		return s, nil
	case <-ctx.Done():
		e.mu.Lock()
		if i := slices.Index(e.waiters, ch); i >= 0 {
			e.waiters = slices.Delete(e.waiters, i, i+1)
			e.mu.Unlock()
		} else {
			e.mu.Unlock()
			e.release(<-ch) // handed over as we gave up: pass it on
		}
		return nil, ctx.Err()
	}
}

func (e *Engine) release(s *slot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.waiters) > 0 {
		ch := e.waiters[0]
		e.waiters = e.waiters[1:]
		ch <- s
		return
	}
	e.free = append(e.free, s)
}

// Queued is the number of requests waiting for a slot.
func (e *Engine) Queued() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.waiters)
}

func commonPrefix(a, b []int32) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// Request is one generation.
type Request struct {
	Prompt    []int32
	MaxTokens int            // ≤ 0: until the context is full
	Sampling  map[string]any // sampler parameters over the pipeline's (temperature, top_p, seed …)
	Stops     []string       // stop strings besides the engine's
}

// Result says how a generation went.
type Result struct {
	PromptTokens     int
	CachedTokens     int // prompt tokens whose KV rows were reused, not prefilled
	CompletionTokens int
	FinishReason     string // "stop" (end of turn or stop string) or "length"
	Queued           time.Duration
	Prefill          time.Duration // until the first token's logits
	Decode           time.Duration
}

// RequestError is a request the model cannot serve as asked (HTTP 400).
type RequestError struct {
	Param, Code, Msg string
}

func (e *RequestError) Error() string { return e.Msg }

// Check tells a request that cannot fit the context before it waits for a slot.
func (e *Engine) Check(r Request) error {
	c := e.ContextLength()
	if len(r.Prompt) == 0 {
		return &RequestError{Param: "prompt", Code: "empty_prompt", Msg: "the prompt is empty and the model adds no BOS token: nothing to continue"}
	}
	if len(r.Prompt) >= c {
		return &RequestError{Param: "messages", Code: "context_length_exceeded",
			Msg: fmt.Sprintf("the prompt is %d tokens; this model's context is %d tokens, leaving no room to generate", len(r.Prompt), c)}
	}
	if r.MaxTokens > 0 && len(r.Prompt)+r.MaxTokens > c {
		return &RequestError{Param: "max_tokens", Code: "context_length_exceeded",
			Msg: fmt.Sprintf("max_tokens %d plus the prompt's %d tokens exceed this model's context of %d tokens (at most %d new tokens fit)",
				r.MaxTokens, len(r.Prompt), c, c-len(r.Prompt))}
	}
	return nil
}

// Generate runs r on a free slot, calling emit with each piece of text as it is decoded
// (never splitting a stop string). It stops at an end-of-generation token, a stop string,
// MaxTokens, a full context, an emit error, or ctx's end (a client gone).
func (e *Engine) Generate(ctx context.Context, r Request, emit func(text string) error) (Result, error) {
	res := Result{PromptTokens: len(r.Prompt)}
	if err := e.Check(r); err != nil {
		return res, err
	}
	smp, err := e.NewSampler(r.Sampling)
	if err != nil {
		return res, &RequestError{Param: "sampling", Code: "invalid_value", Msg: err.Error()}
	}
	t0 := time.Now()
	s, err := e.acquire(ctx, r.Prompt)
	if err != nil {
		return res, err
	}
	defer e.release(s)
	res.Queued = time.Since(t0)

	// Reuse the KV rows of the longest common prefix; at least one prompt token is fed to
	// get logits.
	keep := commonPrefix(s.tokens, r.Prompt)
	keep = min(keep, len(r.Prompt)-1, s.sess.Pos())
	if rw, ok := s.sess.(Rewinder); ok && keep > 0 {
		if err := rw.Rewind(keep); err != nil {
			keep = 0
		}
	} else {
		keep = 0
	}
	if keep == 0 {
		s.sess.Reset()
	}
	s.tokens = append(s.tokens[:keep], r.Prompt[keep:]...)
	res.CachedTokens = keep
	logits, took, err := generate.Prefill(ctx, s.sess, smp, r.Prompt, r.Prompt[keep:])
	if err != nil {
		s.tokens = s.tokens[:0]
		s.sess.Reset()
		return res, err
	}
	res.Prefill = took

	limit := r.MaxTokens
	if limit <= 0 {
		limit = math.MaxInt // the context's end stops it
	}
	loop := generate.Loop{Session: s.sess, Sampler: smp, Tok: e.Tok, Stops: append(slices.Clone(e.Stops), r.Stops...),
		MaxTokens: limit, OnText: emit}
	out, err := loop.Run(ctx, logits)
	if out.DecodeFailed { // the session may hold a token that s.tokens does not: start afresh
		s.tokens = s.tokens[:0]
		s.sess.Reset()
	} else {
		s.tokens = append(s.tokens, out.Fed...)
	}
	res.CompletionTokens = out.Completion()
	res.Decode = out.Took
	if out.Reason == generate.Interrupted {
		return res, ctx.Err() // the client is gone
	}
	if err != nil {
		return res, err
	}
	switch out.Reason {
	case generate.EndOfText, generate.StopString:
		res.FinishReason = "stop"
	default:
		res.FinishReason = "length"
	}
	return res, nil
}
