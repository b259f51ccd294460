package main

import (
	"encoding/json"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// fakeMac answers doctor's commands like a Mac would; a nil entry fails the command.
func fakeMac(goarch string, answers map[string]string) probe {
	return probe{
		goos: "darwin", goarch: goarch,
		readFile: func(string) ([]byte, error) { return nil, os.ErrNotExist },
		run: func(name string, args ...string) (string, error) {
			if v, ok := answers[strings.Join(append([]string{name}, args...), " ")]; ok {
				return v, nil
			}
			return "", errors.New("exit status 1")
		},
	}
}

var macAnswers = map[string]string{
	"sw_vers -productName":               "macOS",
	"sw_vers -productVersion":            "15.1",
	"sw_vers -buildVersion":              "24B83",
	"uname -r":                           "24.1.0",
	"sysctl -n machdep.cpu.brand_string": "Apple M2 Pro",
	"sysctl -n hw.optional.arm64":        "1",
	"xcode-select -p":                    "/Library/Developer/CommandLineTools",
	"xcrun --find coremlcompiler":        "/Library/Developer/CommandLineTools/usr/bin/coremlcompiler",
}

func with(base map[string]string, edits map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range edits {
		if v == "<fail>" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func TestDiagnose(t *testing.T) {
	linux := probe{goos: "linux", goarch: "amd64",
		readFile: func(name string) ([]byte, error) {
			switch name {
			case "/etc/os-release":
				return []byte("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n"), nil
			case "/proc/sys/kernel/osrelease":
				return []byte("6.1.0-18-amd64\n"), nil
			}
			return nil, os.ErrNotExist
		},
		run: func(string, ...string) (string, error) { return "", errors.New("not called") }}
	for _, tc := range []struct {
		name      string
		p         probe
		runtime   string
		ne        bool
		os, ver   string
		noteParts []string // each must appear in some note
	}{
		{"apple silicon macOS 15", fakeMac("arm64", macAnswers), "coreml", true, "macOS", "15.1 (24B83)", nil},
		{"macOS 14", fakeMac("arm64", with(macAnswers, map[string]string{"sw_vers -productVersion": "14.6.1"})),
			"reference", true, "macOS", "14.6.1 (24B83)", []string{"macOS 14.6.1 is older than 15"}},
		{"no Xcode tools", fakeMac("arm64", with(macAnswers, map[string]string{"xcode-select -p": "<fail>", "xcrun --find coremlcompiler": "<fail>"})),
			"coreml", true, "macOS", "15.1 (24B83)", []string{"xcode-select --install", "compileModelAtURL"}},
		{"intel mac", fakeMac("amd64", with(macAnswers, map[string]string{"sysctl -n hw.optional.arm64": "0", "sysctl -n machdep.cpu.brand_string": "Intel(R) Core(TM) i9"})),
			"coreml", false, "macOS", "15.1 (24B83)", []string{"no Neural Engine"}},
		{"rosetta", fakeMac("amd64", macAnswers), "coreml", true, "macOS", "15.1 (24B83)", []string{"Rosetta"}},
		{"no sw_vers", fakeMac("arm64", with(macAnswers, map[string]string{"sw_vers -productVersion": "<fail>"})),
			"reference", true, "macOS", "", []string{"could not read the macOS version"}},
		{"linux", linux, "reference", false, "Debian GNU/Linux 12 (bookworm)", "", []string{"reference runtime will be used"}},
		{"windows", probe{goos: "windows", goarch: "amd64"}, "reference", false, "windows", "", []string{"Core ML needs macOS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := diagnose(tc.p)
			if rep.Runtime != tc.runtime || rep.NeuralEngine != tc.ne || rep.OS != tc.os || rep.OSVersion != tc.ver {
				t.Errorf("runtime %s, NE %v, OS %q %q; want %s, %v, %q %q", rep.Runtime, rep.NeuralEngine, rep.OS, rep.OSVersion, tc.runtime, tc.ne, tc.os, tc.ver)
			}
			if rep.CoreML != (tc.runtime == "coreml") {
				t.Errorf("coreml %v with runtime %s", rep.CoreML, rep.Runtime)
			}
			for _, part := range tc.noteParts {
				if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, part) }) {
					t.Errorf("no note mentions %q: %q", part, rep.Notes)
				}
			}
			if tc.noteParts == nil && len(rep.Notes) > 0 {
				t.Errorf("unexpected notes %q", rep.Notes)
			}
		})
	}
	if rep := diagnose(linux); rep.Kernel != "6.1.0-18-amd64" {
		t.Errorf("linux kernel %q", rep.Kernel)
	}
	full := diagnose(fakeMac("arm64", macAnswers))
	if full.Machine != "Apple M2 Pro" || full.Kernel != "24.1.0" || !strings.HasSuffix(full.CoreMLCompiler, "/coremlcompiler") || full.XcodeTools == "" {
		t.Errorf("mac details %+v", full)
	}
}

// `lilims doctor` on this machine: text and JSON agree with the OS the test runs on.
func TestDoctorCLI(t *testing.T) {
	out, errOut, code := runCLI(t, "", "doctor", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep doctorReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Arch != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("arch %q", rep.Arch)
	}
	if runtime.GOOS != "darwin" && (rep.Runtime != "reference" || rep.CoreML) {
		t.Errorf("runtime %q on %s, want reference", rep.Runtime, runtime.GOOS)
	}
	text, _, code := runCLI(t, "", "doctor")
	if code != 0 || !strings.Contains(text, "runtime/auto:") || !strings.Contains(text, "os:") {
		t.Errorf("text output (exit %d):\n%s", code, text)
	}
	if _, _, code := runCLI(t, "", "doctor", "extra"); code != exitUsage {
		t.Errorf("doctor with an argument: exit %d, want %d", code, exitUsage)
	}
}
