//go:build !darwin

package main

// footprintMB is measured on macOS only (proc_pid_rusage).
func footprintMB() (float64, bool) { return 0, false }
