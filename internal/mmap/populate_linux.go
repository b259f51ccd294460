package mmap

import "golang.org/x/sys/unix"

// populateRead maps file pages into the page tables, reading them in if needed (Linux 5.14).
const populateRead = unix.MADV_POPULATE_READ
