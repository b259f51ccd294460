package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/stages/runtime/reference"
)

func newDoctorCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Say what this machine can do: OS, Xcode tools, coremlcompiler, Neural Engine, runtime",
		Example: `  lilims doctor
  lilims doctor --json | jq .runtime`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := diagnose(systemProbe(cmd.Context()))
			rep.Kernels = reference.Kernels()
			goTool := findGo(cmd.Context())
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), struct {
					doctorReport
					Go goToolchain `json:"go"`
				}{rep, goTool})
			}
			if err := rep.writeText(cmd.OutOrStdout()); err != nil {
				return err
			}
			return goTool.writeText(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// minCoreMLMajor is the first macOS whose Core ML runs lilims packages: they are Core ML
// specification 9 ML Programs with state and two functions (MLState and
// MLModelConfiguration.functionName are macOS 15 APIs).
const minCoreMLMajor = 15

// doctorReport is what `lilims doctor` prints.
type doctorReport struct {
	OS             string   `json:"os"`                             // "macOS", "Debian GNU/Linux 12 (bookworm)", …
	OSVersion      string   `json:"os_version,omitempty"`           // "15.1 (24B83)" on macOS
	Kernel         string   `json:"kernel,omitempty"`               // kernel release
	Arch           string   `json:"arch"`                           // the lilims binary's GOOS/GOARCH
	Machine        string   `json:"machine,omitempty"`              // the CPU, e.g. "Apple M2 Pro"
	AppleSilicon   bool     `json:"apple_silicon"`                  // hw.optional.arm64 = 1
	NeuralEngine   bool     `json:"neural_engine"`                  // every Apple silicon Mac has one
	XcodeTools     string   `json:"xcode_tools,omitempty"`          // xcode-select -p
	CoreMLCompiler string   `json:"coremlcompiler,omitempty"`       // xcrun --find coremlcompiler
	CoreML         bool     `json:"coreml"`                         // Core ML can run lilims packages
	Runtime        string   `json:"runtime"`                        // what runtime/auto picks: "coreml" or "reference"
	Kernels        string   `json:"kernels,omitempty"`              // the reference runtime's kernel set (reference.Kernels)
	CompiledCache  string   `json:"compiled_model_cache,omitempty"` // where Core ML's compiled models are kept
	Notes          []string `json:"notes,omitempty"`
}

// probe is how doctor looks at the machine; tests replace it.
type probe struct {
	goos, goarch string
	readFile     func(name string) ([]byte, error)
	run          func(name string, args ...string) (string, error) // trimmed stdout
}

func systemProbe(ctx context.Context) probe {
	return probe{
		goos: runtime.GOOS, goarch: runtime.GOARCH,
		readFile: os.ReadFile,
		run: func(name string, args ...string) (string, error) {
			// xcrun may offer to install the tools or search slowly; doctor must stay quick.
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, name, args...).Output()
			return strings.TrimSpace(string(out)), err
		},
	}
}

func diagnose(p probe) doctorReport {
	rep := doctorReport{Arch: p.goos + "/" + p.goarch, Runtime: "reference"}
	switch p.goos {
	case "darwin":
		diagnoseMac(p, &rep)
	case "linux":
		rep.OS = "Linux"
		if raw, err := p.readFile("/etc/os-release"); err == nil {
			if name := osRelease(raw)["PRETTY_NAME"]; name != "" {
				rep.OS = name
			}
		}
		if raw, err := p.readFile("/proc/sys/kernel/osrelease"); err == nil {
			rep.Kernel = strings.TrimSpace(string(raw))
		}
	default:
		rep.OS = p.goos
	}
	if p.goos != "darwin" {
		rep.Notes = append(rep.Notes, "Core ML needs macOS: the pure-Go reference runtime will be used (runtime/auto → runtime/reference)")
	}
	return rep
}

func diagnoseMac(p probe, rep *doctorReport) {
	rep.OS = "macOS"
	if name, err := p.run("sw_vers", "-productName"); err == nil && name != "" {
		rep.OS = name
	}
	version, verr := p.run("sw_vers", "-productVersion")
	if verr == nil {
		rep.OSVersion = version
		if build, err := p.run("sw_vers", "-buildVersion"); err == nil && build != "" {
			rep.OSVersion += " (" + build + ")"
		}
	}
	rep.Kernel, _ = p.run("uname", "-r")
	rep.Machine, _ = p.run("sysctl", "-n", "machdep.cpu.brand_string")
	// hw.optional.arm64 is 1 on Apple silicon, also for an x86-64 process under Rosetta.
	if v, err := p.run("sysctl", "-n", "hw.optional.arm64"); err == nil && v == "1" {
		rep.AppleSilicon, rep.NeuralEngine = true, true
	}
	if rep.AppleSilicon && p.goarch != "arm64" {
		rep.Notes = append(rep.Notes, "this lilims binary is "+p.goarch+" running under Rosetta: use the darwin/arm64 build")
	}
	if !rep.NeuralEngine {
		rep.Notes = append(rep.Notes, "no Neural Engine (an Intel Mac): Core ML runs on the CPU and GPU; compute_units cpu_and_ne falls back to the CPU")
	}
	if dir, err := p.run("xcode-select", "-p"); err == nil && dir != "" {
		rep.XcodeTools = dir
	}
	if path, err := p.run("xcrun", "--find", "coremlcompiler"); err == nil && path != "" {
		rep.CoreMLCompiler = path
	}
	if rep.XcodeTools == "" {
		rep.Notes = append(rep.Notes, "no Xcode command line tools (install them with: xcode-select --install)")
	}
	if rep.CoreMLCompiler == "" {
		rep.Notes = append(rep.Notes, "no coremlcompiler: the compile stage validates only, and the Core ML runtime compiles the package itself (MLModel compileModelAtURL:)")
	}
	major, ok := macMajor(version)
	switch {
	case verr != nil || !ok:
		rep.Notes = append(rep.Notes, "could not read the macOS version (sw_vers): the reference runtime will be used")
	case major < minCoreMLMajor:
		rep.Notes = append(rep.Notes, fmt.Sprintf("macOS %s is older than %d, the first whose Core ML runs stateful multifunction ML Programs: the reference runtime will be used", version, minCoreMLMajor))
	default:
		rep.CoreML = true
		rep.Runtime = "coreml"
	}
	if dir, err := pipeline.DefaultCacheDir(); err == nil {
		rep.CompiledCache = filepath.Join(dir, "coreml")
	}
}

// macMajor reads the major version of "15.1.1".
func macMajor(v string) (int, bool) {
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	return n, err == nil && n > 0
}

// osRelease parses /etc/os-release: KEY=value lines, values optionally quoted.
func osRelease(raw []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		out[k] = v
	}
	return out
}

func (r doctorReport) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	osLine := r.OS
	if r.OSVersion != "" {
		osLine += " " + r.OSVersion
	}
	if r.Kernel != "" {
		osLine += ", kernel " + r.Kernel
	}
	fmt.Fprintf(tw, "os:\t%s\n", osLine)
	fmt.Fprintf(tw, "lilims binary:\t%s\n", r.Arch)
	if r.Machine != "" {
		fmt.Fprintf(tw, "machine:\t%s\n", r.Machine)
	}
	if strings.HasPrefix(r.Arch, "darwin/") {
		fmt.Fprintf(tw, "neural engine:\t%s\n", yesNo(r.NeuralEngine))
		fmt.Fprintf(tw, "xcode tools:\t%s\n", orNone(r.XcodeTools))
		fmt.Fprintf(tw, "coremlcompiler:\t%s\n", orNone(r.CoreMLCompiler))
	}
	if r.CompiledCache != "" {
		fmt.Fprintf(tw, "compiled models:\t%s\n", r.CompiledCache)
	}
	rt := "reference (pure Go)"
	if r.Runtime == "coreml" {
		rt = "Core ML"
	}
	fmt.Fprintf(tw, "runtime/auto:\t%s\n", rt)
	if r.CoreML {
		fmt.Fprintf(tw, "first run:\tlilims verify MODEL checks Core ML against the reference runtime (docs/mac.md)\n")
	}
	if r.Kernels != "" {
		fmt.Fprintf(tw, "reference kernels:\t%s (LILIMS_KERNELS=simd|portable narrows them)\n", r.Kernels)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(tw, "note:\t%s\n", n)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "not found"
	}
	return s
}
