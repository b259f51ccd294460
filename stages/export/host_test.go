package export

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// The host file holds every metadata key of the source model with its type and value —
// here stories260K's plus a chat template, as instruct models carry — and the contract
// version, and no tensors.
func TestHostItem(t *testing.T) {
	src := openModel(t, "stories260K.gguf")
	b := gguf.NewBuilder()
	for _, kv := range src.KVs {
		b.Set(kv.Key, kv.Value.V)
	}
	const template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
	b.Set("tokenizer.chat_template", template)
	withTemplate := filepath.Join(t.TempDir(), "model.gguf")
	out, err := os.Create(withTemplate)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	out.Close()
	f, err := gguf.Open(withTemplate)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	item, err := hostItem(f)
	if err != nil {
		t.Fatal(err)
	}
	if item.Author != contract.HostAuthor || item.Name != contract.HostName {
		t.Fatalf("item %s/%s", item.Author, item.Name)
	}
	hostPath := filepath.Join(t.TempDir(), contract.HostName)
	if err := os.WriteFile(hostPath, item.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	host, err := gguf.Open(hostPath)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if len(host.Tensors) != 0 {
		t.Errorf("%d tensors in the host file, want none", len(host.Tensors))
	}
	if got, _ := host.GetString("tokenizer.chat_template"); got != template {
		t.Errorf("chat template %q", got)
	}
	if v, err := host.GetUint(contract.KeyVersion); err != nil || v != contract.Version {
		t.Errorf("%s = %d, %v", contract.KeyVersion, v, err)
	}
	for _, kv := range f.KVs {
		got, ok := host.Get(kv.Key)
		if !ok || got.Type != kv.Value.Type || got.Elem != kv.Value.Elem || !reflect.DeepEqual(got.V, kv.Value.V) {
			t.Errorf("key %s: %s in the host file, %s in the model", kv.Key, got.TypeName(), kv.Value.TypeName())
		}
	}
	if len(host.KVs) != len(f.KVs)+1 {
		t.Errorf("%d keys in the host file, want the model's %d and the contract version", len(host.KVs), len(f.KVs))
	}
}
