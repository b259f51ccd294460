package pipeline

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// SweepAxis is one entry of a pipeline's `sweep:` mapping: a STAGE.PARAM and the values a
// comparison tries for it, e.g. `quantize.scheme: [block, channel, lut4]`.
type SweepAxis struct {
	Stage, Param string
	Values       []any // as --set would read them; coerced to the parameter's type by Resolve
	Pos          Pos
}

// maxVariants bounds the Cartesian product of a sweep: each variant is a full build.
const maxVariants = 64

func parseSweep(n *yaml.Node, fail func(*yaml.Node, string, ...any), env func(string) (string, bool)) []SweepAxis {
	if n.Kind != yaml.MappingNode {
		fail(n, "sweep must be a mapping of STAGE.PARAM: [values]")
		return nil
	}
	var axes []SweepAxis
	seen := map[string]bool{}
	combos := 1
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			fail(k, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		stageID, param, ok := strings.Cut(k.Value, ".")
		if !ok || stageID == "" || param == "" {
			fail(k, "sweep key %q: want STAGE.PARAM (e.g. quantize.scheme)", k.Value)
			continue
		}
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			fail(v, "sweep %s: want a non-empty list of values", k.Value)
			continue
		}
		ax := SweepAxis{Stage: stageID, Param: param, Pos: Pos{k.Line, k.Column}}
		for _, c := range v.Content {
			ax.Values = append(ax.Values, value(c, fail, env, false))
		}
		combos *= len(ax.Values)
		if combos > maxVariants {
			fail(v, "sweep has more than %d combinations; split it into several pipelines", maxVariants)
			return axes
		}
		axes = append(axes, ax)
	}
	return axes
}

// Variant is one point of a sweep: the pipeline with the sweep's values applied.
type Variant struct {
	Label string   // "scheme=lut4" (several axes joined by ",")
	Sets  []string // the overrides in --set form: "quantize.scheme=lut4"
	Spec  *Spec    // a copy of the pipeline with Sets applied and without the sweep
}

// Variants expands the sweep into one Spec per combination of values (the first axis varies
// slowest). A pipeline without a sweep is a single variant with an empty label. Resolve each
// variant before building it: the values are checked against the stage's parameter types there.
func (s *Spec) Variants() ([]Variant, error) {
	type point struct {
		ax *SweepAxis
		v  any
	}
	combos := [][]point{nil}
	for i := range s.Sweep {
		ax := &s.Sweep[i]
		var next [][]point
		for _, prefix := range combos {
			for _, v := range ax.Values {
				next = append(next, append(append([]point{}, prefix...), point{ax, v}))
			}
		}
		combos = next
	}
	out := make([]Variant, 0, len(combos))
	for _, combo := range combos {
		c := s.Clone()
		c.Sweep = nil
		v := Variant{Spec: c}
		labels := make([]string, len(combo))
		for i, p := range combo {
			st := c.Stage(p.ax.Stage)
			if st == nil {
				return nil, &PosError{Path: s.Path, Pos: p.ax.Pos,
					Msg: fmt.Sprintf("sweep: no stage with id %q (stages: %s)", p.ax.Stage, strings.Join(s.ids(), ", "))}
			}
			// Applied as a value, not re-parsed from text, so "0.10" stays what the file says;
			// errors at resolution point at the sweep entry.
			st.With[p.ax.Param] = p.v
			st.WithPos[p.ax.Param] = p.ax.Pos
			labels[i] = fmt.Sprintf("%s=%v", p.ax.Param, p.v)
			v.Sets = append(v.Sets, fmt.Sprintf("%s.%s=%v", p.ax.Stage, p.ax.Param, p.v))
		}
		v.Label = strings.Join(labels, ",")
		out = append(out, v)
	}
	return out, nil
}
