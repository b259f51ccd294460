package sdk

import (
	"fmt"
	"sort"

	"github.com/lilims/lilims/pipeline/plugin/pluginpb"
	"github.com/lilims/lilims/pipeline/stage"
)

// valueToPB encodes a parameter value; the types are stage.Params' (int64, float64, bool,
// string, []string), plus int for defaults written as Go literals.
func valueToPB(v any) (*pluginpb.Value, error) {
	switch x := v.(type) {
	case int:
		return &pluginpb.Value{Kind: &pluginpb.Value_Int{Int: int64(x)}}, nil
	case int64:
		return &pluginpb.Value{Kind: &pluginpb.Value_Int{Int: x}}, nil
	case float64:
		return &pluginpb.Value{Kind: &pluginpb.Value_Float{Float: x}}, nil
	case bool:
		return &pluginpb.Value{Kind: &pluginpb.Value_Bool{Bool: x}}, nil
	case string:
		return &pluginpb.Value{Kind: &pluginpb.Value_String_{String_: x}}, nil
	case []string:
		return &pluginpb.Value{Kind: &pluginpb.Value_Strings{Strings: &pluginpb.Strings{Values: x}}}, nil
	}
	return nil, fmt.Errorf("parameter value %v has type %T, which the plugin protocol does not carry", v, v)
}

func valueFromPB(v *pluginpb.Value) any {
	switch x := v.GetKind().(type) {
	case *pluginpb.Value_Int:
		return x.Int
	case *pluginpb.Value_Float:
		return x.Float
	case *pluginpb.Value_Bool:
		return x.Bool
	case *pluginpb.Value_String_:
		return x.String_
	case *pluginpb.Value_Strings:
		return append([]string{}, x.Strings.GetValues()...)
	}
	return nil
}

// ParamsToPB encodes validated parameters.
func ParamsToPB(p stage.Params) (map[string]*pluginpb.Value, error) {
	out := make(map[string]*pluginpb.Value, len(p))
	for k, v := range p {
		pv, err := valueToPB(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = pv
	}
	return out, nil
}

// ParamsFromPB decodes parameters.
func ParamsFromPB(m map[string]*pluginpb.Value) stage.Params {
	out := make(stage.Params, len(m))
	for k, v := range m {
		out[k] = valueFromPB(v)
	}
	return out
}

// SpecToPB encodes a stage description.
func SpecToPB(s stage.Spec) (*pluginpb.Spec, error) {
	out := &pluginpb.Spec{Uses: s.Uses, Kind: string(s.Kind), Doc: s.Doc}
	for _, p := range s.Params {
		ps := &pluginpb.ParamSpec{Name: p.Name, Type: string(p.Type), Required: p.Required, Enum: p.Enum, Doc: p.Doc}
		if p.Default != nil {
			d, err := valueToPB(p.Default)
			if err != nil {
				return nil, fmt.Errorf("%s: parameter %s: default: %w", s.Uses, p.Name, err)
			}
			ps.Default = d
		}
		out.Params = append(out.Params, ps)
	}
	return out, nil
}

// SpecFromPB decodes a stage description and checks what the host relies on: a known kind
// and a `uses:` name prefixed by it, typed parameters.
func SpecFromPB(p *pluginpb.Spec) (stage.Spec, error) {
	s := stage.Spec{Uses: p.GetUses(), Kind: stage.Kind(p.GetKind()), Doc: p.GetDoc()}
	switch s.Kind {
	case stage.KindLoader, stage.KindQuantize, stage.KindExport, stage.KindCompile, stage.KindRuntime, stage.KindSampler:
	default:
		return s, fmt.Errorf("stage %q has unknown kind %q", s.Uses, s.Kind)
	}
	if len(s.Uses) <= len(s.Kind)+1 || s.Uses[:len(s.Kind)+1] != string(s.Kind)+"/" {
		return s, fmt.Errorf("stage %q of kind %s must be named %s/NAME", s.Uses, s.Kind, s.Kind)
	}
	for _, pp := range p.GetParams() {
		ps := stage.ParamSpec{Name: pp.GetName(), Type: stage.ParamType(pp.GetType()), Required: pp.GetRequired(),
			Enum: pp.GetEnum(), Doc: pp.GetDoc()}
		switch ps.Type {
		case stage.Int, stage.Float, stage.Bool, stage.String, stage.Path, stage.Strings:
		default:
			return s, fmt.Errorf("stage %q: parameter %q has unknown type %q", s.Uses, ps.Name, ps.Type)
		}
		if pp.Default != nil {
			ps.Default = valueFromPB(pp.Default)
		}
		s.Params = append(s.Params, ps)
	}
	return s, nil
}

// ArtifactToPB and ArtifactFromPB convert artifacts: a kind, a path and small facts.
func ArtifactToPB(a stage.Artifact) *pluginpb.Artifact {
	return &pluginpb.Artifact{Kind: a.Kind, Path: a.Path, Meta: a.Meta}
}

func ArtifactFromPB(a *pluginpb.Artifact) stage.Artifact {
	out := stage.Artifact{Kind: a.GetKind(), Path: a.GetPath()}
	if len(a.GetMeta()) > 0 {
		out.Meta = make(map[string]string, len(a.Meta))
		for k, v := range a.Meta {
			out.Meta[k] = v
		}
	}
	return out
}

func eventToPB(e stage.Event) *pluginpb.Event {
	return &pluginpb.Event{Event: e.Event, Done: e.Done, Total: e.Total, Unit: e.Unit, Msg: e.Msg}
}

func eventFromPB(e *pluginpb.Event) stage.Event {
	return stage.Event{Event: e.GetEvent(), Done: e.GetDone(), Total: e.GetTotal(), Unit: e.GetUnit(), Msg: e.GetMsg()}
}

func sortedUses[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
