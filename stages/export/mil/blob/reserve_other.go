//go:build !linux

package blob

// Reserve hands out payloads mapped from the file on Linux only; elsewhere it returns
// ErrNoReserve.
func (w *Writer) Reserve(DataType, int) (offset uint64, payload []byte, commit func() error, err error) {
	return 0, nil, nil, ErrNoReserve
}
