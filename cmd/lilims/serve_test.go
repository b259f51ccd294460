package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/lilims/lilims/internal/server"
	"github.com/lilims/lilims/pipeline/stage"
)

// openTestServer builds MODEL's default pipeline and returns its server (not listening).
func openTestServer(t testing.TB, model string, parallel int, sets ...string) *server.Server {
	t.Helper()
	plan, err := loadPlan(model, sets)
	if err != nil {
		t.Fatal(err)
	}
	pf := pipelineFlags{cacheDir: cacheDirFor(t)}
	ctx := context.WithValue(context.Background(), pipelineFlagsKey{}, &pf)
	srv, closeModel, err := openServer(ctx, plan, pf, serveFlags{parallel: parallel, queue: 64, maxBody: 1 << 20}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeModel)
	return srv
}

var (
	cacheOnce sync.Once
	cacheDir  string
)

// cacheDirFor shares one build cache among the serve tests, so the model is built once.
func cacheDirFor(t testing.TB) string {
	cacheOnce.Do(func() {
		d, err := os.MkdirTemp("", "lilims-serve-test-")
		if err != nil {
			t.Fatal(err)
		}
		cacheDir = d
	})
	return cacheDir
}

func newClient(url string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL(url + "/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0)}, opts...)...)
}

// The official OpenAI Go client drives the server, streaming and not; at temperature 0 the
// served text equals `lilims run`'s.
func TestServeOpenAIClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and serves a model")
	}
	srv := openTestServer(t, stories, 2)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	ctx := context.Background()
	c := newClient(ts.URL)

	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "stories260K" {
		t.Fatalf("models: %+v, %v", models, err)
	}

	const prompt = "Once upon a time"
	want, stderr, code := runCLI(t, "", "run", stories, "--prompt", prompt, "--temperature", "0", "--max-tokens", "24", "--cache-dir", cacheDirFor(t))
	if code != 0 {
		t.Fatalf("run: %s", stderr)
	}
	want = strings.TrimSuffix(want, "\n")
	params := openai.CompletionNewParams{Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
		MaxTokens: openai.Int(24), Temperature: openai.Float(0)}
	comp, err := c.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got := comp.Choices[0].Text; got != want {
		t.Errorf("served completion %q, lilims run %q", got, want)
	}
	if comp.Usage.PromptTokens != 5 || comp.Usage.CompletionTokens < 1 || comp.Usage.CompletionTokens > 24 {
		t.Errorf("usage %+v: want 5 prompt tokens (BOS + 4) and 1..24 completion tokens", comp.Usage)
	}
	stream := c.Completions.NewStreaming(ctx, params)
	var streamed strings.Builder
	finish := ""
	for stream.Next() {
		ch := stream.Current()
		if len(ch.Choices) > 0 {
			streamed.WriteString(ch.Choices[0].Text)
			if ch.Choices[0].FinishReason != "" {
				finish = string(ch.Choices[0].FinishReason)
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if streamed.String() != want || (finish != "stop" && finish != "length") {
		t.Errorf("streamed completion %q (finish %q), want %q", streamed.String(), finish, want)
	}

	// Chat, streamed and not, agree at temperature 0; the next turn reuses the KV rows
	// of the conversation so far.
	chat := openai.ChatCompletionNewParams{Model: "stories260K", MaxTokens: openai.Int(20), Temperature: openai.Float(0),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You tell stories."), openai.UserMessage("Tell me about Lily.")}}
	resp, err := c.Chat.Completions.New(ctx, chat)
	if err != nil {
		t.Fatal(err)
	}
	reply := resp.Choices[0].Message.Content
	if resp.Choices[0].Message.Role != "assistant" || resp.Usage.CompletionTokens < 1 {
		t.Errorf("chat response %+v", resp)
	}
	cs := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: chat.Model, MaxTokens: chat.MaxTokens, Temperature: chat.Temperature,
		Messages: chat.Messages, StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	var chunks strings.Builder
	var streamUsage int64
	for cs.Next() {
		ch := cs.Current()
		for _, choice := range ch.Choices {
			chunks.WriteString(choice.Delta.Content)
		}
		if ch.Usage.TotalTokens > 0 {
			streamUsage = ch.Usage.CompletionTokens
		}
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks.String() != reply || streamUsage != resp.Usage.CompletionTokens {
		t.Errorf("streamed chat %q (%d tokens), non-streamed %q (%d tokens)", chunks.String(), streamUsage, reply, resp.Usage.CompletionTokens)
	}
	next := chat
	next.Messages = append(slices.Clone(chat.Messages), openai.AssistantMessage(reply), openai.UserMessage("And then?"))
	resp2, err := c.Chat.Completions.New(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if cached := resp2.Usage.PromptTokensDetails.CachedTokens; cached < resp.Usage.PromptTokens {
		t.Errorf("second turn reused %d cached tokens; the first turn's prompt alone is %d", cached, resp.Usage.PromptTokens)
	}

	// Per-request sampling: a seed makes a sampled completion reproducible.
	seeded := params
	seeded.Temperature, seeded.Seed = openai.Float(1), openai.Int(7)
	a, err1 := c.Completions.New(ctx, seeded)
	b, err2 := c.Completions.New(ctx, seeded)
	if err1 != nil || err2 != nil || a.Choices[0].Text != b.Choices[0].Text {
		t.Errorf("same seed, different text: %q / %q (%v, %v)", a.Choices[0].Text, b.Choices[0].Text, err1, err2)
	}
}

// Bad requests get an OpenAI-style JSON error with the right status, and the server keeps
// serving.
func TestServeBadRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and serves a model")
	}
	srv := openTestServer(t, stories, 1, "export.context=64")
	srv.APIKey = "sekrit"
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	long := strings.Repeat("once upon a time ", 40)
	for _, tc := range []struct {
		name, method, path, body, key string
		status                        int
		msg                           string
	}{
		{"no key", "POST", "/v1/completions", `{"prompt":"a"}`, "", 401, "API key"},
		{"wrong key", "POST", "/v1/completions", `{"prompt":"a"}`, "nope", 401, "API key"},
		{"malformed JSON", "POST", "/v1/completions", `{"prompt":`, "sekrit", 400, "not valid JSON"},
		{"wrong type", "POST", "/v1/completions", `{"prompt":"a","max_tokens":"ten"}`, "sekrit", 400, `field "max_tokens"`},
		{"unknown model", "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "sekrit", 404, `model "gpt-4o" does not exist`},
		{"no messages", "POST", "/v1/chat/completions", `{"messages":[]}`, "sekrit", 400, "at least one message"},
		{"bad role", "POST", "/v1/chat/completions", `{"messages":[{"role":"wizard","content":"hi"}]}`, "sekrit", 400, "unknown role"},
		{"image", "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, "sekrit", 400, "text only"},
		{"prompt too long", "POST", "/v1/completions", `{"prompt":"` + long + `"}`, "sekrit", 400, "context is 64 tokens"},
		{"max_tokens too large", "POST", "/v1/completions", `{"prompt":"Once","max_tokens":100}`, "sekrit", 400, "at most 62 new tokens fit"},
		{"n", "POST", "/v1/completions", `{"prompt":"a","n":2}`, "sekrit", 400, "n = 1"},
		{"bad top_p", "POST", "/v1/completions", `{"prompt":"a","top_p":1.5}`, "sekrit", 400, "top_p"},
		{"body too large", "POST", "/v1/completions", `{"prompt":"` + strings.Repeat("x", 2<<20) + `"}`, "sekrit", 413, "over 1048576 bytes"},
		{"GET on POST route", "GET", "/v1/completions", ``, "sekrit", 405, "takes POST"},
		{"unknown route", "GET", "/v2/whatever", ``, "sekrit", 404, "no route"},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var e struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"error"`
		}
		derr := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status || derr != nil || !strings.Contains(e.Error.Message, tc.msg) || e.Error.Type == "" {
			t.Errorf("%s: HTTP %d %+v (decode: %v); want %d and a message containing %q", tc.name, resp.StatusCode, e, derr, tc.status, tc.msg)
		}
	}
	// Still serving.
	c := newClient(ts.URL, option.WithAPIKey("sekrit"))
	if _, err := c.Completions.New(context.Background(), openai.CompletionNewParams{Model: "stories260K",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once")}, MaxTokens: openai.Int(4)}); err != nil {
		t.Errorf("after the bad requests: %v", err)
	}
	// /health needs no key.
	if resp, err := http.Get(ts.URL + "/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("health: %v %v", resp, err)
	}
}

// A client that disconnects cancels its generation and frees its session for the next one.
func TestServeClientDisconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and serves a model")
	}
	srv := openTestServer(t, stories, 1)
	ended := make(chan string, 4)
	srv.Log = func(format string, args ...any) { ended <- fmt.Sprintf(format, args...) }
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := newClient(ts.URL)
	stream := c.Completions.NewStreaming(ctx, openai.CompletionNewParams{Model: "stories260K",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")}, MaxTokens: openai.Int(2000),
		Temperature: openai.Float(1), Seed: openai.Int(3)})
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	cancel()
	stream.Close()
	select {
	case line := <-ended:
		if !strings.Contains(line, "context canceled") {
			t.Errorf("the cancelled generation ended with %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the generation did not stop after its client left")
	}
	// The session is free again.
	if _, err := c.Completions.New(context.Background(), openai.CompletionNewParams{Model: "stories260K",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Lily")}, MaxTokens: openai.Int(4)}); err != nil {
		t.Fatal(err)
	}
}

// A bounded load on loopback: 8 clients × 20 requests over 2 sessions, all answered.
func TestServeLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	srv := openTestServer(t, stories, 2)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	lat, toks, errs := loadServer(ts.URL, 8, 20, 16)
	if len(errs) > 0 {
		t.Fatalf("%d of 160 requests failed, first: %v", len(errs), errs[0])
	}
	if len(lat) != 160 || toks < 160 {
		t.Errorf("%d answers, %d tokens", len(lat), toks)
	}
}

// loadServer sends clients × perClient completions of up to maxTokens tokens and returns
// each request's latency, the tokens generated and the errors.
func loadServer(url string, clients, perClient, maxTokens int) ([]time.Duration, int64, []error) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		toks int64
		errs []error
		wg   sync.WaitGroup
	)
	prompts := []string{"Once upon a time", "Lily went to the park", "The cat", "Tom had a big red ball"}
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(url)
			for j := range perClient {
				t0 := time.Now()
				r, err := c.Completions.New(context.Background(), openai.CompletionNewParams{Model: "stories260K",
					Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompts[(i+j)%len(prompts)])},
					MaxTokens: openai.Int(int64(maxTokens)), Temperature: openai.Float(0.8), Seed: openai.Int(int64(i*100 + j))})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					lat = append(lat, time.Since(t0))
					toks += r.Usage.CompletionTokens
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, toks, errs
}

// SIGTERM (here: the context ending) stops new requests and lets a running one finish.
func TestServeGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and serves a model")
	}
	srv := openTestServer(t, stories, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveUntilSignal(ctx, srv, ln, 30*time.Second, io.Discard) }()
	url := "http://" + ln.Addr().String()
	c := newClient(url)
	stream := c.Completions.NewStreaming(context.Background(), openai.CompletionNewParams{Model: "stories260K",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")}, MaxTokens: openai.Int(300),
		Temperature: openai.Float(1), Seed: openai.Int(5)})
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	stop()
	// New requests are refused while the running one drains.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/health")
		if err != nil || resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		resp.Body.Close()
		time.Sleep(10 * time.Millisecond)
	}
	n := 1
	finish := ""
	for stream.Next() {
		n++
		if ch := stream.Current(); len(ch.Choices) > 0 && ch.Choices[0].FinishReason != "" {
			finish = string(ch.Choices[0].FinishReason)
		}
	}
	if err := stream.Err(); err != nil || finish == "" {
		t.Errorf("the running request did not finish cleanly: %v after %d chunks, finish %q", err, n, finish)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return after shutdown")
	}
}

// BenchmarkServe reports p50/p99 request latency and aggregate generation speed for 1, 2 and
// 4 sessions under 8 concurrent clients (stories260K, 32-token completions):
//
//	go test -run '^$' -bench Serve -benchtime 1x ./cmd/lilims
func BenchmarkServe(b *testing.B) {
	for _, parallel := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			srv := openTestServer(b, stories, parallel)
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			b.ResetTimer()
			var all []time.Duration
			var toks int64
			start := time.Now()
			for range b.N {
				lat, n, errs := loadServer(ts.URL, 8, 5, 32)
				if len(errs) > 0 {
					b.Fatal(errs[0])
				}
				all, toks = append(all, lat...), toks+n
			}
			elapsed := time.Since(start)
			slices.Sort(all)
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(toks)/elapsed.Seconds(), "tok/s")
		})
	}
}

// BenchmarkHostOverhead measures what the serving host adds to the runtime session, on the
// package `lilims bench` measures: the same prompt (bench's 64 tokens, its first one varied
// so that no KV rows are reused) and the same number of greedy tokens, once through the
// server's engine (queue, sampler chain, stop strings, detokenization) and once through the
// bare session as `lilims bench` drives it, interleaved. It reports the engine's time to
// first token and generation speed over the bare session's (1 = no overhead):
//
//	go test -run '^$' -bench HostOverhead -benchtime 20x ./cmd/lilims
//	LILIMS_BENCH_MODEL=phi2.gguf go test -run '^$' -bench HostOverhead -benchtime 5x ./cmd/lilims
func BenchmarkHostOverhead(b *testing.B) {
	model := os.Getenv("LILIMS_BENCH_MODEL")
	if model == "" {
		model = stories
	}
	plan, err := loadPlan(model, nil)
	if err != nil {
		b.Fatal(err)
	}
	pf := pipelineFlags{cacheDir: cacheDirFor(b)}
	ctx := context.WithValue(context.Background(), pipelineFlagsKey{}, &pf)
	built, err := buildPlan(ctx, plan, "", false)
	if err != nil {
		b.Fatal(err)
	}
	defer built.cleanup()
	tok, err := modelTokenizer(built.model())
	if err != nil {
		b.Fatal(err)
	}
	open := func() stage.Session {
		s, err := plan.OpenSession(ctx, built.artifacts)
		if err != nil {
			b.Fatal(err)
		}
		if err := warmUp(ctx, s); err != nil {
			b.Fatal(err)
		}
		return s
	}
	bare, hosted := open(), open()
	defer bare.Close()
	vocab := bare.VocabSize()
	eng := server.NewEngine(tok, []stage.Session{hosted}, func(over map[string]any) (stage.TokenSampler, error) {
		return plan.NewSamplerWith(vocab, over)
	})
	defer eng.Close()
	var engTTFT, bareTTFT, engGen, bareGen time.Duration
	var tokens int
	b.ResetTimer()
	for i := range b.N {
		prompt := benchTokens(64, vocab)
		prompt[0] = int32((int(prompt[0]) + i) % vocab)
		res, err := eng.Generate(ctx, server.Request{Prompt: prompt, MaxTokens: 32, Sampling: map[string]any{"temperature": 0}},
			func(string) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		engTTFT += res.Queued + res.Prefill
		engGen += res.Decode
		// The bare session: the same prefill, then as many tokens, greedy.
		bare.Reset()
		t0 := time.Now()
		logits, err := bare.Prefill(ctx, prompt)
		if err != nil {
			b.Fatal(err)
		}
		bareTTFT += time.Since(t0)
		next := argmaxLogit(logits[len(logits)-1])
		t1 := time.Now()
		for k := 1; k < res.CompletionTokens; k++ {
			l, err := bare.Decode(ctx, next)
			if err != nil {
				b.Fatal(err)
			}
			next = argmaxLogit(l)
		}
		bareGen += time.Since(t1)
		tokens += res.CompletionTokens
	}
	b.ReportMetric(engTTFT.Seconds()/bareTTFT.Seconds(), "ttft-ratio")
	b.ReportMetric(bareGen.Seconds()/engGen.Seconds(), "tg-ratio")
	b.ReportMetric(float64(b.N*64)/engTTFT.Seconds(), "serve-pp-tok/s")
	b.ReportMetric(float64(tokens)/engGen.Seconds(), "serve-tg-tok/s")
}
