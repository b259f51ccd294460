package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Message is one chat message, its content flattened to text.
type Message struct {
	Role    string
	Content string
}

// ChatEncoder renders a conversation in the model's chat template, ending where the
// assistant's reply begins, and tokenizes it.
type ChatEncoder func(msgs []Message) ([]int32, error)

// Server is the HTTP front of an Engine.
type Server struct {
	Engine  *Engine
	ModelID string // the id /v1/models lists and requests name
	Chat    ChatEncoder
	// ChatStops end a chat reply besides the end-of-generation tokens: the template's
	// end-of-turn text where the vocabulary has no such token.
	ChatStops []string
	APIKey    string // when set, /v1/* requires "Authorization: Bearer APIKey"
	MaxBody   int64  // request body limit in bytes (0: 4 MiB)
	// Log, when set, gets one line per request.
	Log     func(format string, args ...any)
	created int64
	closing atomic.Bool
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	s.created = time.Now().Unix()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.health)
	mux.HandleFunc("/v1/models", s.auth(s.models))
	mux.HandleFunc("/v1/models/", s.auth(s.models))
	mux.HandleFunc("/v1/chat/completions", s.auth(s.post(s.chatCompletions)))
	mux.HandleFunc("/v1/completions", s.auth(s.post(s.completions)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found_error", "", "unknown_url", fmt.Sprintf("no route %s %s (see GET /v1/models, POST /v1/chat/completions, POST /v1/completions, GET /health)", r.Method, r.URL.Path))
	})
	return mux
}

// Draining makes new generation requests fail with 503 while in-flight ones finish (graceful
// shutdown).
func (s *Server) Draining() { s.closing.Store(true) }

// apiError is OpenAI's error body: {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, typ, param, code, msg string) {
	var e apiError
	e.Error.Message, e.Error.Type = msg, typ
	if param != "" {
		e.Error.Param = &param
	}
	if code != "" {
		e.Error.Code = &code
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

func badRequest(w http.ResponseWriter, param, msg string) {
	writeError(w, http.StatusBadRequest, "invalid_request_error", param, "", msg)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	status, code := "ok", http.StatusOK
	if s.closing.Load() {
		status, code = "shutting down", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "model": s.ModelID,
		"slots": s.Engine.Slots(), "queued": s.Engine.Queued()})
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.APIKey != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.APIKey)) != 1 {
				writeError(w, http.StatusUnauthorized, "authentication_error", "", "invalid_api_key", "missing or wrong API key: send Authorization: Bearer KEY")
				return
			}
		}
		h(w, r)
	}
}

// post reads a JSON body of at most MaxBody bytes into the handler's request type.
func (s *Server) post(h func(w http.ResponseWriter, r *http.Request, body []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "", "method_not_allowed", r.URL.Path+" takes POST")
			return
		}
		if s.closing.Load() {
			writeError(w, http.StatusServiceUnavailable, "server_error", "", "shutting_down", "the server is shutting down")
			return
		}
		limit := s.MaxBody
		if limit <= 0 {
			limit = 4 << 20
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "", "request_too_large",
					fmt.Sprintf("request body over %d bytes", limit))
				return
			}
			badRequest(w, "", "reading the request body: "+err.Error())
			return
		}
		h(w, r, body)
	}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "", "method_not_allowed", "/v1/models takes GET")
		return
	}
	m := map[string]any{"id": s.ModelID, "object": "model", "created": s.created, "owned_by": "lilims"}
	w.Header().Set("Content-Type", "application/json")
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/models/"); ok {
		if id != s.ModelID {
			writeError(w, http.StatusNotFound, "invalid_request_error", "model", "model_not_found", fmt.Sprintf("model %q does not exist (this server serves %q)", id, s.ModelID))
			return
		}
		json.NewEncoder(w).Encode(m)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": []any{m}})
}

// common are the request fields both endpoints share.
type common struct {
	Model               string          `json:"model"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int            `json:"top_k"`
	MinP                *float64        `json:"min_p"`
	Seed                *int64          `json:"seed"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	RepeatPenalty       *float64        `json:"repeat_penalty"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N *int `json:"n"`
}

// request turns the shared fields into an engine request; it reports a bad field by name.
func (s *Server) request(c common, w http.ResponseWriter) (Request, bool) {
	if c.Model != "" && c.Model != s.ModelID {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model", "model_not_found",
			fmt.Sprintf("model %q does not exist (this server serves %q)", c.Model, s.ModelID))
		return Request{}, false
	}
	if c.N != nil && *c.N != 1 {
		badRequest(w, "n", "only n = 1 is supported")
		return Request{}, false
	}
	var r Request
	switch {
	case c.MaxCompletionTokens != nil:
		r.MaxTokens = *c.MaxCompletionTokens
	case c.MaxTokens != nil:
		r.MaxTokens = *c.MaxTokens
	}
	if r.MaxTokens < 0 {
		badRequest(w, "max_tokens", "max_tokens must not be negative")
		return Request{}, false
	}
	r.Sampling = map[string]any{}
	set := func(key string, v any) { r.Sampling[key] = v }
	if c.Temperature != nil {
		set("temperature", *c.Temperature)
	}
	if c.TopP != nil {
		set("top_p", *c.TopP)
	}
	if c.TopK != nil {
		set("top_k", *c.TopK)
	}
	if c.MinP != nil {
		set("min_p", *c.MinP)
	}
	if c.Seed != nil {
		if *c.Seed < 0 {
			badRequest(w, "seed", "seed must not be negative")
			return Request{}, false
		}
		set("seed", *c.Seed)
	}
	if c.PresencePenalty != nil {
		set("presence_penalty", *c.PresencePenalty)
	}
	if c.FrequencyPenalty != nil {
		set("frequency_penalty", *c.FrequencyPenalty)
	}
	if c.RepeatPenalty != nil {
		set("repeat_penalty", *c.RepeatPenalty)
	}
	if len(c.Stop) > 0 && string(c.Stop) != "null" {
		var one string
		if json.Unmarshal(c.Stop, &one) == nil {
			r.Stops = []string{one}
		} else if err := json.Unmarshal(c.Stop, &r.Stops); err != nil {
			badRequest(w, "stop", "stop must be a string or an array of strings")
			return Request{}, false
		}
		if len(r.Stops) > 16 {
			badRequest(w, "stop", "at most 16 stop strings")
			return Request{}, false
		}
	}
	return r, true
}

type chatRequest struct {
	common
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

type completionRequest struct {
	common
	Prompt json.RawMessage `json:"prompt"`
}

// decode reads body into v, answering 400 with the JSON error.
func decode(w http.ResponseWriter, body []byte, v any) bool {
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field[strings.LastIndexByte(te.Field, '.')+1:] // not the embedded struct's name
			badRequest(w, field, fmt.Sprintf("field %q: want %s, got JSON %s", field, te.Type, te.Value))
			return false
		}
		badRequest(w, "", "the request body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

// textOf flattens a message's content: a string, or an array of {"type": "text", "text": …}.
func textOf(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part of type %q: this model reads text only", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request, body []byte) {
	var req chatRequest
	if !decode(w, body, &req) {
		return
	}
	gen, ok := s.request(req.common, w)
	if !ok {
		return
	}
	if len(req.Messages) == 0 {
		badRequest(w, "messages", "messages must hold at least one message")
		return
	}
	msgs := make([]Message, len(req.Messages))
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			badRequest(w, fmt.Sprintf("messages[%d].role", i), fmt.Sprintf("unknown role %q (system, user, assistant, tool)", m.Role))
			return
		}
		text, err := textOf(m.Content)
		if err != nil {
			badRequest(w, fmt.Sprintf("messages[%d].content", i), err.Error())
			return
		}
		role := m.Role
		if role == "developer" { // OpenAI's newer name for system
			role = "system"
		}
		msgs[i] = Message{Role: role, Content: text}
	}
	prompt, err := s.Chat(msgs)
	if err != nil {
		badRequest(w, "messages", "chat template: "+err.Error())
		return
	}
	gen.Prompt = prompt
	gen.Stops = append(gen.Stops, s.ChatStops...)
	s.respond(w, r, req.common, gen, true)
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request, body []byte) {
	var req completionRequest
	if !decode(w, body, &req) {
		return
	}
	gen, ok := s.request(req.common, w)
	if !ok {
		return
	}
	var prompt string
	if err := json.Unmarshal(req.Prompt, &prompt); err != nil {
		var list []string
		if json.Unmarshal(req.Prompt, &list) != nil || len(list) != 1 {
			badRequest(w, "prompt", "prompt must be a string (or an array of one string)")
			return
		}
		prompt = list[0]
	}
	// As llama-cli and llama-server: BOS added where the model wants one, special tokens
	// in the text parsed.
	gen.Prompt = s.Engine.Tok.Encode(prompt, true, true)
	s.respond(w, r, req.common, gen, false)
}

func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// timings are llama-server's extra per-request figures.
type timings struct {
	PromptN          int     `json:"prompt_n"`
	PromptMS         float64 `json:"prompt_ms"`
	PromptPerSecond  float64 `json:"prompt_per_second"`
	PredictedN       int     `json:"predicted_n"`
	PredictedMS      float64 `json:"predicted_ms"`
	PredictedPerSec  float64 `json:"predicted_per_second"`
	CacheN           int     `json:"cache_n"`
	QueuedMS         float64 `json:"queued_ms"`
	TimeToFirstToken float64 `json:"time_to_first_token_ms"`
}

func usageOf(res Result) usage {
	u := usage{PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens, TotalTokens: res.PromptTokens + res.CompletionTokens}
	u.PromptTokensDetails.CachedTokens = res.CachedTokens
	return u
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func timingsOf(res Result) timings {
	n := res.PromptTokens - res.CachedTokens
	return timings{PromptN: n, PromptMS: ms(res.Prefill), PromptPerSecond: perSecond(n, res.Prefill),
		PredictedN: res.CompletionTokens, PredictedMS: ms(res.Decode), PredictedPerSec: perSecond(res.CompletionTokens, res.Decode),
		CacheN: res.CachedTokens, QueuedMS: ms(res.Queued), TimeToFirstToken: ms(res.Queued + res.Prefill)}
}

// respond runs the generation and writes it as one JSON object or as server-sent events.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, c common, gen Request, chat bool) {
	if err := s.Engine.Check(gen); err != nil {
		s.fail(w, err)
		return
	}
	id, object := newID("cmpl-"), "text_completion"
	if chat {
		id, object = newID("chatcmpl-"), "chat.completion"
	}
	created := time.Now().Unix()
	start := time.Now()
	ctx := r.Context() // ends when the client goes away: the generation stops

	if !c.Stream {
		var text strings.Builder
		res, err := s.Engine.Generate(ctx, gen, func(t string) error { text.WriteString(t); return nil })
		if err != nil {
			s.fail(w, err)
			return
		}
		choice := map[string]any{"index": 0, "finish_reason": res.FinishReason, "logprobs": nil}
		if chat {
			choice["message"] = map[string]any{"role": "assistant", "content": text.String()}
		} else {
			choice["text"] = text.String()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": id, "object": object, "created": created, "model": s.ModelID,
			"choices": []any{choice}, "usage": usageOf(res), "timings": timingsOf(res)})
		s.logf("%s %s: %d+%d tokens in %s (%s)", r.Method, r.URL.Path, res.PromptTokens, res.CompletionTokens, time.Since(start).Round(time.Millisecond), res.FinishReason)
		return
	}

	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	started := false
	event := func(v any) error {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		if fl != nil {
			fl.Flush()
		}
		return nil
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		choice := map[string]any{"index": 0, "finish_reason": finish, "logprobs": nil}
		obj := "text_completion"
		if chat {
			choice["delta"] = delta
			obj = "chat.completion.chunk"
		} else {
			choice["text"] = delta["content"]
		}
		return map[string]any{"id": id, "object": obj, "created": created, "model": s.ModelID, "choices": []any{choice}}
	}
	begin := func() error {
		if started {
			return nil
		}
		started = true
		w.WriteHeader(http.StatusOK)
		if chat {
			return event(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
		}
		return nil
	}
	res, err := s.Engine.Generate(ctx, gen, func(t string) error {
		if err := begin(); err != nil {
			return err
		}
		return event(chunk(map[string]any{"content": t}, nil))
	})
	if err != nil && !started {
		s.fail(w, err) // nothing sent yet: a proper error status
		return
	}
	if err != nil {
		// Mid-stream: the status is sent; say it in the stream, as OpenAI does.
		var e apiError
		e.Error.Message, e.Error.Type = err.Error(), "server_error"
		event(e)
		s.logf("%s %s: stream ended: %v", r.Method, r.URL.Path, err)
		return
	}
	begin()
	final := chunk(map[string]any{}, res.FinishReason)
	final["timings"] = timingsOf(res)
	event(final)
	if c.StreamOptions != nil && c.StreamOptions.IncludeUsage {
		event(map[string]any{"id": id, "object": final["object"], "created": created, "model": s.ModelID,
			"choices": []any{}, "usage": usageOf(res)})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
	s.logf("%s %s (stream): %d+%d tokens in %s (%s)", r.Method, r.URL.Path, res.PromptTokens, res.CompletionTokens, time.Since(start).Round(time.Millisecond), res.FinishReason)
}

// fail answers an error from the engine with its HTTP status.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var re *RequestError
	switch {
	case errors.As(err, &re):
		writeError(w, http.StatusBadRequest, "invalid_request_error", re.Param, re.Code, re.Msg)
	case errors.Is(err, ErrBusy):
		writeError(w, http.StatusServiceUnavailable, "server_error", "", "server_busy", err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client is gone (or the server is stopping): nobody reads this.
		writeError(w, 499, "server_error", "", "cancelled", "request cancelled")
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "", "", err.Error())
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}
