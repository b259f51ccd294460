// Package runtime holds the host side of generation: a Session that drives an exported
// lilims package (the prefill/decode ML Program contract) through any Backend, owning the
// position, the KV state and the host-built inputs (position ids, causal mask).
//
// The Backend executes one function call; the reference runtime (package
// stages/runtime/reference) is one, Core ML on darwin another. The package does not tokenize
// or sample: it turns token ids into next-token logits.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/lilims/lilims/stages/export/contract"
)

// The contract's functions and mask value, as package contract names them.
const (
	PrefillFunction = contract.Prefill
	DecodeFunction  = contract.Decode
	MaskedScore     = contract.MaskedScore
)

// Meta describes an exported package: the shapes a Session builds its inputs for
// (contract.Meta: C, N of prefill, V).
type Meta = contract.Meta

// Inputs are the inputs of one call of a contract function with N tokens.
type Inputs struct {
	InputIDs    []int32   // input_ids [1, N]
	PositionIDs []int32   // position_ids [N]: absolute position of each token
	CausalMask  []float32 // causal_mask [1, 1, N, C]: 0 where key j ≤ PositionIDs[i], else MaskedScore
	CurrentPos  int32     // current_pos [1]: where the chunk's K/V rows are written (PositionIDs[0])
}

// State is a backend's opaque per-conversation state (the KV cache).
type State any

// Backend runs the functions of an exported package.
type Backend interface {
	// NewState returns a zeroed KV state usable by both functions.
	NewState() (State, error)
	// Predict runs function fn on in with st, returning the logits, N·V float32 values
	// (row i holds the logits after token i). The logits may be overwritten by the next
	// call (the reference backend reuses its buffers); in is read during the call only.
	Predict(fn string, in Inputs, st State) ([]float32, error)
}

// ErrContextFull is returned by Decode when every position of the exported context is used.
var ErrContextFull = errors.New("runtime: exported context is full")

// Session is one conversation over a Backend. It is not safe for concurrent use.
type Session struct {
	b    Backend
	meta Meta
	st   State
	pos  int
	// Scratch inputs, reused by every call so that a decode step allocates nothing.
	ids, positions []int32
	tok            [1]int32
	mask           []float32
	maskRows       []int     // per row of mask: the position it was built for (−1: none)
	close          io.Closer // closed by Close, if the session owns the backend's resources
}

// NewSession returns a session at position 0 over b.
func NewSession(b Backend, meta Meta) *Session {
	return &Session{b: b, meta: meta}
}

// Pos is the number of tokens consumed so far (the position of the next token).
func (s *Session) Pos() int { return s.pos }

// ContextLength is the exported context C.
func (s *Session) ContextLength() int { return s.meta.ContextLength }

// VocabSize is the number of logits per token.
func (s *Session) VocabSize() int { return s.meta.VocabSize }

// Meta returns the package description the session was made with.
func (s *Session) Meta() Meta { return s.meta }

// Reset forgets the conversation: the next token is at position 0. Stale KV rows need no
// clearing, since the causal mask hides every row at or beyond the current position until
// it is rewritten.
func (s *Session) Reset() { s.pos = 0 }

// Rewind forgets the positions from pos on, keeping the KV rows before it: hosts use it to
// reuse the prompt prefix a new request shares with the last one. As with Reset, the stale
// rows need no clearing.
func (s *Session) Rewind(pos int) error {
	if pos < 0 || pos > s.pos {
		return fmt.Errorf("runtime: rewind to position %d of a session at %d", pos, s.pos)
	}
	s.pos = pos
	return nil
}

// Close releases the backend's resources when the session owns them (OpenReference).
func (s *Session) Close() error {
	if s.close != nil {
		return s.close.Close()
	}
	return nil
}

func (s *Session) state() (State, error) {
	if s.st == nil {
		st, err := s.b.NewState()
		if err != nil {
			return nil, fmt.Errorf("runtime: new state: %w", err)
		}
		s.st = st
	}
	return s.st, nil
}

// Prefill consumes tokens and returns the logits after each of them. Tokens go through the
// prefill function in chunks of N (a short tail is padded); where a whole chunk would not fit
// in the KV state any more (pos+N > C), or a single token remains, they go through decode.
func (s *Session) Prefill(ctx context.Context, tokens []int32) ([][]float32, error) {
	if s.pos+len(tokens) > s.meta.ContextLength {
		return nil, fmt.Errorf("runtime: prompt of %d tokens exceeds the exported context of %d (%d already used); re-export with a larger context",
			len(tokens), s.meta.ContextLength, s.pos)
	}
	// The backend's logits last until its next call: copy each row into one fresh buffer.
	v := s.meta.VocabSize
	buf := make([]float32, len(tokens)*v)
	out := make([][]float32, 0, len(tokens))
	keep := func(rows []float32) {
		i := len(out)
		copy(buf[i*v:], rows)
		for k := 0; k < len(rows)/v; k++ {
			out = append(out, buf[(i+k)*v:(i+k+1)*v:(i+k+1)*v])
		}
	}
	n := s.meta.PrefillChunk
	for len(tokens) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(tokens) == 1 || n < 1 || s.pos+n > s.meta.ContextLength {
			l, err := s.Decode(ctx, tokens[0])
			if err != nil {
				return nil, err
			}
			keep(l)
			tokens = tokens[1:]
			continue
		}
		k := min(n, len(tokens))
		logits, err := s.run(PrefillFunction, tokens[:k], n)
		if err != nil {
			return nil, err
		}
		keep(logits[:k*v])
		tokens = tokens[k:]
	}
	return out, nil
}

// Decode consumes one token and returns the logits after it. They stay valid until the
// session's next Prefill or Decode (copy them to keep them): a decode step allocates nothing
// when the backend does not.
func (s *Session) Decode(ctx context.Context, token int32) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.pos >= s.meta.ContextLength {
		return nil, fmt.Errorf("%w (%d tokens)", ErrContextFull, s.meta.ContextLength)
	}
	s.tok[0] = token
	return s.run(DecodeFunction, s.tok[:], 1)
}

// run feeds tokens (k ≤ n of them) through function fn, whose chunk size is n: the rest of
// the chunk is padding whose K/V rows land beyond the real tokens, where the mask hides them
// until real tokens overwrite them.
func (s *Session) run(fn string, tokens []int32, n int) ([]float32, error) {
	c, v := s.meta.ContextLength, s.meta.VocabSize
	for _, t := range tokens {
		if t < 0 || int(t) >= v {
			return nil, fmt.Errorf("runtime: token id %d out of range (vocabulary of %d)", t, v)
		}
	}
	st, err := s.state()
	if err != nil {
		return nil, err
	}
	if cap(s.ids) < n {
		s.ids, s.positions = make([]int32, n), make([]int32, n)
	}
	if cap(s.mask) < n*c {
		s.mask = make([]float32, n*c)
		s.maskRows = s.maskRows[:0]
	}
	for len(s.maskRows) < n {
		s.maskRows = append(s.maskRows, -1)
		row := s.mask[(len(s.maskRows)-1)*c : len(s.maskRows)*c]
		for j := range row {
			row[j] = MaskedScore
		}
	}
	in := Inputs{
		InputIDs:    s.ids[:n],
		PositionIDs: s.positions[:n],
		CausalMask:  s.mask[:n*c],
		CurrentPos:  int32(s.pos),
	}
	copy(in.InputIDs, tokens)
	clear(in.InputIDs[len(tokens):]) // padding: token 0, hidden by the mask
	for i := 0; i < n; i++ {
		p := s.pos + i
		in.PositionIDs[i] = int32(p)
		// Row i last held position maskRows[i]: only the keys between the two change, so
		// a decode step costs what it moves, not the context.
		row, was := in.CausalMask[i*c:(i+1)*c], s.maskRows[i]
		for j := was + 1; j <= p; j++ {
			row[j] = 0
		}
		for j := p + 1; j <= was; j++ {
			row[j] = MaskedScore
		}
		s.maskRows[i] = p
	}
	logits, err := s.b.Predict(fn, in, st)
	if err != nil {
		return nil, fmt.Errorf("runtime: %s at position %d: %w", fn, s.pos, err)
	}
	if len(logits) != n*v {
		return nil, fmt.Errorf("runtime: %s returned %d logits, want %d×%d", fn, len(logits), n, v)
	}
	s.pos += len(tokens)
	return logits, nil
}
