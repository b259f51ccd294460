package chattmpl

import "strings"

// Detect names the built-in format a Jinja chat template writes, by the marker strings it
// contains, as llama.cpp's llm_chat_detect_template (src/llama-chat.cpp) does; the rules are
// tried in its order, since several templates hold markers of more than one family. A
// template that is itself a format name is that format. It returns "" for a template it does
// not recognise.
func Detect(tmpl string) string {
	if _, ok := formats[tmpl]; ok {
		return tmpl
	}
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(tmpl, x) {
				return false
			}
		}
		return true
	}
	switch {
	case has("<|im_start|>"):
		switch {
		case has("<|im_sep|>"):
			return "phi4"
		case has("<end_of_utterance>"): // SmolVLM: <|im_start|> is its BOS, the turns are not ChatML
			return "smolvlm"
		}
		return "chatml"
	case strings.HasPrefix(tmpl, "mistral") || has("[INST]"):
		return detectInst(tmpl, has)
	case has("<|assistant|>", "<|end|>"):
		return "phi3"
	case has("[gMASK]<sop>"):
		return "chatglm4"
	case has("<|assistant|>", "<|user|>"):
		switch {
		case has("<|tool_declare|>"):
			return "exaone-moe"
		case has("</s>"):
			return "falcon3"
		}
		return "glmedge"
	case has("<|{{ item['role'] }}|>", "<|begin_of_image|>"):
		return "glmedge"
	case has("<|user|>", "<|endoftext|>"):
		return "zephyr"
	case has("bos_token + message['role']"):
		return "monarch"
	case has("<start_of_turn>"):
		return "gemma"
	case has(`'\n\nAssistant: ' + eos_token`):
		return "orion"
	case has("GPT4 Correct "):
		return "openchat"
	case has("USER: ", "ASSISTANT: "):
		if has("SYSTEM: ") {
			return "vicuna-orca"
		}
		return "vicuna"
	case has("### Instruction:", "<|EOT|>"):
		return "deepseek"
	case has("<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"):
		return "command-r"
	case has("<|start_header_id|>", "<|end_header_id|>"):
		return "llama3"
	case has("[gMASK]sop"):
		return "chatglm3"
	case has("<用户>"):
		return "minicpm"
	case has("'Assistant: ' + message['content'] + eos_token"):
		return "deepseek2"
	case has("<｜Assistant｜>", "<｜User｜>", "<｜end▁of▁sentence｜>"):
		return "deepseek3"
	case has("[|system|]", "[|assistant|]", "[|endofturn|]"):
		if has("[|tool|]") {
			return "exaone4"
		}
		return "exaone3"
	case has("rwkv-world") || has(`{{- 'User: ' + message['content']|trim + '\n\n' -}}`):
		return "rwkv-world"
	case has("<|start_of_role|>"):
		if has("<tool_call>") || has("<tools>") {
			if has("g4_default_system_message") {
				return "granite-4.0"
			}
			return "granite-4.1"
		}
		return "granite"
	case has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"):
		return "gigachat"
	case has("<|role_start|>"):
		return "megrez"
	case has(" Ассистент:"):
		return "yandex"
	case has("<role>ASSISTANT</role>", "'HUMAN'"):
		return "bailing"
	case has("<role>ASSISTANT</role>", `"HUMAN"`, "<think>"):
		return "bailing-think"
	case has("<role>ASSISTANT</role>", "<role>HUMAN</role>", "<|role_end|>"):
		return "bailing2"
	case has("<|header_start|>", "<|header_end|>"):
		return "llama4"
	case has("<|endofuserprompt|>"):
		return "dots1"
	case has("<|extra_0|>", "<|extra_4|>"):
		return "hunyuan-moe"
	case has("<|start|>", "<|channel|>"):
		return "gpt-oss"
	case has("<｜hy_Assistant｜>", "<｜hy_begin▁of▁sentence｜>"):
		return "hunyuan-vl"
	case has("<｜hy_Assistant｜>", "<｜hy_place▁holder▁no▁3｜>"):
		return "hunyuan-dense"
	case has("<|im_assistant|>assistant<|im_middle|>"):
		return "kimi-k2"
	case has("<seed:bos>"):
		return "seed_oss"
	case has("'Assistant: '  + message['content'] + '<|separator|>"):
		return "grok-2"
	case has("[unused9]系统：[unused10]"):
		return "pangu-embedded"
	case has("<|begin|>", "<|end|>", "<|content|>"):
		return "solar-open"
	}
	return ""
}

// detectInst tells apart the [INST] families: Mistral v7 (a system prompt block), the
// official Mistral v1/v3/v3-tekken templates, and Llama 2 with its variants.
func detectInst(tmpl string, has func(...string) bool) string {
	switch {
	case has("[SYSTEM_PROMPT]"):
		return "mistral-v7"
	case has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]"):
		switch {
		case has(" [INST]"):
			return "mistral-v1"
		case has(`"[INST]"`):
			return "mistral-v3-tekken"
		}
		return "mistral-v3"
	case has("content.strip()"):
		return "llama2-sys-strip"
	case has("bos_token + '[INST]"):
		return "llama2-sys-bos"
	case has("<<SYS>>"):
		return "llama2-sys"
	}
	return "llama2"
}
