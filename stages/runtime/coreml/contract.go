package coreml

import (
	"fmt"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// The version of the program contract (function, input, state and output names and
// shapes) this runtime implements, and the package metadata keys that carry a package's.
// lilims.contract_version is the key being introduced; lilims.contract is the one packages
// exported so far carry (stages/export: Contract). These constants are the one place this
// package reads them from; they move to the contract package's constants once it exists.
const (
	ContractVersion          = "1"
	contractVersionKey       = "lilims.contract_version"
	legacyContractVersionKey = "lilims.contract"
)

// checkContractVersion refuses a package built for another contract version, in one line
// naming both. A package that records no version is checked by its interface alone.
func checkContractVersion(m *milpb.Model) error {
	md := m.GetDescription().GetMetadata().GetUserDefined()
	v, ok := md[contractVersionKey]
	if !ok {
		v, ok = md[legacyContractVersionKey]
	}
	if !ok || v == ContractVersion {
		return nil
	}
	return fmt.Errorf("coreml: the package was exported for program contract version %s, this lilims runs version %s: re-export it with this lilims (lilims build)", v, ContractVersion)
}
