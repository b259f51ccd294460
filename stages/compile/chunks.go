package compile

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// ValidateChunks validates every package of the chunked export at dir and the chain between
// them: each package's program (as Validate does), and for every function, that chunk i > 0
// takes hidden_states of the shape and dtype chunk i−1 outputs as hidden_states_out, that
// only the first takes input_ids and only the last outputs logits. Every problem of every
// chunk is reported.
func ValidateChunks(dir string) error {
	idx, err := mlpackage.ReadChunkIndex(dir)
	if err != nil {
		return err
	}
	pkgs := idx.Packages(dir)
	var problems []string
	var prevOut map[string]*milpb.FeatureDescription // function → previous chunk's hidden_states_out
	for i, p := range pkgs {
		name := filepath.Base(p)
		out, errs := validateChunk(p, i, len(pkgs), prevOut)
		for _, e := range errs {
			problems = append(problems, name+": "+e)
		}
		prevOut = out
	}
	if len(problems) > 0 {
		return &ValidationError{Path: dir, Problems: problems}
	}
	return nil
}

// validateChunk checks chunk i of n and returns its hidden_states_out per function.
func validateChunk(path string, i, n int, prevOut map[string]*milpb.FeatureDescription) (map[string]*milpb.FeatureDescription, []string) {
	pkg, err := mlpackage.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, []string{"the index lists it, but it does not exist"}
		}
		return nil, []string{err.Error()}
	}
	defer pkg.Close()
	var problems []string
	for _, e := range CheckModel(pkg.Model) {
		problems = append(problems, e.Error())
	}
	out := map[string]*milpb.FeatureDescription{}
	fds := pkg.Model.GetDescription().GetFunctions()
	if len(fds) == 0 {
		return out, append(problems, "not a multifunction (prefill/decode) package")
	}
	for _, fd := range fds {
		fn := fd.GetName()
		in := feature(fd.GetInput(), "hidden_states")
		if ids := feature(fd.GetInput(), "input_ids"); (ids != nil) != (i == 0) {
			problems = append(problems, fmt.Sprintf("function %s: input_ids %s", fn, want(i == 0, "the first chunk only")))
		}
		if (in != nil) != (i > 0) {
			problems = append(problems, fmt.Sprintf("function %s: hidden_states input %s", fn, want(i > 0, "every chunk but the first")))
		}
		if in != nil && prevOut != nil {
			if prev, ok := prevOut[fn]; !ok {
				problems = append(problems, fmt.Sprintf("function %s: the previous chunk has no such function", fn))
			} else if !sameFeature(in, prev) {
				problems = append(problems, fmt.Sprintf("function %s: hidden_states is %s, the previous chunk outputs %s", fn, describe(in), describe(prev)))
			}
		}
		last := i == n-1
		if logits := feature(fd.GetOutput(), "logits"); (logits != nil) != last {
			problems = append(problems, fmt.Sprintf("function %s: logits output %s", fn, want(last, "the last chunk only")))
		}
		h := feature(fd.GetOutput(), "hidden_states_out")
		if (h != nil) == last {
			problems = append(problems, fmt.Sprintf("function %s: hidden_states_out output %s", fn, want(!last, "every chunk but the last")))
		}
		out[fn] = h
	}
	return out, problems
}

func want(should bool, who string) string {
	if should {
		return "is missing: it belongs to " + who
	}
	return "is unexpected: it belongs to " + who
}

func feature(fds []*milpb.FeatureDescription, name string) *milpb.FeatureDescription {
	for _, fd := range fds {
		if fd.GetName() == name {
			return fd
		}
	}
	return nil
}

func sameFeature(a, b *milpb.FeatureDescription) bool {
	x, y := a.GetType().GetMultiArrayType(), b.GetType().GetMultiArrayType()
	return x != nil && y != nil && x.GetDataType() == y.GetDataType() && slices.Equal(x.GetShape(), y.GetShape())
}

func describe(fd *milpb.FeatureDescription) string {
	a := fd.GetType().GetMultiArrayType()
	if a == nil {
		return "not a multi-array"
	}
	dims := make([]string, len(a.GetShape()))
	for i, d := range a.GetShape() {
		dims[i] = fmt.Sprint(d)
	}
	return fmt.Sprintf("%v [%s]", a.GetDataType(), strings.Join(dims, ", "))
}
