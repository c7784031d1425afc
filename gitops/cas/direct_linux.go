package cas

import (
	"os"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment direct I/O on the file system of the open
// file fd asks of buffers, offsets and lengths, or 0 where it has none.
func directAlign(fd int) int {
	var st unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st) != nil || st.Mask&unix.STATX_DIOALIGN == 0 {
		return 0
	}
	a := int(max(st.Dio_mem_align, st.Dio_offset_align))
	if st.Dio_offset_align == 0 || a > maxDirectAlign || a&(a-1) != 0 {
		return 0
	}
	return a
}

// setDirect sets or clears O_DIRECT on the open file f.
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			serr = err
			return
		}
		if on {
			flags |= unix.O_DIRECT
		} else {
			flags &^= unix.O_DIRECT
		}
		_, serr = unix.FcntlInt(fd, unix.F_SETFL, flags)
	})
	if err != nil {
		return err
	}
	return serr
}
