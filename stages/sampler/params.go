package sampler

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// FromMap reads sampling parameters from a stage's `with:` map, as decoded from YAML or JSON,
// over DefaultParams. Keys are the snake_case names temperature, top_k, top_p, min_p,
// typical_p, repeat_penalty, frequency_penalty, presence_penalty, penalty_last_n, seed,
// min_keep and stop (a string or a list of strings). Integers may arrive as any Go integer
// type or as an integral float64 (JSON). Unknown keys, mistyped values and invalid values are
// all reported, joined, each as a *ParamError naming its key.
func FromMap(m map[string]any) (Params, error) {
	p := DefaultParams()
	var errs []error
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report in a stable order

	for _, k := range keys {
		v := m[k]
		var err error
		switch k {
		case "temperature":
			p.Temperature, err = asFloat32(v)
		case "top_p":
			p.TopP, err = asFloat32(v)
		case "min_p":
			p.MinP, err = asFloat32(v)
		case "typical_p":
			p.TypicalP, err = asFloat32(v)
		case "repeat_penalty":
			p.RepeatPenalty, err = asFloat32(v)
		case "frequency_penalty":
			p.FrequencyPenalty, err = asFloat32(v)
		case "presence_penalty":
			p.PresencePenalty, err = asFloat32(v)
		case "top_k":
			p.TopK, err = asInt(v)
		case "penalty_last_n":
			p.PenaltyLastN, err = asInt(v)
		case "min_keep":
			p.MinKeep, err = asInt(v)
		case "seed":
			p.Seed, err = asSeed(v)
		case "stop":
			p.Stop, err = asStrings(v)
		default:
			err = errors.New("unknown sampler parameter")
		}
		if err != nil {
			errs = append(errs, &ParamError{Key: k, Msg: err.Error()})
		}
	}
	if len(errs) > 0 {
		return Params{}, errors.Join(errs...)
	}
	if err := p.Validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}

func describe(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("string %q", s)
	}
	return fmt.Sprintf("%T %v", v, v)
}

func asFloat32(v any) (float32, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		i, ok := integer(v)
		if !ok {
			return 0, fmt.Errorf("want a number, got %s", describe(v))
		}
		f = float64(i)
	}
	if math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
		return 0, fmt.Errorf("%v does not fit in float32", f)
	}
	return float32(f), nil
}

func asInt(v any) (int, error) {
	i, ok := integer(v)
	if !ok {
		return 0, fmt.Errorf("want an integer, got %s", describe(v))
	}
	if i < math.MinInt32 || i > math.MaxInt32 {
		return 0, fmt.Errorf("%d out of range", i)
	}
	return int(i), nil
}

// asSeed accepts any non-negative integer up to 2^64−1 (YAML decodes those above MaxInt64 as
// uint64).
func asSeed(v any) (uint64, error) {
	switch x := v.(type) {
	case uint64:
		return x, nil
	case uint:
		return uint64(x), nil
	}
	i, ok := integer(v)
	if !ok {
		return 0, fmt.Errorf("want a non-negative integer, got %s", describe(v))
	}
	if i < 0 {
		return 0, fmt.Errorf("want a non-negative integer, got %d", i)
	}
	return uint64(i), nil
}

// integer converts the integer kinds YAML and JSON decoders produce to int64; a float64 counts
// when it holds an integral value (JSON numbers).
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x), true
		}
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}

func asStrings(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []string:
		return append([]string(nil), x...), nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("entry %d: want a string, got %s", i, describe(e))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got %s", describe(v))
}

// Kind is the type of a sampling parameter's value.
type Kind int

const (
	Float   Kind = iota // a number (float32)
	Int                 // an integer
	Seed                // a non-negative integer up to 2^64−1
	Strings             // a string or a list of strings
)

// Parameter describes one key FromMap reads. Parameters is the one list of them: the sampler
// stage's declared parameters and the sampling flags of the commands derive from it.
type Parameter struct {
	Key     string // snake_case, as in a pipeline file
	Kind    Kind
	Default any // float64, int64 or nil (Strings), from DefaultParams
	Doc     string
}

// Parameters lists the sampling parameters with DefaultParams' values.
func Parameters() []Parameter {
	d := DefaultParams()
	return []Parameter{
		{"temperature", Float, f64(d.Temperature), "sampling temperature (≤ 0: greedy)"},
		{"top_k", Int, int64(d.TopK), "keep the K most likely tokens (≤ 0: off)"},
		{"top_p", Float, f64(d.TopP), "nucleus sampling threshold (1: off)"},
		{"min_p", Float, f64(d.MinP), "drop tokens below MIN_P × the top probability (0: off)"},
		{"typical_p", Float, f64(d.TypicalP), "locally typical sampling (1: off)"},
		{"repeat_penalty", Float, f64(d.RepeatPenalty), "penalise repeated tokens (1: off)"},
		{"frequency_penalty", Float, f64(d.FrequencyPenalty), "subtract count × this from repeated tokens' logits (0: off)"},
		{"presence_penalty", Float, f64(d.PresencePenalty), "subtract this from tokens already present (0: off)"},
		{"penalty_last_n", Int, int64(d.PenaltyLastN), "tokens the penalties look back (-1: all, 0: off)"},
		{"seed", Seed, int64(d.Seed), fmt.Sprintf("random seed (%d: a random one)", RandomSeed)},
		{"min_keep", Int, int64(d.MinKeep), "minimum candidates each filter keeps"},
		{"stop", Strings, nil, "stop strings"},
	}
}

// f64 widens a float32 default to the float64 with the same shortest decimal (0.8, not
// 0.800000011920929), as a pipeline file or --help writes it.
func f64(x float32) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	return f
}
