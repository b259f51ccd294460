package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/loader/chattmpl"
)

// events parses stderr as NDJSON: every line must be a JSON object (no plain text mixed in).
func events(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// The second turn of a chat prefills only its new text: the KV state of the first turn (its
// prompt and the reply tokens that went through the model) is kept. stories260K has no chat
// template, so llama.cpp's fallback, chatml, applies.
func TestChatKeepsKVBetweenTurns(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	_, errOut, code := runCLI(t, "Hello\nTell me more\n", "chat", model, "--temperature", "0", "-n", "12",
		"--json", "--cache-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sums []map[string]any
	var pieces [][]string
	for _, e := range events(t, errOut) {
		switch e["event"] {
		case "summary":
			sums = append(sums, e)
		case "token":
			if len(pieces) == len(sums) {
				pieces = append(pieces, nil)
			}
			pieces[len(sums)] = append(pieces[len(sums)], e["text"].(string))
		}
	}
	if len(sums) != 2 || len(pieces) < 1 {
		t.Fatalf("%d summaries, %d replies; want 2", len(sums), len(pieces))
	}
	num := func(m map[string]any, k string) int { return int(m[k].(float64)) }
	// The first reply stopped at 12 tokens: the last one sampled never went through the model.
	if sums[0]["stop"] != "max tokens" {
		t.Fatalf("first reply stopped by %v", sums[0]["stop"])
	}
	held := num(sums[0], "prompt_tokens") + num(sums[0], "generated_tokens") - 1
	if got := num(sums[1], "cached_tokens"); got != held {
		t.Errorf("second turn reused %d tokens, want the %d of the first turn", got, held)
	}
	// What is new: the end of the first reply's text, the end of its turn and the new turn.
	tmpl, _ := chattmpl.Named("chatml")
	reply := strings.Join(pieces[0], "")
	first, _ := tmpl.Apply([]chattmpl.Message{{Role: "user", Content: "Hello"}}, true)
	second, _ := tmpl.Apply([]chattmpl.Message{{Role: "user", Content: "Hello"}, {Role: "assistant", Content: reply},
		{Role: "user", Content: "Tell me more"}}, true)
	heldText := first + strings.Join(pieces[0][:len(pieces[0])-1], "")
	tok, err := modelTokenizer(model)
	if err != nil {
		t.Fatal(err)
	}
	want := len(tok.Encode(second[len(heldText):], false, true))
	if got := num(sums[1], "prefill_tokens"); got != want {
		t.Errorf("second turn prefilled %d tokens, want %d (the new text %q)", got, want, second[len(heldText):])
	}
}

// At temperature 0 a one-turn chat writes what run --chat writes for the same message.
func TestChatOneTurnEqualsRunChat(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	cache := t.TempDir()
	chat, errOut, code := runCLI(t, "Once upon a time\n", "chat", model, "--temperature", "0", "-n", "24", "--cache-dir", cache)
	if code != 0 {
		t.Fatalf("chat: exit %d: %s", code, errOut)
	}
	run, errOut, code := runCLI(t, "", "run", model, "--chat", "--prompt", "Once upon a time", "--temperature", "0", "-n", "24", "--cache-dir", cache)
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}
	if chat != run || strings.TrimSpace(chat) == "" {
		t.Errorf("chat wrote %q\nrun --chat wrote %q", chat, run)
	}
	if !strings.Contains(errOut, "load ") || !strings.Contains(errOut, "prefill ") || !strings.Contains(errOut, "decode ") {
		t.Errorf("run does not report load, prefill and decode apart: %q", errOut)
	}
}

// A context that fills drops the oldest turns, says so, and the chat goes on.
func TestChatContextFull(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	_, errOut, code := runCLI(t, "Hello\nTell me more\nAnd then?\n/bye\nnot sent\n", "chat", model, "--temperature", "0", "-n", "20",
		"--set", "export.context=128", "--cache-dir", t.TempDir(), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	notes, replies := 0, 0
	for _, e := range events(t, errOut) {
		switch e["event"] {
		case "note":
			if e["msg"] == "context full (128 tokens): dropped the oldest turn; the rest is prefilled again" {
				notes++
			}
		case "summary":
			replies++
		}
	}
	if notes == 0 {
		t.Errorf("no context-full note: %q", errOut)
	}
	if replies != 3 {
		t.Errorf("%d replies, want 3 (and none after /bye)", replies)
	}
}

// run --json writes only NDJSON events on stderr: build progress, ready, token, summary.
func TestRunJSONEvents(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	_, errOut, code := runCLI(t, "", "run", model, "--prompt", "Once", "--temperature", "0", "-n", "4", "--json", "-v",
		"--cache-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	seen := map[string]int{}
	for _, e := range events(t, errOut) {
		seen[e["event"].(string)]++
	}
	if seen["ready"] != 1 || seen["token"] != 4 || seen["summary"] != 1 {
		t.Errorf("events %v, want one ready, 4 tokens, one summary", seen)
	}
}

func TestUnescapePrompt(t *testing.T) {
	for in, want := range map[string]string{
		`Once\nupon`: "Once\nupon",
		`a\tb\\n`:    "a\tb\\n",
		`q\"x\'`:     `q"x'`,
		`\x41\x4`:    `A\x4`,
		`plain`:      "plain",
		`trailing\`:  `trailing\`,
		`unknown\q`:  `unknown\q`,
	} {
		if got := unescapePrompt(in); got != want {
			t.Errorf("unescapePrompt(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChatInput(t *testing.T) {
	var in input
	var got []string
	for _, line := range []string{"one", `two \`, "lines", `"""`, "a", "b", `c"""`, `"""inline"""`} {
		if msg, ok := in.add(line); ok {
			got = append(got, msg)
		}
	}
	want := []string{"one", "two \nlines", "a\nb\nc", "inline"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("messages %q, want %q", got, want)
	}
}

// The vocab fixtures of Phi-3 and Qwen2 carry their models' real templates: each is detected as
// llama.cpp's format for its family, renders a conversation as that format does, and ends a
// turn with a token the tokenizer counts as end of generation (where a reply stops).
func TestModelChatTemplates(t *testing.T) {
	msgs := []chattmpl.Message{{Role: "user", Content: "Hello"}, {Role: "assistant", Content: "Hi there"}, {Role: "user", Content: "Who are you"}}
	for _, tc := range []struct{ file, format, endOfTurn, system string }{
		{"ggml-vocab-phi-3.gguf", "phi3", "<|end|>", ""},
		// Qwen2's template writes a default system message when there is none.
		{"ggml-vocab-qwen2.gguf", "chatml", "<|im_end|>", "Be brief."},
	} {
		msgs := withSystem(tc.system, msgs)
		path := filepath.Join(oracle, "vocab", tc.file)
		src, err := modelChatTemplate(path)
		if err != nil || src == "" {
			t.Fatalf("%s: no %s (%v)", tc.file, chattmpl.MetadataKey, err)
		}
		if got := chattmpl.Detect(src); got != tc.format {
			t.Errorf("%s: detected %q, want %q", tc.file, got, tc.format)
		}
		tmpl, err := chattmpl.Select("", src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tmpl.Apply(msgs, true)
		if err != nil {
			t.Fatal(err)
		}
		named, _ := chattmpl.Named(tc.format)
		want, _ := named.Apply(msgs, true)
		if got != want {
			t.Errorf("%s: the model's template wrote %q\nllama.cpp's %s format writes %q", tc.file, got, tc.format, want)
		}
		tok, err := modelTokenizer(path)
		if err != nil {
			t.Fatal(err)
		}
		ids := tok.Encode(tc.endOfTurn, false, true)
		if len(ids) != 1 || !tok.IsEOG(ids[0]) {
			t.Errorf("%s: %s is %v, want one end-of-generation token", tc.file, tc.endOfTurn, ids)
		}
	}
}

// Sampling flags are typed, from the sampler's one list of parameters: a bad value is a usage
// error (exit 2) naming the flag, before anything is built.
func TestSamplingFlagErrors(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	for _, tc := range []struct{ flag, value, want string }{
		{"--temperature", "abc", `--temperature: "abc" is not a number`},
		{"--top-p", "3", "--top-p: must be in [0,1]"},
		{"--typical-p", "x", `--typical-p: "x" is not a number`},
	} {
		_, errOut, code := runCLI(t, "", "run", model, "-p", "x", tc.flag, tc.value, "--cache-dir", t.TempDir())
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s %s: exit %d, %q; want exit 2 and %q", tc.flag, tc.value, code, errOut, tc.want)
		}
	}
}

// TestTempAlias: llama.cpp's --temp is --temperature.
func TestTempAlias(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	cache := t.TempDir()
	a, _, ca := runCLI(t, "", "run", model, "-p", "Once", "-n", "8", "--temp", "0", "--cache-dir", cache)
	b, _, cb := runCLI(t, "", "run", model, "-p", "Once", "-n", "8", "--temperature", "0", "--cache-dir", cache)
	if ca != 0 || cb != 0 || a != b || a == "" {
		t.Errorf("--temp 0: exit %d %q; --temperature 0: exit %d %q", ca, a, cb, b)
	}
	if _, errOut, code := runCLI(t, "", "run", model, "-p", "x", "--temp", "abc", "--cache-dir", cache); code != exitUsage || !strings.Contains(errOut, "not a number") {
		t.Errorf("--temp abc: exit %d, %q", code, errOut)
	}
}
