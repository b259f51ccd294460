package coreml

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// A package records its contract version in its metadata; another version is refused in
// one line naming both, under either key; the current one, or none, passes.
func TestContractVersion(t *testing.T) {
	base := readModel(t, exportPackage(t, "tiny-phi2-f16.gguf", 64, 16))
	for _, tc := range []struct {
		key, version string
		fail         bool
	}{
		{contractVersionKey, ContractVersion, false},
		{contractVersionKey, "2", true},
		{legacyContractVersionKey, "0", true},
		{"", "", false},
	} {
		m := proto.Clone(base).(*milpb.Model)
		md := m.GetDescription().GetMetadata().GetUserDefined()
		delete(md, contractVersionKey)
		delete(md, legacyContractVersionKey)
		if tc.key != "" {
			md[tc.key] = tc.version
		}
		_, err := InterfaceOf(m)
		if (err != nil) != tc.fail {
			t.Errorf("%s=%q: err %v, want failure %v", tc.key, tc.version, err, tc.fail)
			continue
		}
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, "version "+tc.version+",") || !strings.Contains(msg, "version "+ContractVersion+":") {
				t.Errorf("%s=%q: error %q should name both versions in one line", tc.key, tc.version, msg)
			}
		}
	}
}
