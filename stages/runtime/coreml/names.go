package coreml

import "github.com/lilims/lilims/stages/runtime"

// The names that chain the packages of a chunked export, as this package spells them: one
// place to point at the program contract's own constants.
const (
	hiddenStates    = runtime.HiddenStates
	hiddenStatesOut = runtime.HiddenStatesOut
)
