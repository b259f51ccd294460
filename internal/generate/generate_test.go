package generate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// fakeSession counts positions; Decode fails when decodeErr is set, and on a done ctx as the
// runtime's session does.
type fakeSession struct {
	pos, ctxLen int
	decodeErr   error
	decoded     int
	afterDecode func(n int) // called after the nth successful Decode
}

// Prefill returns one row of logits per token, holding the token (fails on none).
func (s *fakeSession) Prefill(ctx context.Context, t []int32) ([][]float32, error) {
	if len(t) == 0 {
		return nil, errors.New("no tokens")
	}
	var out [][]float32
	for _, id := range t {
		s.pos++
		out = append(out, []float32{float32(id)})
	}
	return out, nil
}
func (s *fakeSession) Decode(ctx context.Context, token int32) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.decodeErr != nil {
		return nil, s.decodeErr
	}
	s.pos++
	s.decoded++
	s.afterDecode(s.decoded)
	return []float32{float32(token)}, nil
}
func (s *fakeSession) Pos() int           { return s.pos }
func (s *fakeSession) ContextLength() int { return s.ctxLen }
func (s *fakeSession) VocabSize() int     { return len(pieces) }
func (s *fakeSession) Reset()             { s.pos = 0 }
func (s *fakeSession) Close() error       { return nil }

// fakeSampler returns its script in order, then -1 (failing with err, if set, like a plugin).
type fakeSampler struct {
	script   []int32
	accepted []int32
	err      error
}

func (s *fakeSampler) Sample(logits []float32) int32 {
	if len(s.accepted) == len(s.script) {
		return -1
	}
	return s.script[len(s.accepted)]
}
func (s *fakeSampler) Accept(t int32) { s.accepted = append(s.accepted, t) }
func (s *fakeSampler) Reset()         { s.accepted = nil }
func (s *fakeSampler) Err() error     { return s.err }

// Token 0 is the end of generation.
var pieces = []string{"</s>", "Once", " upon", " a", " time", "\nUs", "er", ":", " U"}

type fakeTok struct{}

func (fakeTok) Piece(id int32, special bool) []byte { return []byte(pieces[id]) }
func (fakeTok) IsEOG(id int32) bool                 { return id == 0 }

func TestLoop(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		script    []int32
		stops     []string
		max       int
		room      int   // positions left in the context after the prompt
		decodeErr error // from the session's Decode
		smpErr    error // from the sampler's Err
		cancelAt  int   // cancel ctx while showing this many text pieces (0: never; -1: before Run)
		cancelDec int   // cancel ctx after this many decodes (0: never)
		textErrAt int   // OnText fails on this piece (0: never)

		reason     Reason
		err        string
		text       string
		sampled    int
		completion int
		fed        []int32
		failed     bool
	}{
		{name: "max tokens", script: []int32{1, 2, 3, 4}, max: 3, room: 10,
			reason: MaxTokens, text: "Once upon a", sampled: 3, completion: 3, fed: []int32{1, 2}},
		{name: "max tokens zero", script: []int32{1}, max: 0, room: 10,
			reason: MaxTokens, sampled: 0, fed: nil},
		{name: "end of text", script: []int32{1, 2, 0, 4}, max: 10, room: 10,
			reason: EndOfText, text: "Once upon", sampled: 3, completion: 2, fed: []int32{1, 2}},
		{name: "context full", script: []int32{1, 2, 3, 4}, max: 10, room: 2,
			reason: ContextFull, text: "Once upon a", sampled: 3, completion: 3, fed: []int32{1, 2}},
		// "\nUser:" arrives as "\nUs" + "er" + ":": nothing of it is shown.
		{name: "stop string split across tokens", script: []int32{1, 5, 6, 7, 4}, stops: []string{"\nUser:"}, max: 10, room: 10,
			reason: StopString, text: "Once", sampled: 4, completion: 4, fed: []int32{1, 5, 6}},
		// " U" is held back as the start of " Upon"; the end of text shows it.
		{name: "held-back text flushed", script: []int32{1, 8, 0}, stops: []string{" Upon"}, max: 10, room: 10,
			reason: EndOfText, text: "Once U", sampled: 3, completion: 2, fed: []int32{1, 8}},
		{name: "held-back text flushed at max tokens", script: []int32{1, 5}, stops: []string{"\nUser:"}, max: 2, room: 10,
			reason: MaxTokens, text: "Once\nUs", sampled: 2, completion: 2, fed: []int32{1}},
		{name: "sampler error", script: []int32{1}, smpErr: boom, max: 10, room: 10,
			err: "sampler: boom", text: "Once", sampled: 1, completion: 1, fed: []int32{1}},
		{name: "sampler without a token", script: []int32{1}, max: 10, room: 10,
			err: "the sampler returned no token (logits of length 1)", text: "Once", sampled: 1, completion: 1, fed: []int32{1}},
		{name: "decode error", script: []int32{1, 2}, decodeErr: boom, max: 10, room: 10,
			err: "boom", text: "Once", sampled: 1, completion: 1, failed: true},
		{name: "text error", script: []int32{1, 2, 3}, textErrAt: 2, max: 10, room: 10,
			err: "boom", text: "Once upon", sampled: 2, completion: 2, fed: []int32{1}},
		// Cancelled while the second piece is shown: its Decode sees the done ctx.
		{name: "cancelled in decode", script: []int32{1, 2, 3}, cancelAt: 2, max: 10, room: 10,
			reason: Interrupted, text: "Once upon", sampled: 2, completion: 2, fed: []int32{1}, failed: true},
		{name: "cancelled before the start", script: []int32{1}, cancelAt: -1, max: 10, room: 10,
			reason: Interrupted, sampled: 0},
		// Cancelled during the second Decode: the check before the next sample sees it, and
		// "\nUs", held back as the start of a stop string, is shown.
		{name: "cancelled between tokens", script: []int32{1, 5, 3}, stops: []string{"\nUser:"}, cancelDec: 2, max: 10, room: 10,
			reason: Interrupted, text: "Once\nUs", sampled: 2, completion: 2, fed: []int32{1, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const prompt = 5
			sess := &fakeSession{pos: prompt, ctxLen: prompt + tc.room, decodeErr: tc.decodeErr,
				afterDecode: func(n int) {
					if n == tc.cancelDec {
						cancel()
					}
				}}
			if tc.cancelAt < 0 {
				cancel()
			}
			smp := &fakeSampler{script: tc.script, err: tc.smpErr}
			var text strings.Builder
			var tokens []int32
			shown := 0
			l := Loop{Session: sess, Sampler: smp, Tok: fakeTok{}, Stops: tc.stops, MaxTokens: tc.max,
				OnToken: func(id int32, piece string) {
					if piece != pieces[id] {
						t.Errorf("OnToken(%d, %q): want %q", id, piece, pieces[id])
					}
					tokens = append(tokens, id)
				},
				OnText: func(s string) error {
					shown++
					text.WriteString(s)
					if shown == tc.cancelAt {
						cancel()
					}
					if shown == tc.textErrAt {
						return boom
					}
					return nil
				}}
			res, err := l.Run(ctx, []float32{0})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if res.Reason != tc.reason {
				t.Errorf("reason %q, want %q", res.Reason, tc.reason)
			}
			if text.String() != tc.text {
				t.Errorf("text %q, want %q", text.String(), tc.text)
			}
			if res.Sampled != tc.sampled || res.Completion() != tc.completion {
				t.Errorf("sampled %d, completion %d; want %d, %d", res.Sampled, res.Completion(), tc.sampled, tc.completion)
			}
			if !slices.Equal(res.Fed, tc.fed) || sess.pos != prompt+len(tc.fed) {
				t.Errorf("fed %v (session at %d), want %v", res.Fed, sess.pos, tc.fed)
			}
			if res.DecodeFailed != tc.failed {
				t.Errorf("DecodeFailed %v, want %v", res.DecodeFailed, tc.failed)
			}
			// Every sampled token is in the sampler's history; OnToken saw the text tokens.
			if !slices.Equal(smp.accepted, tc.script[:tc.sampled]) {
				t.Errorf("accepted %v, want %v", smp.accepted, tc.script[:tc.sampled])
			}
			if want := slices.DeleteFunc(slices.Clone(smp.accepted), fakeTok{}.IsEOG); !slices.Equal(tokens, want) {
				t.Errorf("OnToken saw %v, want %v", tokens, want)
			}
		})
	}
}

// Prefill feeds only the new tokens to the session, returns the last one's logits, and leaves
// the sampler's history at the whole history (what it held before is forgotten).
func TestPrefill(t *testing.T) {
	sess := &fakeSession{pos: 2}
	smp := &fakeSampler{accepted: []int32{7, 7, 7}}
	logits, _, err := Prefill(context.Background(), sess, smp, []int32{1, 2, 3, 4}, []int32{3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(logits, []float32{4}) || sess.pos != 4 || !slices.Equal(smp.accepted, []int32{1, 2, 3, 4}) {
		t.Errorf("logits %v, session at %d, sampler history %v; want [4], 4, [1 2 3 4]", logits, sess.pos, smp.accepted)
	}
	if _, _, err := Prefill(context.Background(), sess, smp, nil, nil); err == nil {
		t.Error("a failed prefill gave no error")
	}
}
