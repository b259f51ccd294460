// Command genmodel writes a Phi-2-shaped GGUF file with random weights, so that anyone can
// reproduce lilims' benchmarks at real scale without downloading Phi-2.
//
//	go run ./internal/tools/genmodel -o /tmp/phi2.gguf                 # f16, 32 layers, 5.56 GB
//	go run ./internal/tools/genmodel -o /tmp/phi2-q4.gguf -type q4_0   # Q4_0, 1.56 GB
//	go run ./internal/tools/genmodel -o /tmp/phi2-8.gguf -layers 8
//
// The shape is Phi-2's (llama.cpp src/models/phi2.cpp): n_embd 2560, n_ff 10240, 32 heads of 80 with
// rotary dimension 32, vocabulary 51200, separate attn_q/attn_k/attn_v with biases, output
// with bias. Weights are uniform random with standard deviation 1/√(fan-in) (the residual
// stream grows slowly over the layers and LayerNorm keeps every block's input at unit
// scale), norms are 1 and biases small, so activations and logits stay in a sane range.
//
// The tokenizer is a valid byte-level BPE vocabulary (tokenizer.ggml.model gpt2, pre phi-2):
// the 256 byte symbols, then synthetic tokens each made by one merge of two earlier
// tokens, "<|endoftext|>" at 50256 as BOS/EOS, as in Phi-2. It tokenizes any text.
//
// The output is deterministic for a given -seed and written tensor by tensor, so memory use
// stays small whatever the size. Norm weights and biases are f32, as llama.cpp's converter
// writes 1-D tensors; every 2-D weight has the -type.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"

	"github.com/x448/float16"

	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Phi-2's hyper-parameters (microsoft/phi-2's config.json).
const (
	nEmbd    = 2560
	nFF      = 4 * nEmbd
	nHead    = 32
	nRot     = 32
	nVocab   = 51200
	nCtx     = 2048
	eosToken = 50256
)

func main() {
	out := flag.String("o", "", "output GGUF path (required)")
	layers := flag.Int("layers", 32, "number of transformer blocks (Phi-2 has 32)")
	typ := flag.String("type", "f16", "type of the 2-D weights: f16 or q4_0")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" || *layers < 1 || *layers > 1024 {
		fmt.Fprintln(os.Stderr, "usage: genmodel -o FILE.gguf [-layers N (1..1024)] [-type f16|q4_0] [-seed S]")
		os.Exit(2)
	}
	var wt ggml.Type
	switch *typ {
	case "f16":
		wt = ggml.F16
	case "q4_0":
		wt = ggml.Q4_0
	default:
		fmt.Fprintf(os.Stderr, "genmodel: -type %q: want f16 or q4_0\n", *typ)
		os.Exit(2)
	}
	if err := write(*out, *layers, wt, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "genmodel:", err)
		os.Exit(1)
	}
}

// write builds the file at path, replacing it only when complete.
func write(path string, layers int, wt ggml.Type, seed uint64) error {
	b := gguf.NewBuilder()
	setMetadata(b, layers, wt)
	g := &gen{seed: seed}
	// GGUF shapes list ne0 (the contiguous, input dimension) first.
	weight := func(name string, in, out int) error {
		return b.AddTensor(name, wt, []int64{int64(in), int64(out)}, g.matrix(wt, in, out, 1/math.Sqrt(float64(in))))
	}
	vector := func(name string, n int, mean, std float64) error {
		return b.AddTensor(name, ggml.F32, []int64{int64(n)}, g.vector(n, mean, std))
	}
	// The embedding rows have unit scale, like a trained model's residual stream at entry.
	if err := b.AddTensor("token_embd.weight", wt, []int64{nEmbd, nVocab}, g.matrix(wt, nEmbd, nVocab, 1)); err != nil {
		return err
	}
	for l := range layers {
		p := fmt.Sprintf("blk.%d.", l)
		for _, err := range []error{
			vector(p+"attn_norm.weight", nEmbd, 1, 0.02),
			vector(p+"attn_norm.bias", nEmbd, 0, 0.02),
			weight(p+"attn_q.weight", nEmbd, nEmbd),
			vector(p+"attn_q.bias", nEmbd, 0, 0.02),
			weight(p+"attn_k.weight", nEmbd, nEmbd),
			vector(p+"attn_k.bias", nEmbd, 0, 0.02),
			weight(p+"attn_v.weight", nEmbd, nEmbd),
			vector(p+"attn_v.bias", nEmbd, 0, 0.02),
			weight(p+"attn_output.weight", nEmbd, nEmbd),
			vector(p+"attn_output.bias", nEmbd, 0, 0.02),
			weight(p+"ffn_up.weight", nEmbd, nFF),
			vector(p+"ffn_up.bias", nFF, 0, 0.02),
			weight(p+"ffn_down.weight", nFF, nEmbd),
			vector(p+"ffn_down.bias", nEmbd, 0, 0.02),
		} {
			if err != nil {
				return err
			}
		}
	}
	for _, err := range []error{
		vector("output_norm.weight", nEmbd, 1, 0.02),
		vector("output_norm.bias", nEmbd, 0, 0.02),
		weight("output.weight", nEmbd, nVocab),
		vector("output.bias", nVocab, 0, 0.02),
	} {
		if err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	_, err = b.WriteTo(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

func setMetadata(b *gguf.Builder, layers int, wt ggml.Type) {
	ftype := uint32(1) // LLAMA_FTYPE_MOSTLY_F16
	if wt == ggml.Q4_0 {
		ftype = 2 // LLAMA_FTYPE_MOSTLY_Q4_0
	}
	b.Set("general.architecture", "phi2")
	b.Set("general.name", fmt.Sprintf("phi2-shaped random %d-layer", layers))
	b.Set("general.file_type", ftype)
	b.Set("phi2.context_length", uint32(nCtx))
	b.Set("phi2.embedding_length", uint32(nEmbd))
	b.Set("phi2.feed_forward_length", uint32(nFF))
	b.Set("phi2.block_count", uint32(layers))
	b.Set("phi2.attention.head_count", uint32(nHead))
	b.Set("phi2.attention.head_count_kv", uint32(nHead))
	b.Set("phi2.attention.layer_norm_epsilon", float32(1e-5))
	b.Set("phi2.rope.dimension_count", uint32(nRot))
	tokens, types, merges := vocabulary()
	b.Set("tokenizer.ggml.model", "gpt2")
	b.Set("tokenizer.ggml.pre", "phi-2")
	b.Set("tokenizer.ggml.tokens", tokens)
	b.Set("tokenizer.ggml.token_type", types)
	b.Set("tokenizer.ggml.merges", merges)
	b.Set("tokenizer.ggml.bos_token_id", uint32(eosToken))
	b.Set("tokenizer.ggml.eos_token_id", uint32(eosToken))
	b.Set("tokenizer.ggml.unknown_token_id", uint32(eosToken))
	b.Set("tokenizer.ggml.add_bos_token", false)
}

// vocabulary returns nVocab tokens: the 256 byte symbols of byte-level BPE (GPT-2's
// bytes_to_unicode mapping: printable Latin-1 bytes stand for themselves, the others are
// shifted to U+0100 and up), then tokens that are each the concatenation of an earlier token
// and a frequent symbol, with the merge that makes them; "<|endoftext|>" (a control token)
// sits at 50256 as in Phi-2, and ids past it are further merged tokens.
func vocabulary() (tokens []string, types []int32, merges []string) {
	sym := byteSymbols()
	tokens = make([]string, 0, nVocab)
	seen := make(map[string]bool, nVocab)
	add := func(s string) {
		tokens = append(tokens, s)
		seen[s] = true
	}
	for b := range 256 {
		add(sym[b])
	}
	// Right-hand symbols: lower-case letters and "Ġ" (the space byte), the commonest pieces.
	right := []string{sym[' ']}
	for c := 'a'; c <= 'z'; c++ {
		right = append(right, string(c))
	}
	// Breadth-first over left tokens: each round extends every token of the previous
	// round by each right symbol, so every token is reachable by merges of earlier ones.
	frontier := []string{sym[' ']}
	for c := 'a'; c <= 'z'; c++ {
		frontier = append(frontier, string(c))
	}
	for len(tokens) < nVocab {
		var next []string
		for _, l := range frontier {
			for _, r := range right {
				if len(tokens) == eosToken {
					add("<|endoftext|>")
				}
				if len(tokens) == nVocab {
					break
				}
				s := l + r
				if seen[s] {
					continue
				}
				add(s)
				merges = append(merges, l+" "+r)
				next = append(next, s)
			}
		}
		frontier = next
	}
	types = make([]int32, len(tokens))
	for i := range types {
		types[i] = 1 // NORMAL
	}
	types[eosToken] = 3 // CONTROL
	return tokens, types, merges
}

// byteSymbols is GPT-2's bytes_to_unicode: bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' map to the
// same code point; the remaining 68 bytes map, in order, to U+0100 onwards.
func byteSymbols() [256]string {
	var s [256]string
	n := 0
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			s[b] = string(rune(b))
		} else {
			s[b] = string(rune(256 + n))
			n++
		}
	}
	return s
}

// gen hands out deterministic random streams: tensor i draws from seed (seed, i), chunk c of
// a tensor from (seed, i, c), so the bytes do not depend on how many goroutines fill them.
type gen struct {
	seed uint64
	next uint64 // tensors declared so far
}

func (g *gen) stream(tensor, chunk uint64) *rand.Rand {
	return rand.New(rand.NewPCG(g.seed, tensor<<32|chunk))
}

// vector returns a writer of n f32 values, mean ± uniform noise of standard deviation std.
func (g *gen) vector(n int, mean, std float64) func(io.Writer) error {
	id := g.next
	g.next++
	return func(w io.Writer) error {
		r := g.stream(id, 0)
		a := std * math.Sqrt(3)
		buf := make([]byte, 4*n)
		for i := range n {
			v := mean + a*(2*r.Float64()-1)
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(v)))
		}
		_, err := w.Write(buf)
		return err
	}
}

// rowsPerChunk is how many rows one goroutine fills at a time: chunks are generated in
// parallel and written in order, a few MB in memory at once.
const rowsPerChunk = 64

// matrix returns a writer of a [rows][in] matrix of type wt, uniform with standard deviation std.
func (g *gen) matrix(wt ggml.Type, in, rows int, std float64) func(io.Writer) error {
	id := g.next
	g.next++
	return func(w io.Writer) error {
		rb, err := wt.RowBytes(int64(in))
		if err != nil {
			return err
		}
		nChunks := (rows + rowsPerChunk - 1) / rowsPerChunk
		workers := runtime.GOMAXPROCS(0)
		// Fill chunks in parallel, in windows of `workers` chunks, writing each window in order.
		bufs := make([][]byte, workers)
		for i := range bufs {
			bufs[i] = make([]byte, int(rb)*rowsPerChunk)
		}
		vals := make([][]float32, workers)
		for i := range vals {
			vals[i] = make([]float32, in)
		}
		a := float32(std * math.Sqrt(3))
		for c0 := 0; c0 < nChunks; c0 += workers {
			var wg sync.WaitGroup
			n := min(workers, nChunks-c0)
			for k := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := c0 + k
					r := g.stream(id, uint64(c))
					lo, hi := c*rowsPerChunk, min((c+1)*rowsPerChunk, rows)
					buf := bufs[k][:int(rb)*(hi-lo)]
					for row := lo; row < hi; row++ {
						v := vals[k]
						for i := range v {
							// 24 random bits → uniform in [-a, a).
							v[i] = a * (float32(r.Uint32()>>8)*(2.0/(1<<24)) - 1)
						}
						dst := buf[int(rb)*(row-lo) : int(rb)*(row-lo+1)]
						if wt == ggml.Q4_0 {
							quantQ4_0(dst, v)
						} else {
							for i, x := range v {
								binary.LittleEndian.PutUint16(dst[2*i:], float16.Fromfloat32(x).Bits())
							}
						}
					}
					bufs[k] = buf[:cap(buf)]
				}()
			}
			wg.Wait()
			for k := range n {
				c := c0 + k
				lo, hi := c*rowsPerChunk, min((c+1)*rowsPerChunk, rows)
				if _, err := w.Write(bufs[k][:int(rb)*(hi-lo)]); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// quantQ4_0 writes x (a multiple of 32 values) as Q4_0 blocks the way llama.cpp's reference
// quantizer does (ggml-quants.c quantize_row_q4_0_ref): d = max/−8 with max the signed value of largest
// magnitude, q = min(15, trunc(x/d + 8.5)); 18-byte blocks of f16 d and 16 bytes holding
// elements j (low nibble) and j+16 (high nibble).
func quantQ4_0(dst []byte, x []float32) {
	for b := 0; b+32 <= len(x); b += 32 {
		blk := x[b : b+32]
		var amax, max float32
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, max = a, v
			}
		}
		d := max / -8
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		o := dst[b/32*18:]
		binary.LittleEndian.PutUint16(o, float16.Fromfloat32(d).Bits())
		for j := range 16 {
			q0 := min(15, int(blk[j]*id+8.5))
			q1 := min(15, int(blk[j+16]*id+8.5))
			o[2+j] = byte(q0) | byte(q1)<<4
		}
	}
}
