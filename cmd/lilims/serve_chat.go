package main

import (
	"strings"

	"github.com/lilims/lilims/internal/server"
	"github.com/lilims/lilims/stages/loader/tokenizer"
)

// chatFormatter renders a conversation as ChatML (llama.cpp's default template when a model
// has none). Placeholder until the chat-template package lands.
func chatFormatter(tok *tokenizer.Tokenizer) server.ChatFormatter {
	return func(msgs []server.Message) (string, error) {
		var b strings.Builder
		for _, m := range msgs {
			b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
		}
		b.WriteString("<|im_start|>assistant\n")
		return b.String(), nil
	}
}
