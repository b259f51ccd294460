//go:build darwin

package main

import (
	"os"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// rusageInfoV0 is struct rusage_info_v0 of <sys/resource.h> (RUSAGE_INFO_V0 = 0).
type rusageInfoV0 struct {
	uuid                              [16]byte
	userTime, systemTime              uint64
	pkgIdleWkups, interruptWkups      uint64
	pageins, wiredSize                uint64
	residentSize, physFootprint       uint64
	procStartAbstime, procExitAbstime uint64
}

var (
	rusageOnce    sync.Once
	procPidRusage func(pid int32, flavor int32, buf unsafe.Pointer) int32
)

// footprintMB is the process's physical footprint now (proc_pid_rusage's
// ri_phys_footprint, the figure Activity Monitor shows as Memory): unlike the resident set it
// counts the IOSurface and Neural Engine buffers Core ML allocates for the process.
func footprintMB() (float64, bool) {
	rusageOnce.Do(func() {
		lib, err := purego.Dlopen("/usr/lib/libSystem.B.dylib", purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			return
		}
		if sym, err := purego.Dlsym(lib, "proc_pid_rusage"); err == nil {
			purego.RegisterFunc(&procPidRusage, sym)
		}
	})
	if procPidRusage == nil {
		return 0, false
	}
	var ri rusageInfoV0
	if procPidRusage(int32(os.Getpid()), 0, unsafe.Pointer(&ri)) != 0 {
		return 0, false
	}
	return float64(ri.physFootprint) / (1 << 20), true
}
