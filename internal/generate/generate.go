// Package generate holds the decode loop that the run and chat commands and the server share:
// sample a token, accept it, end at an end-of-generation token, a stop string, the token limit
// or a full context, and decode it for the next logits. It owns why a generation stopped and
// what a cancelled context means. Prefill starts a generation; tokenizing prompts and
// printing are the callers'.
package generate

import (
	"context"
	"fmt"
	"time"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/sampler"
)

// Reason is why a generation stopped, as the run and chat commands print it.
type Reason string

const (
	MaxTokens   Reason = "max tokens"
	EndOfText   Reason = "end of text" // an end-of-generation token (end of turn, EOS)
	StopString  Reason = "stop string"
	ContextFull Reason = "context full"
	Interrupted Reason = "interrupted" // ctx ended
)

// Tokenizer is what the loop needs of the model's tokenizer.
type Tokenizer interface {
	Piece(id int32, special bool) []byte
	IsEOG(id int32) bool
}

// Loop is one generation's settings. Run it once: it holds no state between runs.
type Loop struct {
	Session   stage.Session
	Sampler   stage.TokenSampler // its history already holds the prompt
	Tok       Tokenizer
	Stops     []string
	MaxTokens int // tokens to sample at most (0: none)

	// OnToken, if set, sees each sampled token that is not end-of-generation, with its text,
	// before the stop-string check.
	OnToken func(id int32, piece string)
	// OnText receives the generated text as it becomes safe to show: never a stop string
	// or what follows it, nor a piece that may yet turn into one. An error ends the loop.
	OnText func(text string) error
}

// Result says how a generation went.
type Result struct {
	Reason  Reason
	Sampled int     // tokens sampled, the end-of-generation token included
	Fed     []int32 // sampled tokens decoded by the session: its KV state holds them
	// DecodeFailed: a Decode call failed or was cancelled, so what the session holds after
	// Fed is not known.
	DecodeFailed bool
	Took         time.Duration
}

// Completion is the number of tokens of the generated text: the end-of-generation token
// ends the text but is not part of it.
func (r Result) Completion() int {
	if r.Reason == EndOfText {
		return r.Sampled - 1
	}
	return r.Sampled
}

// Run generates from logits, the prompt's last. A cancelled ctx ends the generation early
// with reason Interrupted and no error: the tokens decoded so far stay in the session
// (Result.Fed). An error from the sampler, the session or OnText ends it with that error.
func (l *Loop) Run(ctx context.Context, logits []float32) (Result, error) {
	sd := sampler.NewStopDetector(l.Stops)
	res := Result{Reason: MaxTokens}
	start := time.Now()
	for res.Sampled < l.MaxTokens {
		if ctx.Err() != nil {
			res.Reason = Interrupted
			break
		}
		next := l.Sampler.Sample(logits)
		if next < 0 {
			// A sampler running as a plugin reports its failure through Err.
			if e, ok := l.Sampler.(interface{ Err() error }); ok && e.Err() != nil {
				return res, fmt.Errorf("sampler: %w", e.Err())
			}
			return res, fmt.Errorf("the sampler returned no token (logits of length %d)", len(logits))
		}
		l.Sampler.Accept(next)
		res.Sampled++
		if l.Tok.IsEOG(next) {
			res.Reason = EndOfText
			break
		}
		piece := string(l.Tok.Piece(next, false))
		if l.OnToken != nil {
			l.OnToken(next, piece)
		}
		text, stopped := sd.Feed(piece)
		if err := l.emit(text); err != nil {
			return res, err
		}
		if stopped {
			res.Reason = StopString
			break
		}
		if res.Sampled == l.MaxTokens {
			break
		}
		if l.Session.Pos() >= l.Session.ContextLength() {
			res.Reason = ContextFull
			break
		}
		var err error
		if logits, err = l.Session.Decode(ctx, next); err != nil {
			res.DecodeFailed = true
			if ctx.Err() != nil {
				res.Reason = Interrupted
				break
			}
			return res, err
		}
		res.Fed = append(res.Fed, next)
	}
	// Text held back as a possible stop string that did not become one.
	if err := l.emit(sd.Flush()); err != nil {
		return res, err
	}
	res.Took = time.Since(start)
	return res, nil
}

func (l *Loop) emit(text string) error {
	if text == "" || l.OnText == nil {
		return nil
	}
	return l.OnText(text)
}

// Prefill feeds tokens to sess, whose state already holds the rest of history (history ends
// with tokens), and restarts smp's history with all of history, as the penalties and DRY
// must see it. It returns the logits after the last token and how long the prefill took.
func Prefill(ctx context.Context, sess stage.Session, smp stage.TokenSampler, history, tokens []int32) ([]float32, time.Duration, error) {
	t0 := time.Now()
	all, err := sess.Prefill(ctx, tokens)
	if err != nil {
		return nil, 0, err
	}
	took := time.Since(t0)
	smp.Reset()
	for _, id := range history {
		smp.Accept(id)
	}
	return all[len(all)-1], took, nil
}
