package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// recorder is a Backend that records each call and returns logits encoding the call: row i
// holds [position_ids[i], input_ids[i], 0, …].
type recorder struct {
	c, v  int
	calls []string
	masks [][]float32
}

func (r *recorder) NewState() (State, error) { return new(int), nil }

func (r *recorder) Predict(fn string, in Inputs, st State) ([]float32, error) {
	n := len(in.InputIDs)
	if len(in.PositionIDs) != n || len(in.CausalMask) != n*r.c || in.CurrentPos != in.PositionIDs[0] {
		return nil, fmt.Errorf("inconsistent inputs: %d ids, %d positions, %d mask values, current_pos %d",
			n, len(in.PositionIDs), len(in.CausalMask), in.CurrentPos)
	}
	r.calls = append(r.calls, fmt.Sprintf("%s@%d:%v", fn, in.CurrentPos, in.InputIDs))
	r.masks = append(r.masks, slices.Clone(in.CausalMask))
	out := make([]float32, n*r.v)
	for i := 0; i < n; i++ {
		out[i*r.v], out[i*r.v+1] = float32(in.PositionIDs[i]), float32(in.InputIDs[i])
	}
	return out, nil
}

func TestSessionChunking(t *testing.T) {
	tests := []struct {
		name   string
		c, n   int
		tokens []int32
		calls  []string
	}{
		{"one padded chunk", 8, 4, []int32{1, 2, 3}, []string{"prefill@0:[1 2 3 0]"}},
		{"full chunk then padded tail", 8, 4, []int32{1, 2, 3, 4, 5, 6, 7},
			[]string{"prefill@0:[1 2 3 4]", "prefill@4:[5 6 7 0]"}},
		{"single token goes to decode", 8, 4, []int32{1, 2, 3, 4, 5},
			[]string{"prefill@0:[1 2 3 4]", "decode@4:[5]"}},
		// At position 4 a chunk of 4 would end at 8 > C = 6: the rest goes through decode.
		{"chunk past the context", 6, 4, []int32{1, 2, 3, 4, 5, 6},
			[]string{"prefill@0:[1 2 3 4]", "decode@4:[5]", "decode@5:[6]"}},
	}
	for _, tt := range tests {
		r := &recorder{c: tt.c, v: 10}
		s := NewSession(r, Meta{ContextLength: tt.c, PrefillChunk: tt.n, VocabSize: 10})
		logits, err := s.Prefill(context.Background(), tt.tokens)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(r.calls, tt.calls) {
			t.Errorf("%s: calls %v, want %v", tt.name, r.calls, tt.calls)
		}
		if len(logits) != len(tt.tokens) || s.Pos() != len(tt.tokens) {
			t.Fatalf("%s: %d logit rows, position %d; want %d", tt.name, len(logits), s.Pos(), len(tt.tokens))
		}
		for i, l := range logits {
			if int(l[0]) != i || l[1] != float32(tt.tokens[i]) || len(l) != 10 {
				t.Errorf("%s: row %d is %v, want position %d token %d", tt.name, i, l, i, tt.tokens[i])
			}
		}
	}
}

func TestSessionMask(t *testing.T) {
	r := &recorder{c: 6, v: 2}
	s := NewSession(r, Meta{ContextLength: 6, PrefillChunk: 3, VocabSize: 2})
	if _, err := s.Decode(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prefill(context.Background(), []int32{1, 1}); err != nil {
		t.Fatal(err)
	}
	// Second call: chunk at positions 1, 2 and a pad at 3; query i sees keys j ≤ 1+i.
	const m = MaskedScore
	want := []float32{
		0, 0, m, m, m, m,
		0, 0, 0, m, m, m,
		0, 0, 0, 0, m, m,
	}
	if !slices.Equal(r.masks[1], want) {
		t.Errorf("mask %v, want %v", r.masks[1], want)
	}
	if !slices.Equal(r.masks[0], []float32{0, m, m, m, m, m}) {
		t.Errorf("decode mask at 0: %v", r.masks[0])
	}
	// The session updates its mask rows in place: after a Reset, row 0 masks again the
	// keys it had opened.
	s.Reset()
	if _, err := s.Decode(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.masks[2], []float32{0, m, m, m, m, m}) {
		t.Errorf("decode mask at 0 after a reset: %v", r.masks[2])
	}
}

func TestSessionLimits(t *testing.T) {
	ctx := context.Background()
	s := NewSession(&recorder{c: 4, v: 3}, Meta{ContextLength: 4, PrefillChunk: 2, VocabSize: 3})
	if _, err := s.Prefill(ctx, []int32{0, 1, 2, 0, 1}); err == nil ||
		!strings.Contains(err.Error(), "prompt of 5 tokens exceeds the exported context of 4") {
		t.Errorf("over-long prompt: %v", err)
	}
	if _, err := s.Decode(ctx, 3); err == nil || !strings.Contains(err.Error(), "token id 3 out of range") {
		t.Errorf("token 3 of a 3-token vocabulary: %v", err)
	}
	if _, err := s.Prefill(ctx, []int32{0, 1, 2, 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decode(ctx, 1); !errors.Is(err, ErrContextFull) {
		t.Errorf("decode past the context: %v, want ErrContextFull", err)
	}
	s.Reset()
	if _, err := s.Decode(ctx, 1); err != nil || s.Pos() != 1 {
		t.Errorf("after Reset: %v, position %d", err, s.Pos())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Decode(cctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// Rewind keeps the first n tokens: the next call writes at position n, and a rewind past
// what the session holds is refused.
func TestSessionRewind(t *testing.T) {
	r := &recorder{c: 8, v: 10}
	s := NewSession(r, Meta{ContextLength: 8, PrefillChunk: 4, VocabSize: 10})
	ctx := context.Background()
	if _, err := s.Prefill(ctx, []int32{1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.Rewind(6); err == nil {
		t.Error("rewind to 6 of 5 tokens: no error")
	}
	if err := s.Rewind(3); err != nil || s.Pos() != 3 {
		t.Fatalf("rewind to 3: %v, pos %d", err, s.Pos())
	}
	if _, err := s.Decode(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if last := r.calls[len(r.calls)-1]; last != "decode@3:[7]" {
		t.Errorf("after rewind: %s, want decode@3:[7]", last)
	}
}
