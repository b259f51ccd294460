// Package milpb holds the Go types of the Core ML model format that lilims
// reads and writes: the Model envelope, its interface description
// (CoreML.Specification) and the ML Program intermediate language
// (CoreML.Specification.MILSpec).
//
// The .proto files beside this file are our own restatement of the subset of
// Apple's Model.proto, FeatureTypes.proto and MIL.proto that ML Programs use,
// with field numbers and enum values identical to Apple's, so the wire format
// is the standard one. Parts of the schema that are not declared here (for
// example neural-network models or image features) are kept as unknown
// fields when a file is decoded and are written back unchanged.
//
// The package holds only generated types; building programs is the job of
// package mil, and the weight file format lives in package blob.
package milpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative featuretypes.proto mil.proto model.proto
