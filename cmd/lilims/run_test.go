package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	llamacpp "github.com/lilims/lilims/internal/oracle"
)

func loadRef(t *testing.T, model string) []llamacpp.Prompt {
	t.Helper()
	ref, err := llamacpp.Load(oracle)
	if err != nil {
		t.Fatal(err)
	}
	return ref.Models[model].Prompts
}

// The README's main job: greedy generation on stories260K prints llama.cpp's greedy_text.
func TestRunGreedyMatchesLlamaCpp(t *testing.T) {
	var want string
	for _, p := range loadRef(t, "stories260K.gguf") {
		if p.Prompt == "Once upon a time" {
			want = p.GreedyText
		}
	}
	if want == "" {
		t.Fatal("no reference for the prompt")
	}
	out, errOut, code := runCLI(t, "", "run", filepath.Join(oracle, "models", "stories260K.gguf"),
		"--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// llama.cpp: ", there was a little girl named Lily. She loved to play outside in the p"
	if got := strings.TrimSuffix(out, "\n"); got != want {
		t.Errorf("run printed %q\nllama.cpp greedy_text %q", got, want)
	}
	if !strings.Contains(errOut, "tok/s") {
		t.Errorf("no tokens/s summary on stderr: %q", errOut)
	}
}

// score --json through the default pipeline agrees with llama.cpp: max |Δp| ≤ 0.005 over the
// 20 listed tokens of every step (f16 model), argmax equal where llama.cpp's margin > 0.02.
func TestScoreMatchesLlamaCpp(t *testing.T) {
	scoreMatchesLlamaCpp(t, filepath.Join(oracle, "models", "tiny-phi2-f16.gguf"), loadRef(t, "tiny-phi2-f16.gguf"), 1024)
}

// scoreMatchesLlamaCpp scores each reference prompt's tokens through model (top of the
// whole vocabulary) and checks the probabilities against llama.cpp's: max |Δp| ≤ 0.005 over
// its listed tokens of every step, argmax equal where its top-1/top-2 margin > 0.02.
func scoreMatchesLlamaCpp(t *testing.T, model string, prompts []llamacpp.Prompt, vocab int) {
	t.Helper()
	for _, p := range prompts {
		ids := make([]string, len(p.Tokens))
		for i, id := range p.Tokens {
			ids[i] = strconv.Itoa(int(id))
		}
		out, errOut, code := runCLI(t, "", "score", model, "--tokens", strings.Join(ids, ","), "--top", strconv.Itoa(vocab), "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got scoreDoc
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Steps) != len(p.Tokens) {
			t.Fatalf("%d steps for %d tokens", len(got.Steps), len(p.Tokens))
		}
		maxD := 0.0
		for _, rs := range p.Steps {
			probs := map[int]float64{}
			for _, e := range got.Steps[rs.Pos].Top {
				probs[int(e[0])] = e[1]
			}
			maxD = math.Max(maxD, rs.MaxDeltaP(func(id int) float64 { return probs[id] }))
			if rs.Decisive() && int(got.Steps[rs.Pos].Top[0][0]) != int(rs.Top[0][0]) {
				t.Errorf("%q pos %d: argmax %v, llama.cpp %v", p.Prompt, rs.Pos, got.Steps[rs.Pos].Top[0][0], rs.Top[0][0])
			}
		}
		t.Logf("%q: max |Δp| = %.5f", p.Prompt, maxD)
		if maxD > 0.005 {
			t.Errorf("%q: max |Δp| = %.5f > 0.005", p.Prompt, maxD)
		}
	}
}

// scoreDoc is what score --json prints.
type scoreDoc struct {
	Tokens []int32 `json:"tokens"`
	Steps  []struct {
		Pos int          `json:"pos"`
		Top [][2]float64 `json:"top"`
	} `json:"steps"`
}

// Bad pipeline input: unknown stage parameter via --set, and a prompt longer than the context.
func TestRunBadInput(t *testing.T) {
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	_, errOut, code := runCLI(t, "", "run", model, "--prompt", "x", "--set", "sample.temprature=0")
	if code != exitUsage || !strings.Contains(errOut, `"temprature"`) {
		t.Errorf("unknown parameter: exit %d, %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "", "run", model, "--set", "export.context=16", "--prompt", strings.Repeat("Once upon a time ", 10))
	if code != 1 || !strings.Contains(errOut, "context") {
		t.Errorf("long prompt: exit %d, %q", code, errOut)
	}
}

// Repeated --stop flags add up (each one stops generation), and sampling flags reach the
// sampler stage whatever its id.
func TestRunStopStrings(t *testing.T) {
	out, errOut, code := runCLI(t, "", "run", filepath.Join(oracle, "models", "stories260K.gguf"),
		"--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24",
		"--stop", "girl", "--stop", "never-generated")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// llama.cpp's greedy text is ", there was a little girl named Lily…": the first stop cuts it.
	if got := strings.TrimSuffix(out, "\n"); got != ", there was a little " {
		t.Errorf("run printed %q, want the text before the first --stop", got)
	}
	if !strings.Contains(errOut, "stopped: stop string") {
		t.Errorf("summary %q does not name the stop string", errOut)
	}
}
