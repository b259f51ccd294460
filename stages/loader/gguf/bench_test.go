package gguf

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/loader/ggml"
)

// phi2Header writes the header of a Phi-2-shaped f16 GGUF (2.78B parameters, 5.56 GB) and
// extends the file to its full size without writing tensor data (a sparse file), so that
// opening it can be measured without 5 GB of disk traffic.
func phi2Header(tb testing.TB, dir string) (string, int64) {
	const embd, layers, ff, vocab = 2560, 32, 10240, 51200
	b := NewBuilder()
	b.Set("general.architecture", "phi2")
	b.Set("general.name", "phi2-shaped")
	b.Set("phi2.context_length", uint32(2048))
	b.Set("phi2.embedding_length", uint32(embd))
	b.Set("phi2.block_count", uint32(layers))
	b.Set("phi2.feed_forward_length", uint32(ff))
	b.Set("phi2.attention.head_count", uint32(32))
	b.Set("phi2.attention.head_count_kv", uint32(32))
	b.Set("phi2.attention.layer_norm_epsilon", float32(1e-5))
	b.Set("phi2.rope.dimension_count", uint32(32))
	b.Set("tokenizer.ggml.model", "gpt2")
	b.Set("tokenizer.ggml.pre", "phi-2")
	toks := make([]string, vocab)
	types := make([]int32, vocab)
	for i := range toks {
		toks[i] = "tok" + strconv.Itoa(i)
		types[i] = 1
	}
	merges := make([]string, 50000)
	for i := range merges {
		merges[i] = fmt.Sprintf("t%d o%d", i, i)
	}
	b.Set("tokenizer.ggml.tokens", toks)
	b.Set("tokenizer.ggml.token_type", types)
	b.Set("tokenizer.ggml.merges", merges)
	add := func(name string, shape ...int64) {
		b.tensors = append(b.tensors, builderTensor{name: name, shape: shape, typ: ggml.F16,
			size: 2 * prod(shape)})
	}
	add("token_embd.weight", embd, vocab)
	for l := 0; l < layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", embd)
		add(p+"attn_norm.bias", embd)
		add(p+"attn_qkv.weight", embd, 3*embd)
		add(p+"attn_qkv.bias", 3*embd)
		add(p+"attn_output.weight", embd, embd)
		add(p+"attn_output.bias", embd)
		add(p+"ffn_up.weight", embd, ff)
		add(p+"ffn_up.bias", ff)
		add(p+"ffn_down.weight", ff, embd)
		add(p+"ffn_down.bias", embd)
	}
	add("output_norm.weight", embd)
	add("output_norm.bias", embd)
	add("output.weight", embd, vocab)
	add("output.bias", vocab)
	header, total := b.Header()
	path := filepath.Join(dir, "phi2-shaped-f16.gguf")
	if err := os.WriteFile(path, header, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(path, total); err != nil {
		tb.Fatal(err)
	}
	return path, total
}

func prod(s []int64) int64 {
	n := int64(1)
	for _, d := range s {
		n *= d
	}
	return n
}

// BenchmarkOpenPhi2Shaped: open + a hyper-parameter + parameter count of a 5.56 GB file. Target
// (issue 2): < 100 ms and < 50 MB RSS. Reports peak RSS growth in MB.
func BenchmarkOpenPhi2Shaped(b *testing.B) {
	path, size := phi2Header(b, b.TempDir())
	before := peakRSS()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.GetLayerInt("phi2.embedding_length"); err != nil {
			b.Fatal(err)
		}
		if f.ParameterCount() < 2_700_000_000 {
			b.Fatal("parameter count")
		}
		f.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(size)/1e9, "GB-file")
	b.ReportMetric(float64(peakRSS())/1e6, "MB-peak-rss")
	_ = before
	runtime.KeepAlive(path)
}

// peakRSS reads VmHWM (peak resident set) on Linux; 0 elsewhere.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
