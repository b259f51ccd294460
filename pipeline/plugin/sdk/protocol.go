// Package sdk is what a lilims stage plugin is written with. A plugin is an executable whose
// main hands one or more stages — implementations of the same interfaces the built-ins
// implement (stage.Builder, stage.Runtime, stage.Sampler) — to Serve:
//
//	func main() {
//		sdk.Serve(sdk.Export(spec, myExporter{}))
//	}
//
// Serve speaks hashicorp/go-plugin's gRPC protocol (the services of package pluginpb) to the
// lilims host that started it, streams progress events back, and exits when the host asks or
// when the host process goes away.
//
// The package also holds the host's half of the same adapters (the go-plugin Plugin types
// serve both ends), so that the wire format is defined in one place. Starting, pinning and
// supervising plugin processes is the host's business: package pipeline/plugin.
package sdk

import (
	"time"

	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the version of the stage plugin protocol (the .proto files of package
// pluginpb). go-plugin refuses to pair a host and a plugin whose versions differ; bump it on
// any incompatible change to a service or message.
const ProtocolVersion = 1

// Handshake is shared by host and plugin. The cookie only tells a user who runs a plugin by
// hand that it is not a command (go-plugin prints so and exits 1); it is not a security
// measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "LILIMS_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "3f1c6a0e-lilims-stage-plugin",
}

// Names under which the services are dispensed (go-plugin's PluginSet keys).
const (
	InfoPlugin    = "info"
	BuilderPlugin = "builder"
	RuntimePlugin = "runtime"
	SamplerPlugin = "sampler"
)

// MaxMessageBytes bounds every gRPC message both ways. gRPC's 4 MiB default would refuse a
// large vocabulary's logits; go-plugin raises only the client side (to 2 GiB). 256 MiB, as
// Terraform uses: an error beats an out-of-memory kill.
const MaxMessageBytes = 256 << 20

// ParentPollInterval is how often a serving plugin checks that its host is still alive: a
// gRPC plugin otherwise outlives a host killed with SIGKILL.
const ParentPollInterval = time.Second

// HostPIDEnv carries the host's process id to the plugins it starts. A host killed before
// its plugin first asks for its parent would otherwise leave the plugin re-parented from
// the start, with no change of parent left to notice.
const HostPIDEnv = "LILIMS_HOST_PID"
