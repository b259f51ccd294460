package pipeline_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
)

var update = flag.Bool("update", false, "rewrite the generated section of docs/pipelines.md")

const docPath = "../docs/pipelines.md"

// docs/pipelines.md documents every built-in stage's parameters from the registry itself:
// this test fails when the section differs from what the code says (rewrite it with -update).
func TestStageDocs(t *testing.T) {
	const begin, end = "<!-- stages:begin -->\n", "<!-- stages:end -->"
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s: no %q … %q section", docPath, begin, end)
	}
	want := pipeline.MarkdownStages(builtin.Registry().Specs())
	if got := doc[i+len(begin) : j]; got != want {
		if *update {
			doc = doc[:i+len(begin)] + want + doc[j:]
			if err := os.WriteFile(docPath, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s is out of date with the registered stages; run go test ./pipeline -run TestStageDocs -update", docPath)
	}
	for _, s := range builtin.Registry().Specs() {
		if !strings.Contains(doc, "### `"+s.Uses+"`") {
			t.Errorf("%s does not document %s", docPath, s.Uses)
		}
	}
}
