//go:build unix && !linux

package mmap

import "golang.org/x/sys/unix"

// populateRead: without MADV_POPULATE_READ, a read-ahead hint.
const populateRead = unix.MADV_WILLNEED
