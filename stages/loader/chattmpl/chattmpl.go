// Package chattmpl turns a conversation into the prompt text a model was trained on. A GGUF's
// tokenizer.chat_template is a Jinja template (the Hugging Face convention); it is rendered
// with a Jinja engine (github.com/ardanlabs/jinja) and the variables that Hugging Face's
// apply_chat_template and llama.cpp pass (messages, add_generation_prompt, bos_token,
// eos_token, tools = none, raise_exception, strftime_now, and llama.cpp's date_string and
// datetime). A model without a template, or a
// user who names one, gets one of llama.cpp's built-in formats (src/llama-chat.cpp).
//
// The package renders text only: tokenizing it, and knowing which tokens end a turn, is the
// tokenizer's job (its end-of-generation set).
package chattmpl

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ardanlabs/jinja"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"` // system, user, assistant (tool … where a template knows it)
	Content string `json:"content"`
}

// MetadataKey is the GGUF key that holds a model's Jinja chat template.
const MetadataKey = "tokenizer.chat_template"

// DefaultName is the format used when a model carries no template, as llama.cpp does.
const DefaultName = "chatml"

// Template renders conversations in one chat format. It is safe for concurrent use.
type Template struct {
	name   string          // the built-in format's name, or "jinja"
	format namedFormat     // a built-in format, or nil
	jt     *jinja.Template // a Jinja template, or nil
	source string
	probe  sync.Once // rendersSystem's probe, run once
	system bool      // the Jinja template renders a system message

	// BOS and EOS are the model's begin- and end-of-sequence texts, which templates write
	// through bos_token and eos_token.
	BOS, EOS string
	// Now is the clock behind strftime_now (time.Now when nil).
	Now func() time.Time
}

// Parse compiles a Jinja chat template.
func Parse(source string) (*Template, error) {
	jt, err := jinja.Compile(source)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	return &Template{name: "jinja", jt: jt, source: source}, nil
}

// Named returns llama.cpp's built-in format of that name (see Names).
func Named(name string) (*Template, error) {
	f, ok := formats[name]
	if !ok || name == "dots1" {
		return nil, fmt.Errorf("unknown chat template %q (built-in: %s)", name, strings.Join(Names(), ", "))
	}
	return &Template{name: name, format: f}, nil
}

// Select picks the template a host uses: override, when given, is a built-in format's name or
// a Jinja template file; else the model's own template (its tokenizer.chat_template, empty
// when it has none); else DefaultName.
func Select(override, modelTemplate string) (*Template, error) {
	switch {
	case override != "":
		if _, ok := formats[override]; ok {
			return Named(override)
		}
		src, err := os.ReadFile(override)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("--chat-template %s: neither a built-in format (%s) nor a file", override, strings.Join(Names(), ", "))
			}
			return nil, fmt.Errorf("--chat-template: %w", err)
		}
		t, err := Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", override, err)
		}
		t.source = string(src)
		return t, nil
	case modelTemplate != "":
		t, err := Parse(modelTemplate)
		if err != nil {
			// A template the engine cannot compile is still recognisable by its markers.
			if name := Detect(modelTemplate); name != "" {
				return Named(name)
			}
			return nil, fmt.Errorf("%s: %w", MetadataKey, err)
		}
		return t, nil
	}
	return Named(DefaultName)
}

// Name is the built-in format's name, or "jinja" for a Jinja template.
func (t *Template) Name() string { return t.name }

// Source is the Jinja text of the template ("" for a built-in format).
func (t *Template) Source() string { return t.source }

// Apply renders msgs; with addGenerationPrompt the text ends with the opening of an assistant
// turn, ready for the model to write the reply.
func (t *Template) Apply(msgs []Message, addGenerationPrompt bool) (string, error) {
	if t.format != nil {
		var b strings.Builder
		t.format(&b, msgs, addGenerationPrompt)
		return b.String(), nil
	}
	if len(msgs) > 0 && msgs[0].Role == "system" && !t.rendersSystem() {
		msgs = foldSystem(msgs)
	}
	return t.render(msgs, addGenerationPrompt)
}

// EndOfTurn is the text the template writes right after an assistant's reply, trimmed of
// white space ("<|im_end|>" for ChatML, "<|eot_id|>" for Llama 3), or "" when it writes
// none. A host stops a reply there when that text is not one end-of-generation token of the
// model's vocabulary (a model without a template, on the chatml fallback).
func (t *Template) EndOfTurn() string {
	const reply = "<lilims reply probe>"
	out, err := t.Apply([]Message{{"user", "hi"}, {"assistant", reply}}, false)
	if err != nil {
		return ""
	}
	_, after, ok := strings.Cut(out, reply)
	if !ok {
		return ""
	}
	// The end is what follows up to white space or the next turn: the first line's text.
	after = strings.TrimLeft(after, " \t\r\n")
	if i := strings.IndexAny(after, "\n"); i >= 0 {
		after = after[:i]
	}
	return strings.TrimSpace(after)
}

// systemProbe is a system text no real conversation holds.
const systemProbe = "<lilims system probe>"

// rendersSystem reports whether the Jinja template writes a system message (some raise an
// error on one, others drop it), by rendering one.
func (t *Template) rendersSystem() bool {
	t.probe.Do(func() {
		out, err := t.render([]Message{{"system", systemProbe}, {"user", "hi"}}, true)
		t.system = err == nil && strings.Contains(out, systemProbe)
	})
	return t.system
}

// foldSystem moves a leading system message into the first user turn, separated by a
// newline, as llama.cpp does for templates without a system role (common/chat.cpp), so that
// --system still reaches such models.
func foldSystem(msgs []Message) []Message {
	out := slices.Clone(msgs[1:])
	for i := range out {
		if out[i].Role == "user" {
			out[i].Content = msgs[0].Content + "\n" + out[i].Content
			return out
		}
	}
	return append([]Message{{"user", msgs[0].Content}}, out...)
}

func (t *Template) render(msgs []Message, addGenerationPrompt bool) (string, error) {
	// Messages are dicts with keys in the order role, content, as Python and the Hugging Face
	// JavaScript engine keep them (a template may iterate over message.items()).
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(m.Role))
		d.AsDict().Set("content", jinja.NewString(m.Content))
		list[i] = d
	}
	now := t.Now
	if now == nil {
		now = time.Now
	}
	out, err := t.jt.RenderValues(map[string]jinja.Value{
		"messages":              jinja.NewList(list),
		"add_generation_prompt": jinja.NewBool(addGenerationPrompt),
		"bos_token":             jinja.NewString(t.BOS),
		"eos_token":             jinja.NewString(t.EOS),
		"tools":                 jinja.None(), // Hugging Face's apply_chat_template passes tools=None
		"strftime_now":          strftimeNow(now),
		// llama.cpp adds today's date under these names (common/chat.cpp,
		// common_chat_extra_context); Llama 3.1's template prints date_string.
		"date_string": jinja.NewString(strftime(now(), "%d %b %Y")),
		"datetime":    jinja.NewString(strftime(now(), "%b %d %Y")),
	})
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return out, nil
}

// strftimeNow is the strftime_now(format) function of Hugging Face's templates, over clock.
func strftimeNow(clock func() time.Time) jinja.Value {
	return jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		if len(args) != 1 || !args[0].IsString() {
			return jinja.Undefined(), errors.New("strftime_now: want one format string")
		}
		return jinja.NewString(strftime(clock(), args[0].AsString())), nil
	})
}

// strftime formats t with the C directives chat templates use (%Y %m %d %B %b %H %M %S %A %a
// %%); any other directive is left as written.
func strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'B':
			b.WriteString(t.Month().String())
		case 'b':
			b.WriteString(t.Month().String()[:3])
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}
