package chattmpl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// llamaCppCases is testdata/llamacpp-chat-template-tests.json: llama.cpp's own table of real
// templates with their expected outputs (tests/test-chat-template.cpp).
type llamaCppCases struct {
	Conversation []Message `json:"conversation"`
	Cases        []struct {
		Name               string    `json:"name"`
		Template           string    `json:"template_str"`
		Expected           string    `json:"expected_output"`
		ExpectedJinja      string    `json:"expected_output_jinja"`
		BOS                string    `json:"bos_token"`
		EOS                string    `json:"eos_token"`
		SupportedWithJinja *bool     `json:"supported_with_jinja"`
		ExtraConversation  []Message `json:"extra_conversation"`
	} `json:"cases"`
}

func loadLlamaCppCases(t *testing.T) llamaCppCases {
	t.Helper()
	b, err := os.ReadFile("testdata/llamacpp-chat-template-tests.json")
	if err != nil {
		t.Fatal(err)
	}
	var c llamaCppCases
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Cases) < 30 {
		t.Fatalf("%d cases, want llama.cpp's 36", len(c.Cases))
	}
	return c
}

// TestLlamaCppBuiltinFormats checks detection and the built-in formats the way llama.cpp's
// llama_chat_apply_template does: the template is recognised as a named format, which writes
// the conversation; the text must equal llama.cpp's expected_output.
func TestLlamaCppBuiltinFormats(t *testing.T) {
	c := loadLlamaCppCases(t)
	for _, tc := range c.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			name := Detect(tc.Template)
			if name == "" {
				t.Fatalf("template not recognised")
			}
			tmpl, err := Named(name)
			if err != nil && name != "dots1" {
				t.Fatal(err)
			}
			if name == "dots1" {
				tmpl = &Template{name: name, format: formats[name]}
			}
			got, err := tmpl.Apply(append(append([]Message(nil), c.Conversation...), tc.ExtraConversation...), true)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.Expected {
				t.Errorf("format %s:\n got %q\nwant %q", name, got, tc.Expected)
			}
		})
	}
}

// engineDivergent are llama.cpp cases where github.com/ardanlabs/jinja v1.8.0 renders
// differently, each with the reason. The test pins the engine's output (want with the
// replacement applied), so an engine upgrade that fixes it shows up as a failure to update.
var engineDivergent = map[string]struct{ reason, old, new string }{
	// The template writes "|>\n {{ message['content'] }}{% else %}". The engine applies
	// lstrip_blocks for {% else %} to the text before the preceding {{ }} expression, eating
	// the space after the newline; Jinja2 and @huggingface/jinja keep it.
	"ChatGLM3": {"lstrip_blocks applied across an expression", "\n ", "\n"},
}

// TestLlamaCppJinja renders each of llama.cpp's templates with the Jinja engine; the text
// must equal llama.cpp's expected_output_jinja (or expected_output when that is empty).
func TestLlamaCppJinja(t *testing.T) {
	c := loadLlamaCppCases(t)
	for _, tc := range c.Cases {
		if tc.SupportedWithJinja != nil && !*tc.SupportedWithJinja {
			continue // llama.cpp skips it too: it needs variables beyond the standard ones
		}
		t.Run(tc.Name, func(t *testing.T) {
			tmpl, err := Parse(tc.Template)
			if err != nil {
				t.Fatal(err)
			}
			tmpl.BOS, tmpl.EOS = tc.BOS, tc.EOS
			got, err := tmpl.Apply(append(append([]Message(nil), c.Conversation...), tc.ExtraConversation...), true)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.ExpectedJinja
			if want == "" {
				want = tc.Expected
			}
			if d, ok := engineDivergent[tc.Name]; ok {
				want = strings.ReplaceAll(want, d.old, d.new)
			}
			if got != want {
				t.Errorf("\n got %q\nwant %q", got, want)
			}
		})
	}
}

// hfConversation is the conversation testdata/hf-render.mjs renders.
var hfConversation = []Message{
	{"system", "You are a helpful assistant."},
	{"user", "Hello, who are you?"},
	{"assistant", "I am a small model.\nHow can I help?"},
	{"user", "Tell me a story."},
}

// hfStricter are templates on which @huggingface/jinja raises an error where Python's Jinja2
// or llama.cpp render, or where lilims deliberately differs; the Go engine renders them, and
// the test checks that every message's text reaches the prompt.
var hfStricter = map[string]string{
	"ByteDance-Seed-OSS":                            "an integer dict key: the JS engine allows only string keys, Python any",
	"CohereForAI-c4ai-command-r-plus-tool_use":      "iterates over tools, which is None: Jinja2 raises too; the Go engine iterates nothing",
	"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use": "iterates over tools, which is None: Jinja2 raises too; the Go engine iterates nothing",
	"NousResearch-Hermes-3-Llama-3.1-8B-tool_use":   "iterates over tools, which is None: Jinja2 raises too; the Go engine iterates nothing",
	"fireworks-ai-llama-3-firefunction-v2":          "adds an undefined value to a string: the Go engine renders it empty",
	"meetkai-functionary-medium-v3.1":               "selectattr over tools, which is None: the Go engine filters nothing",
	"tencent-Hy3":                                   "calls Python's str.format, which the JS engine lacks and the Go engine has",
	"google-gemma-2-2b-it":                          "raises on a system message; lilims folds it into the first user turn, as llama.cpp does",
}

// TestHuggingFaceJinja renders the real templates of llama.cpp's models/templates with the
// fixed conversation of testdata/hf-render.mjs and compares with what Hugging Face's
// JavaScript engine (@huggingface/jinja 0.5.13) rendered: identical strings, or an error
// where it raised one (NAME.err: a template that rejects the conversation, or tools=None).
func TestHuggingFaceJinja(t *testing.T) {
	files, err := filepath.Glob("testdata/templates/*.jinja")
	if err != nil || len(files) < 60 {
		t.Fatalf("%d templates (%v), want llama.cpp's 68", len(files), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".jinja")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr := os.ReadFile(filepath.Join("testdata/hf", name+".txt"))
			hfErr, _ := os.ReadFile(filepath.Join("testdata/hf", name+".err"))
			if wantErr != nil && hfErr == nil {
				t.Fatalf("no expected output for %s", name)
			}
			tmpl, err := Parse(string(src))
			if err != nil {
				if hfErr != nil {
					return
				}
				t.Fatal(err)
			}
			tmpl.BOS, tmpl.EOS = "<s>", "</s>"
			tmpl.Now = func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }
			got, err := tmpl.Apply(hfConversation, true)
			if reason, ok := hfStricter[name]; ok {
				if hfErr == nil {
					t.Fatalf("listed as failing in Hugging Face's engine (%s), but it rendered", reason)
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range hfConversation {
					if !strings.Contains(got, strings.TrimSpace(m.Content)) {
						t.Errorf("message %q missing from %q", m.Content, got)
					}
				}
				return
			}
			switch {
			case hfErr != nil && err == nil:
				t.Errorf("rendered, but Hugging Face's engine failed with %q", strings.TrimSpace(string(hfErr)))
			case hfErr == nil && err != nil:
				t.Fatal(err)
			case hfErr == nil && got != string(want):
				t.Errorf("\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.jinja")
	if err := os.WriteFile(file, []byte("{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"), 0o644); err != nil {
		t.Fatal(err)
	}
	msgs := []Message{{"user", "hi"}}
	for _, tc := range []struct{ override, model, want string }{
		{"", "", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"}, // llama.cpp's default: chatml
		{"llama3", "", "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{file, "{{ 'model' }}", "[user]hi"},
		{"", "{% for m in messages %}<{{ m.content }}>{% endfor %}", "<hi>"},
		{"zephyr", "{{ 'model' }}", "<|user|>\nhi<|endoftext|>\n<|assistant|>\n"},
	} {
		tmpl, err := Select(tc.override, tc.model)
		if err != nil {
			t.Fatalf("Select(%q, %q): %v", tc.override, tc.model, err)
		}
		got, err := tmpl.Apply(msgs, true)
		if err != nil || got != tc.want {
			t.Errorf("Select(%q, %q): got %q, %v; want %q", tc.override, tc.model, got, err, tc.want)
		}
	}
	if _, err := Select("no-such-format", ""); err == nil || !strings.Contains(err.Error(), "chatml") {
		t.Errorf("unknown name: %v, want an error listing the built-in names", err)
	}
	if _, err := Select("", "{% if %}"); err == nil || !strings.Contains(err.Error(), MetadataKey) {
		t.Errorf("broken model template: %v, want an error naming %s", err, MetadataKey)
	}
}

func TestSystemFolded(t *testing.T) {
	// Gemma's template raises on a system role; llama.cpp folds the system text into the
	// first user turn with a newline (its expected output for google/gemma-7b-it).
	tmpl, err := Parse("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Apply([]Message{{"system", "S"}, {"user", "U"}, {"assistant", "A"}}, false)
	if want := "<user>S\nU<assistant>A"; err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
}

func TestStrftime(t *testing.T) {
	at := time.Date(2026, 12, 6, 9, 5, 7, 0, time.UTC)
	for format, want := range map[string]string{
		"%d %b %Y":                      "06 Dec 2026", // Llama 3.2
		"%B %d, %Y":                     "December 06, 2026",
		"%Y-%m-%d %H:%M:%S %A %a %% %q": "2026-12-06 09:05:07 Sunday Sun % %q",
	} {
		if got := strftime(at, format); got != want {
			t.Errorf("strftime(%q) = %q, want %q", format, got, want)
		}
	}
}

// Real templates of a family render a plain conversation as llama.cpp's built-in format for
// it does (after the template's own BOS text): a second check of the formats, on templates
// from llama.cpp's models/templates rendered by @huggingface/jinja (testdata/hf).
func TestBuiltinFormatsMatchRealTemplates(t *testing.T) {
	for _, tc := range []struct{ template, format, bos string }{
		{"Qwen-Qwen2.5-7B-Instruct", "chatml", ""},
		{"Qwen-Qwen3-0.6B", "chatml", ""},
		{"LFM2.5-Instruct", "chatml", "<s>"},
		{"microsoft-Phi-3.5-mini-instruct", "phi3", ""},
		{"moonshotai-Kimi-K2", "kimi-k2", ""},
		{"Kimi-K2-Instruct", "kimi-k2", ""},
		{"llama-cpp-rwkv-world", "rwkv-world", "<s>"},
		{"ibm-granite-granite-4.0", "granite-4.0", ""},
		{"ibm-granite-granite-4.1", "granite-4.1", ""},
	} {
		src, err := os.ReadFile(filepath.Join("testdata/templates", tc.template+".jinja"))
		if err != nil {
			t.Fatal(err)
		}
		if got := Detect(string(src)); got != tc.format {
			t.Errorf("%s: detected %q, want %q", tc.template, got, tc.format)
			continue
		}
		want, err := os.ReadFile(filepath.Join("testdata/hf", tc.template+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		tmpl, _ := Named(tc.format)
		got, _ := tmpl.Apply(hfConversation, true)
		if tc.bos+got != string(want) {
			t.Errorf("%s: format %s wrote %q\nthe template renders %q", tc.template, tc.format, tc.bos+got, want)
		}
	}
}

func TestEndOfTurn(t *testing.T) {
	for name, want := range map[string]string{
		"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "phi3": "<|end|>", "gemma": "<end_of_turn>",
		"zephyr": "<|endoftext|>", "deepseek3": "<｜end▁of▁sentence｜>", "mistral-v7": "</s>",
	} {
		tmpl, _ := Named(name)
		if got := tmpl.EndOfTurn(); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}
