package chattmpl

import (
	"sort"
	"strings"
)

// A namedFormat writes a conversation in one of llama.cpp's built-in chat formats (its
// src/llama-chat.cpp, llm_chat_apply_template): the formats it uses when a model carries no
// template, when the user names one, or when a template is recognised as one of them.
type namedFormat func(b *strings.Builder, msgs []Message, addGenerationPrompt bool)

// trim strips ASCII white space from both ends, as llama-chat.cpp's trim (isspace).
func trim(s string) string { return strings.Trim(s, " \t\n\v\f\r") }

// formats maps each name llama.cpp accepts (its LLM_CHAT_TEMPLATES table) to its format.
var formats = map[string]namedFormat{
	"chatml":            turns("<|im_start|>{role}\n", "<|im_end|>\n", "<|im_start|>assistant\n"),
	"llama2":            llama2(false, false, false),
	"llama2-sys":        llama2(true, false, false),
	"llama2-sys-bos":    llama2(true, true, false),
	"llama2-sys-strip":  llama2(true, false, true),
	"mistral-v1":        mistralV1V3(" ", " ", false),
	"mistral-v3":        mistralV1V3("", " ", true),
	"mistral-v3-tekken": mistralV1V3("", "", false),
	"mistral-v7":        mistralV7(" "),
	"mistral-v7-tekken": mistralV7(""),
	"phi3":              turns("<|{role}|>\n", "<|end|>\n", "<|assistant|>\n"),
	"phi4":              turns("<|im_start|>{role}<|im_sep|>", "<|im_end|>", "<|im_start|>assistant<|im_sep|>"),
	"falcon3":           turns("<|{role}|>\n", "\n", "<|assistant|>\n"),
	"zephyr":            turns("<|{role}|>\n", "<|endoftext|>\n", "<|assistant|>\n"),
	"monarch": func(b *strings.Builder, msgs []Message, gen bool) {
		for i, m := range msgs {
			if i > 0 { // the BOS of the first message is the tokenizer's
				b.WriteString("<s>")
			}
			b.WriteString(m.Role + "\n" + m.Content + "</s>\n")
		}
		if gen {
			b.WriteString("<s>assistant\n")
		}
	},
	"gemma": func(b *strings.Builder, msgs []Message, gen bool) {
		// Gemma has no system role: the system text opens the next user turn.
		system := ""
		for _, m := range msgs {
			if m.Role == "system" {
				system += trim(m.Content)
				continue
			}
			role := m.Role
			if role == "assistant" {
				role = "model"
			}
			b.WriteString("<start_of_turn>" + role + "\n")
			if system != "" && role != "model" {
				b.WriteString(system + "\n\n")
				system = ""
			}
			b.WriteString(trim(m.Content) + "<end_of_turn>\n")
		}
		if gen {
			b.WriteString("<start_of_turn>model\n")
		}
	},
	"orion": func(b *strings.Builder, msgs []Message, _ bool) {
		system := ""
		for _, m := range msgs {
			switch m.Role {
			case "system":
				system += m.Content
			case "user":
				b.WriteString("Human: ")
				if system != "" {
					b.WriteString(system + "\n\n")
					system = ""
				}
				b.WriteString(m.Content + "\n\nAssistant: </s>")
			default:
				b.WriteString(m.Content + "</s>")
			}
		}
	},
	"openchat": func(b *strings.Builder, msgs []Message, gen bool) {
		for _, m := range msgs {
			if m.Role == "system" {
				b.WriteString(m.Content + "<|end_of_turn|>")
				continue
			}
			role := m.Role
			if role != "" {
				role = strings.ToUpper(role[:1]) + role[1:]
			}
			b.WriteString("GPT4 Correct " + role + ": " + m.Content + "<|end_of_turn|>")
		}
		if gen {
			b.WriteString("GPT4 Correct Assistant:")
		}
	},
	"vicuna":      vicuna(false),
	"vicuna-orca": vicuna(true),
	"deepseek": byRole(map[string][2]string{
		"system":    {"", ""},
		"user":      {"### Instruction:\n", "\n"},
		"assistant": {"### Response:\n", "\n<|EOT|>\n"},
	}, "### Response:\n"),
	"deepseek2": byRole(map[string][2]string{
		"system":    {"", "\n\n"},
		"user":      {"User: ", "\n\n"},
		"assistant": {"Assistant: ", "<｜end▁of▁sentence｜>"},
	}, "Assistant:"),
	"deepseek3": byRole(map[string][2]string{
		"system":    {"", "\n\n"},
		"user":      {"<｜User｜>", ""},
		"assistant": {"<｜Assistant｜>", "<｜end▁of▁sentence｜>"},
	}, "<｜Assistant｜>"),
	"deepseek-ocr": func(b *strings.Builder, msgs []Message, _ bool) {
		for _, m := range msgs {
			b.WriteString(m.Content)
		}
	},
	"command-r": trimmed(byRole(map[string][2]string{
		"system":    {"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
		"user":      {"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
		"assistant": {"<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
	}, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>")),
	"llama3":   trimmed(turns("<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n")),
	"chatglm3": prefixed("[gMASK]sop", turns("<|{role}|>\n ", "", "<|assistant|>")),
	"chatglm4": prefixed("[gMASK]<sop>", turns("<|{role}|>\n", "", "<|assistant|>\n")),
	"glmedge":  turns("<|{role}|>\n", "", "<|assistant|>"),
	"minicpm": func(b *strings.Builder, msgs []Message, _ bool) {
		for _, m := range msgs {
			if m.Role == "user" {
				b.WriteString("<用户>" + trim(m.Content) + "<AI>")
			} else {
				b.WriteString(trim(m.Content))
			}
		}
	},
	"exaone3": exaone(false),
	"exaone4": exaone(true),
	"exaone-moe": trimmed(byRole(map[string][2]string{
		"system":    {"<|system|>\n", "<|endofturn|>\n"},
		"user":      {"<|user|>\n", "<|endofturn|>\n"},
		"assistant": {"<|assistant|>\n", "<|endofturn|>\n"},
		"tool":      {"<|tool|>\n", "<|endofturn|>\n"},
	}, "<|assistant|>\n")),
	"rwkv-world": func(b *strings.Builder, msgs []Message, _ bool) {
		// The model's end of turn is "\n\n".
		for i, m := range msgs {
			switch m.Role {
			case "system":
				b.WriteString("System: " + trim(m.Content) + "\n\n")
			case "user":
				b.WriteString("User: " + trim(m.Content) + "\n\n")
				if i == len(msgs)-1 {
					b.WriteString("Assistant:")
				}
			case "assistant":
				b.WriteString("Assistant: " + trim(m.Content) + "\n\n")
			}
		}
	},
	"granite":     granite(false),
	"granite-4.0": granite(true),
	"granite-4.1": granite(true),
	"gigachat": func(b *strings.Builder, msgs []Message, gen bool) {
		rest := msgs
		b.WriteString("<s>")
		if len(msgs) > 0 && msgs[0].Role == "system" {
			b.WriteString(msgs[0].Content + "<|message_sep|>")
			rest = msgs[1:]
		}
		for _, m := range rest {
			switch m.Role {
			case "user":
				b.WriteString("user<|role_sep|>" + m.Content + "<|message_sep|>available functions<|role_sep|>[]<|message_sep|>")
			case "assistant":
				b.WriteString("assistant<|role_sep|>" + m.Content + "<|message_sep|>")
			}
		}
		if gen {
			b.WriteString("assistant<|role_sep|>")
		}
	},
	"megrez": turns("<|role_start|>{role}<|role_end|>", "<|turn_end|>", "<|role_start|>assistant<|role_end|>"),
	"yandex": byRole(map[string][2]string{
		"user":      {" Пользователь: ", "\n\n"},
		"assistant": {" Ассистент: ", "\n\n"},
	}, " Ассистент:[SEP]"),
	"bailing":       bailing(""),
	"bailing-think": bailing("<think>"),
	"bailing2": func(b *strings.Builder, msgs []Message, gen bool) {
		if len(msgs) == 0 || msgs[0].Role != "system" {
			b.WriteString("<role>SYSTEM</role>detailed thinking off<|role_end|>")
		}
		for _, m := range msgs {
			b.WriteString("<role>" + bailingRole(m.Role) + "</role>" + m.Content + "<|role_end|>")
		}
		if gen {
			b.WriteString("<role>ASSISTANT</role>")
		}
	},
	"llama4": trimmed(turns("<|header_start|>{role}<|header_end|>\n\n", "<|eot|>", "<|header_start|>assistant<|header_end|>\n\n")),
	"smolvlm": func(b *strings.Builder, msgs []Message, gen bool) {
		b.WriteString("<|im_start|>") // SmolVLM's BOS; the turns are not ChatML
		for _, m := range msgs {
			switch m.Role {
			case "system":
				b.WriteString(m.Content + "\n\n")
			case "user":
				b.WriteString("User: " + m.Content + "<end_of_utterance>\n")
			default:
				b.WriteString("Assistant: " + m.Content + "<end_of_utterance>\n")
			}
		}
		if gen {
			b.WriteString("Assistant:")
		}
	},
	"dots1": func(b *strings.Builder, msgs []Message, gen bool) {
		for _, m := range msgs {
			switch m.Role {
			case "system":
				b.WriteString("<|system|>" + m.Content + "<|endofsystem|>")
			case "user":
				b.WriteString("<|userprompt|>" + m.Content + "<|endofuserprompt|>")
			default:
				b.WriteString("<|response|>" + m.Content + "<|endofresponse|>")
			}
		}
		if gen {
			b.WriteString("<|response|>")
		}
	},
	"hunyuan-moe": func(b *strings.Builder, msgs []Message, _ bool) {
		for _, m := range msgs {
			switch m.Role {
			case "system":
				b.WriteString("<|startoftext|>" + m.Content + "<|extra_4|>")
			case "assistant":
				b.WriteString(m.Content + "<|eos|>")
			default:
				b.WriteString("<|startoftext|>" + m.Content + "<|extra_0|>")
			}
		}
	},
	"gpt-oss": func(b *strings.Builder, msgs []Message, gen bool) {
		for _, m := range msgs {
			end := "<|end|>"
			if m.Role == "assistant" {
				end = "<|return|>"
			}
			b.WriteString("<|start|>" + m.Role + "<|message|>" + m.Content + end)
		}
		if gen {
			b.WriteString("<|start|>assistant")
		}
	},
	"hunyuan-dense": func(b *strings.Builder, msgs []Message, _ bool) {
		for i, m := range msgs {
			if i == 0 && m.Role == "system" {
				b.WriteString(m.Content + "<｜hy_place▁holder▁no▁3｜>")
			}
			switch m.Role {
			case "assistant":
				b.WriteString("<｜hy_Assistant｜>" + m.Content + "<｜hy_place▁holder▁no▁2｜>")
			case "user":
				b.WriteString("<｜hy_User｜>" + m.Content + "<｜hy_Assistant｜>")
			}
		}
	},
	"hunyuan-vl": func(b *strings.Builder, msgs []Message, _ bool) {
		b.WriteString("<｜hy_begin▁of▁sentence｜>")
		for i, m := range msgs {
			switch {
			case i == 0 && m.Role == "system":
				b.WriteString(m.Content + "<｜hy_place▁holder▁no▁3｜>")
			case m.Role == "user":
				b.WriteString(m.Content + "<｜hy_User｜>")
			case m.Role == "assistant":
				b.WriteString(m.Content + "<｜hy_Assistant｜>")
			}
		}
	},
	"kimi-k2": func(b *strings.Builder, msgs []Message, gen bool) {
		heads := map[string]string{
			"system":    "<|im_system|>system<|im_middle|>",
			"user":      "<|im_user|>user<|im_middle|>",
			"assistant": "<|im_assistant|>assistant<|im_middle|>",
			"tool":      "<|im_system|>tool<|im_middle|>",
		}
		for _, m := range msgs {
			b.WriteString(heads[m.Role] + m.Content + "<|im_end|>")
		}
		if gen {
			b.WriteString("<|im_assistant|>assistant<|im_middle|>")
		}
	},
	"seed_oss": func(b *strings.Builder, msgs []Message, gen bool) {
		for _, m := range msgs {
			content := m.Content
			if m.Role == "assistant" {
				content = trim(content)
			}
			b.WriteString("<seed:bos>" + m.Role + "\n" + content + "<seed:eos>")
		}
		if gen {
			b.WriteString("<seed:bos>assistant\n")
		}
	},
	"grok-2": func(b *strings.Builder, msgs []Message, gen bool) {
		for _, m := range msgs {
			switch m.Role {
			case "system":
				b.WriteString("System: " + trim(m.Content) + "<|separator|>\n\n")
			case "user":
				b.WriteString("Human: " + trim(m.Content) + "<|separator|>\n\n")
			case "assistant":
				b.WriteString("Assistant: " + m.Content + "<|separator|>\n\n")
			}
		}
		if gen {
			b.WriteString("Assistant:")
		}
	},
	"pangu-embedded": func(b *strings.Builder, msgs []Message, gen bool) {
		names := map[string]string{"system": "系统", "user": "用户", "assistant": "助手", "tool": "工具", "function": "方法"}
		for i, m := range msgs {
			if i == 0 && m.Role != "system" {
				b.WriteString("[unused9]系统：[unused10]")
			}
			if n, ok := names[m.Role]; ok {
				b.WriteString("[unused9]" + n + "：" + m.Content + "[unused10]")
			}
		}
		if gen {
			b.WriteString("[unused9]助手：")
		}
	},
	"solar-open": turns("<|begin|>{role}<|content|>", "<|end|>", "<|begin|>assistant"),
}

// turns is a format in which every message is open (with {role} replaced by its role),
// its content and end, and a reply starts with reply.
func turns(open, end, reply string) namedFormat {
	return func(b *strings.Builder, msgs []Message, gen bool) {
		for _, m := range msgs {
			b.WriteString(strings.ReplaceAll(open, "{role}", m.Role) + m.Content + end)
		}
		if gen {
			b.WriteString(reply)
		}
	}
}

// byRole is a format in which a message is written between the opening and the end its role
// maps to (a role not in the map is left out), and a reply starts with reply.
func byRole(roles map[string][2]string, reply string) namedFormat {
	return func(b *strings.Builder, msgs []Message, gen bool) {
		for _, m := range msgs {
			if r, ok := roles[m.Role]; ok {
				b.WriteString(r[0] + m.Content + r[1])
			}
		}
		if gen {
			b.WriteString(reply)
		}
	}
}

// trimmed is f writing each message's content trimmed of white space.
func trimmed(f namedFormat) namedFormat {
	return func(b *strings.Builder, msgs []Message, gen bool) {
		t := make([]Message, len(msgs))
		for i, m := range msgs {
			t[i] = Message{m.Role, trim(m.Content)}
		}
		f(b, t, gen)
	}
}

// prefixed is f after a fixed opening.
func prefixed(opening string, f namedFormat) namedFormat {
	return func(b *strings.Builder, msgs []Message, gen bool) {
		b.WriteString(opening)
		f(b, msgs, gen)
	}
}

// Names lists the built-in format names, sorted.
func Names() []string {
	names := make([]string, 0, len(formats))
	for n := range formats {
		if n != "dots1" { // detected, but not a name llama.cpp accepts
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// llama2 is Llama 2's [INST] format. sys: the system text goes in <<SYS>> (else it just opens
// the first turn); bosInside: each later turn starts with <s>; strip: contents are trimmed.
func llama2(sys, bosInside, strip bool) namedFormat {
	return func(b *strings.Builder, msgs []Message, _ bool) {
		inTurn := true // the first [INST] is written here; its BOS is the tokenizer's
		b.WriteString("[INST] ")
		for _, m := range msgs {
			content := m.Content
			if strip {
				content = trim(content)
			}
			if !inTurn {
				inTurn = true
				if bosInside {
					b.WriteString("<s>")
				}
				b.WriteString("[INST] ")
			}
			switch m.Role {
			case "system":
				if sys {
					b.WriteString("<<SYS>>\n" + content + "\n<</SYS>>\n\n")
				} else {
					b.WriteString(content + "\n")
				}
			case "user":
				b.WriteString(content + " [/INST]")
			default:
				b.WriteString(content + "</s>")
				inTurn = false
			}
		}
	}
}

// mistralV1V3 is Mistral's v1, v3 and v3-tekken formats, which differ in the spaces around
// [INST] and in trimming the assistant's text.
func mistralV1V3(lead, trail string, trimAssistant bool) namedFormat {
	return func(b *strings.Builder, msgs []Message, _ bool) {
		inTurn := false
		for _, m := range msgs {
			if !inTurn {
				b.WriteString(lead + "[INST]" + trail)
				inTurn = true
			}
			switch m.Role {
			case "system":
				b.WriteString(m.Content + "\n\n")
			case "user":
				b.WriteString(m.Content + lead + "[/INST]")
			default:
				content := m.Content
				if trimAssistant {
					content = trim(content)
				}
				b.WriteString(trail + content + "</s>")
				inTurn = false
			}
		}
	}
}

// mistralV7 is Mistral's v7 format (v7-tekken without the spaces).
func mistralV7(space string) namedFormat {
	return func(b *strings.Builder, msgs []Message, _ bool) {
		for _, m := range msgs {
			switch m.Role {
			case "system":
				b.WriteString("[SYSTEM_PROMPT]" + space + m.Content + "[/SYSTEM_PROMPT]")
			case "user":
				b.WriteString("[INST]" + space + m.Content + "[/INST]")
			default:
				b.WriteString(space + m.Content + "</s>")
			}
		}
	}
}

func vicuna(orca bool) namedFormat {
	system := [2]string{"", "\n\n"}
	if orca {
		system = [2]string{"SYSTEM: ", "\n"}
	}
	return byRole(map[string][2]string{
		"system":    system,
		"user":      {"USER: ", "\n"},
		"assistant": {"ASSISTANT: ", "</s>\n"},
	}, "ASSISTANT:")
}

// exaone is EXAONE 3's format; EXAONE 4 adds the tool role.
func exaone(tool bool) namedFormat {
	roles := map[string][2]string{
		"system":    {"[|system|]", "[|endofturn|]\n"},
		"user":      {"[|user|]", "\n"},
		"assistant": {"[|assistant|]", "[|endofturn|]\n"},
	}
	if tool {
		roles["tool"] = [2]string{"[|tool|]", "[|endofturn|]\n"}
	}
	return trimmed(byRole(roles, "[|assistant|]"))
}

// granite is IBM Granite's format; from 4.0 a tool call is an assistant turn marked
// <|tool_call|> rather than a role of its own.
func granite(toolCallAsAssistant bool) namedFormat {
	return func(b *strings.Builder, msgs []Message, gen bool) {
		for _, m := range msgs {
			switch {
			case m.Role == "assistant_tool_call" && toolCallAsAssistant:
				b.WriteString("<|start_of_role|>assistant<|end_of_role|><|tool_call|>")
			case m.Role == "assistant_tool_call":
				b.WriteString("<|start_of_role|>" + m.Role + "<|end_of_role|><|tool_call|>")
			default:
				b.WriteString("<|start_of_role|>" + m.Role + "<|end_of_role|>")
			}
			b.WriteString(m.Content + "<|end_of_text|>\n")
		}
		if gen {
			b.WriteString("<|start_of_role|>assistant<|end_of_role|>")
		}
	}
}

func bailingRole(role string) string {
	if role == "user" {
		return "HUMAN"
	}
	return strings.ToUpper(role)
}

// bailing is Ling/Ring's format; the thinking variant opens the reply with <think>.
func bailing(opening string) namedFormat {
	return func(b *strings.Builder, msgs []Message, gen bool) {
		for _, m := range msgs {
			b.WriteString("<role>" + bailingRole(m.Role) + "</role>" + m.Content)
		}
		if gen {
			b.WriteString("<role>ASSISTANT</role>" + opening)
		}
	}
}
