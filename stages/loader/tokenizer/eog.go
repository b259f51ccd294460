package tokenizer

// Special tokens llama.cpp recognises by their text when the metadata does not name them
// (src/llama-vocab.cpp, llama_vocab::impl::load, "auto-detect special tokens by text"). Each
// token found this way is forced to CONTROL, so it is no longer parsed from plain text.
var (
	eotTexts = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
		"<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"}
	eomTexts    = []string{"<|eom_id|>"}
	fimPreTexts = []string{"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
		"<|code_prefix|>", "<|prefix|>"}
	fimSufTexts = []string{"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
		"<|code_suffix|>", "<|suffix|>"}
	fimMidTexts = []string{"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
		"<|code_middle|>", "<|middle|>"}
	fimPadTexts = []string{"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}
	fimRepTexts = []string{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}
	fimSepTexts = []string{"<|file_sep|>"}

	// eogTexts end generation wherever they are in the vocabulary.
	eogTexts = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
		"<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]",
		"[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
		"<｜end▁of▁sentence｜>", "[e~["}

	// gpt-oss's channel tokens are always rendered: llama.cpp makes them USER_DEFINED.
	userDefinedTexts = []string{"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}
)

// markEOG computes the end-of-generation set and the attribute changes that go with it, in
// llama.cpp's order. llama.cpp walks its token map in hash order, so when a vocabulary holds
// several candidate texts for one role (<|eot_id|> and <|end_of_text|>, say) the one it picks
// is not specified; the first text of the list is picked here, which is what llama.cpp picks on
// the Llama 3, Qwen2 and Phi-3 vocabularies (testdata/oracle/vocab/llamacpp-eog.json).
func (t *Tokenizer) markEOG() {
	n := int32(len(t.v.Tokens))
	fim := FIMTokens{-1, -1, -1, -1, -1, -1}
	if t.v.FIM != nil {
		fim = *t.v.FIM
	}
	for _, id := range []*int32{&fim.Pre, &fim.Suf, &fim.Mid, &fim.Pad, &fim.Rep, &fim.Sep} {
		if *id < 0 || *id >= n {
			*id = -1
		}
	}
	detect := func(slot *int32, texts []string) {
		if *slot >= 0 {
			return
		}
		for _, text := range texts {
			if id, ok := t.tokenID[text]; ok {
				*slot = id
				t.attrs[id] |= attrControl
				return
			}
		}
	}
	detect(&t.v.EOT, eotTexts)
	detect(&t.v.EOM, eomTexts)
	detect(&fim.Pre, fimPreTexts)
	detect(&fim.Suf, fimSufTexts)
	detect(&fim.Mid, fimMidTexts)
	detect(&fim.Pad, fimPadTexts)
	detect(&fim.Rep, fimRepTexts)
	detect(&fim.Sep, fimSepTexts)
	t.v.FIM = &fim

	t.eog = map[int32]bool{}
	for _, id := range []int32{fim.Pad, fim.Rep, fim.Sep} {
		if id >= 0 {
			t.eog[id] = true
		}
	}
	for _, text := range eogTexts {
		if id, ok := t.tokenID[text]; ok {
			t.eog[id] = true
			t.attrs[id] |= attrControl
		}
	}
	for _, text := range userDefinedTexts {
		if id, ok := t.tokenID[text]; ok {
			t.attrs[id] = attrUserDefined
		}
	}
	for _, id := range []int32{t.v.EOS, t.v.EOT, t.v.EOM} {
		if id >= 0 {
			t.eog[id] = true
		}
	}
	isEOG := func(text string) (int32, bool) {
		id, ok := t.tokenID[text]
		return id, ok && t.eog[id]
	}
	// o200k_harmony and solar-open end a message with <|end|> but a turn with <|return|> or
	// <|call|> (<|calls|>, <|flush|>): there <|end|> is not EOG, and is always rendered.
	_, hasReturn := isEOG("<|return|>")
	_, hasCall := isEOG("<|call|>")
	_, hasCalls := isEOG("<|calls|>")
	_, hasFlush := isEOG("<|flush|>")
	if end, hasEnd := isEOG("<|end|>"); hasEnd && (hasCall || hasCalls) && (hasReturn || hasFlush) {
		delete(t.eog, end)
		t.attrs[end] = attrUserDefined
	}
	// Gemma 4 and PaddleOCR: </s> is an ordinary token next to <|tool_response>.
	if _, hasTool := isEOG("<|tool_response>"); hasTool {
		if s, ok := isEOG("</s>"); ok {
			delete(t.eog, s)
			t.attrs[s] = attrNormal
		}
	}
}
