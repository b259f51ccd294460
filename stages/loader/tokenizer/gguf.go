package tokenizer

import (
	"fmt"

	"github.com/lilims/lilims/stages/loader/gguf"
)

// GGUF metadata keys (llama.cpp llama-arch.cpp; note the "seperator" spelling).
const (
	keyModel       = "tokenizer.ggml.model"
	keyPre         = "tokenizer.ggml.pre"
	keyTokens      = "tokenizer.ggml.tokens"
	keyScores      = "tokenizer.ggml.scores"
	keyTypes       = "tokenizer.ggml.token_type"
	keyMerges      = "tokenizer.ggml.merges"
	keyBOS         = "tokenizer.ggml.bos_token_id"
	keyEOS         = "tokenizer.ggml.eos_token_id"
	keyUNK         = "tokenizer.ggml.unknown_token_id"
	keyEOT         = "tokenizer.ggml.eot_token_id"
	keyEOM         = "tokenizer.ggml.eom_token_id"
	keyPAD         = "tokenizer.ggml.padding_token_id"
	keySEP         = "tokenizer.ggml.seperator_token_id"
	keyAddBOS      = "tokenizer.ggml.add_bos_token"
	keyAddEOS      = "tokenizer.ggml.add_eos_token"
	keySpacePrefix = "tokenizer.ggml.add_space_prefix"
	keyName        = "general.name"

	keyLowercase    = "tokenizer.ggml.normalizer.lowercase"
	keyStripAccents = "tokenizer.ggml.normalizer.strip_accents"

	keyFIMPre = "tokenizer.ggml.fim_pre_token_id"
	keyFIMSuf = "tokenizer.ggml.fim_suf_token_id"
	keyFIMMid = "tokenizer.ggml.fim_mid_token_id"
	keyFIMPad = "tokenizer.ggml.fim_pad_token_id"
	keyFIMRep = "tokenizer.ggml.fim_rep_token_id"
	keyFIMSep = "tokenizer.ggml.fim_sep_token_id"
	// Deprecated spellings of the first three, read after them as llama.cpp does.
	keyPrefix = "tokenizer.ggml.prefix_token_id"
	keySuffix = "tokenizer.ggml.suffix_token_id"
	keyMiddle = "tokenizer.ggml.middle_token_id"
)

// VocabFromGGUF reads the tokenizer.ggml.* metadata of f, filling in llama.cpp's defaults for
// absent keys: SPM ("llama") bos 1, eos 2, unk 0, add_bos, add_space_prefix; BPE ("gpt2") bos and
// eos 11 (no bos for GLM-4), no unk, add_bos for the pre-tokenizers that ask for it (Llama 3,
// Tekken, Chameleon); Gemma 4's BPE ("gemma4") no default ids, always add_bos. Special ids out of the
// vocabulary's range are ignored (the default is kept, or dropped if it is out of range too).
// Errors name the key.
func VocabFromGGUF(f *gguf.File) (*Vocab, error) {
	v := &Vocab{BOS: -1, EOS: -1, UNK: -1, EOT: -1, EOM: -1, PAD: -1, SEP: -1,
		FIM: &FIMTokens{-1, -1, -1, -1, -1, -1}}
	var err error
	forceBOS := false
	if v.Model, err = f.GetString(keyModel); err != nil {
		return nil, err
	}
	if f.Has(keyPre) {
		if v.Pre, err = f.GetString(keyPre); err != nil {
			return nil, err
		}
	}
	if f.Has(keyName) {
		v.Name, _ = f.GetString(keyName) // only used to recognise Phi-3; a bad type is no error
	}
	if v.Tokens, err = f.GetStrings(keyTokens); err != nil {
		return nil, err
	}
	n := len(v.Tokens)
	if f.Has(keyScores) {
		val, _ := f.Get(keyScores)
		switch s := val.V.(type) {
		case []float32:
			v.Scores = s
		case []int32: // llama.cpp also accepts integer scores
			v.Scores = make([]float32, len(s))
			for i, x := range s {
				v.Scores[i] = float32(x)
			}
		default:
			return nil, fmt.Errorf("tokenizer: %s: has type %s, want array[float32] or array[int32]", keyScores, val.TypeName())
		}
		if len(v.Scores) < n {
			return nil, fmt.Errorf("tokenizer: %s: %d entries for %d tokens", keyScores, len(v.Scores), n)
		}
	}
	if f.Has(keyTypes) {
		if v.Types, err = f.GetInt32s(keyTypes); err != nil {
			return nil, err
		}
		if len(v.Types) < n {
			return nil, fmt.Errorf("tokenizer: %s: %d entries for %d tokens", keyTypes, len(v.Types), n)
		}
	}

	switch v.Model {
	case "llama":
		v.BOS, v.EOS, v.UNK = 1, 2, 0
		v.AddBOS, v.AddSpacePrefix = true, true
	case "bert":
		v.BOS, v.UNK, v.SEP, v.PAD = 101, 100, 102, 0
		v.AddBOS = true
	case "gpt2", "gemma4":
		// Kimi-K2 vocabularies may have no merges (llama.cpp skips them for it).
		if f.Has(keyMerges) || v.Pre != "kimi-k2" || v.Model != "gpt2" {
			if v.Merges, err = f.GetStrings(keyMerges); err != nil {
				return nil, err
			}
		}
		if v.Model == "gemma4" {
			v.Pre = "gemma4"
		} else {
			v.BOS, v.EOS = 11, 11
		}
		if pre, err := lookupPre(v.Pre); err == nil {
			v.AddBOS = pre.addBOS
			if pre.noBOS {
				v.BOS = -1
			}
			forceBOS = pre.newlineTokens
		}
	default:
		return nil, fmt.Errorf("tokenizer: %s: unsupported tokenizer %q", keyModel, v.Model)
	}

	for _, s := range []struct {
		key string
		id  *int32
	}{{keyBOS, &v.BOS}, {keyEOS, &v.EOS}, {keyEOT, &v.EOT}, {keyEOM, &v.EOM}, {keyUNK, &v.UNK}, {keySEP, &v.SEP}, {keyPAD, &v.PAD},
		{keyFIMPre, &v.FIM.Pre}, {keyFIMSuf, &v.FIM.Suf}, {keyFIMMid, &v.FIM.Mid}, {keyFIMPad, &v.FIM.Pad}, {keyFIMRep, &v.FIM.Rep}, {keyFIMSep, &v.FIM.Sep},
		{keyPrefix, &v.FIM.Pre}, {keySuffix, &v.FIM.Suf}, {keyMiddle, &v.FIM.Mid}} {
		if int(*s.id) >= n {
			*s.id = -1 // a default out of range is disabled
		}
		if !f.Has(s.key) {
			continue
		}
		id, err := f.GetUint(s.key)
		if err != nil {
			return nil, err
		}
		if id < uint64(n) { // llama.cpp warns and keeps the default otherwise (e.g. 0xFFFFFFFF)
			*s.id = int32(id)
		}
	}
	for _, b := range []struct {
		key string
		val *bool
	}{{keyAddBOS, &v.AddBOS}, {keyAddEOS, &v.AddEOS}, {keySpacePrefix, &v.AddSpacePrefix}} {
		if !f.Has(b.key) {
			continue
		}
		if *b.val, err = f.GetBool(b.key); err != nil {
			return nil, err
		}
	}
	v.Lowercase = true
	if f.Has(keyLowercase) {
		if v.Lowercase, err = f.GetBool(keyLowercase); err != nil {
			return nil, err
		}
	}
	v.StripAccents = v.Lowercase
	if f.Has(keyStripAccents) {
		if v.StripAccents, err = f.GetBool(keyStripAccents); err != nil {
			return nil, err
		}
	}
	if forceBOS {
		v.AddBOS = true // llama.cpp overrides add_bos_token for Gemma 4
	}
	return v, nil
}

// FromGGUF builds the tokenizer stored in f's metadata.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	t, err := New(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return t, nil
}
