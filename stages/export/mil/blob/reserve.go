package blob

import "errors"

// ErrNoReserve is Reserve's error when the Writer cannot hand out a payload in its file
// (it did not create the file, the OS or file system lacks the calls): write the blob with
// Add instead.
var ErrNoReserve = errors.New("blob: reserving a payload in the file is unavailable")
