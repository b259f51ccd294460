//go:build linux || darwin

package pipeline

import (
	"os"
	"syscall"
)

func identityOf(info os.FileInfo) fileIdentity {
	id := fileIdentity{Size: info.Size(), ModTime: info.ModTime().UnixNano()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		id.Dev, id.Ino = uint64(st.Dev), uint64(st.Ino)
		sec, nsec := ctime(st)
		id.CTime = sec*1e9 + nsec
	}
	return id
}
