// Package pluginpb holds the wire format of lilims stage plugins: one .proto per stage kind
// (builder.proto for loader/quantize/export/compile, runtime.proto, sampler.proto) plus
// stage.proto with the shared messages and the Info service. The Go code is generated and
// committed so that nobody needs protoc; regenerate with `go generate` after editing a
// .proto (protoc 3.21, protoc-gen-go v1.36.12, protoc-gen-go-grpc v1.6.2).
//
// The package holds messages and stubs only; the adapters to the stage interfaces are in
// package sdk (plugin side and host side alike).
package pluginpb

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative stage.proto builder.proto runtime.proto sampler.proto
