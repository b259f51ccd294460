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
)

// VocabFromGGUF reads the tokenizer.ggml.* metadata of f, filling in llama.cpp's defaults for
// absent keys: SPM ("llama") bos 1, eos 2, unk 0, add_bos, add_space_prefix; BPE ("gpt2") bos and
// eos 11, no unk, add_bos only for the Llama-3 family of pre-tokenizers. Special ids out of the
// vocabulary's range are ignored (the default is kept, or dropped if it is out of range too).
// Errors name the key.
func VocabFromGGUF(f *gguf.File) (*Vocab, error) {
	v := &Vocab{BOS: -1, EOS: -1, UNK: -1, EOT: -1, EOM: -1, PAD: -1, SEP: -1}
	var err error
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
	case "gpt2":
		if v.Merges, err = f.GetStrings(keyMerges); err != nil {
			return nil, err
		}
		v.BOS, v.EOS = 11, 11
		if pre, ok := lookupPre(v.Pre); ok {
			v.AddBOS = pre.addBOS
		}
	default:
		return nil, fmt.Errorf("tokenizer: %s: unsupported tokenizer %q", keyModel, v.Model)
	}

	for _, s := range []struct {
		key string
		id  *int32
	}{{keyBOS, &v.BOS}, {keyEOS, &v.EOS}, {keyUNK, &v.UNK}, {keyEOT, &v.EOT}, {keyEOM, &v.EOM}, {keyPAD, &v.PAD}, {keySEP, &v.SEP}} {
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
