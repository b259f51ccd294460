package reference

import (
	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// blobFile is a mapped weight.bin.
type blobFile interface {
	Blob(offset uint64) (milpb.DataType, []byte, int, error)
	Close() error
}

type blobReader struct{ r *blob.Reader }

func openBlobFile(path string) (blobFile, error) {
	r, err := blob.Open(path)
	if err != nil {
		return nil, err
	}
	return blobReader{r}, nil
}

func (b blobReader) Blob(offset uint64) (milpb.DataType, []byte, int, error) {
	d, data, n, err := b.r.Blob(offset)
	return d.MIL(), data, n, err
}

func (b blobReader) Close() error { return b.r.Close() }
