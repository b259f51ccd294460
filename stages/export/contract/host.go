package contract

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// ErrNoHostFile is returned by OpenHost for a package that carries no host file.
var ErrNoHostFile = errors.New("the package carries no host file")

// HostPath returns the path of the host file of the export at path: a package, or the
// directory of a chunked export (whose first package carries it).
func HostPath(path string) (string, error) {
	pkgs, err := mlpackage.PackagesAt(path)
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(filepath.Join(pkgs[0], mlpackage.ManifestFile))
	if err != nil {
		return "", fmt.Errorf("%s: not a model package: %w", path, err)
	}
	man, err := mlpackage.ParseManifest(raw)
	if err != nil {
		return "", fmt.Errorf("%s/%s: %w", pkgs[0], mlpackage.ManifestFile, err)
	}
	for _, item := range man.ItemInfoEntries {
		if item.Author == HostAuthor && item.Name == HostName {
			where := filepath.Join(pkgs[0], "Data", filepath.FromSlash(item.Path))
			if _, err := os.Stat(where); err != nil {
				return "", fmt.Errorf("%s: %s lists the host file Data/%s, but it does not exist", path, mlpackage.ManifestFile, item.Path)
			}
			return where, nil
		}
	}
	return "", fmt.Errorf("%s: %w (Data/%s/%s): re-export it with this lilims, or run it through its GGUF", path, ErrNoHostFile, HostAuthor, HostName)
}

// OpenHost opens the host file of the export at path: a GGUF file without tensors that holds
// the source model's metadata, so tokenizer.FromGGUF builds the model's tokenizer from it
// and tokenizer.chat_template, the special token ids and the hyper-parameters read as they
// do from the model. A host file of another contract version is refused.
func OpenHost(path string) (*gguf.File, error) {
	where, err := HostPath(path)
	if err != nil {
		return nil, err
	}
	f, err := gguf.Open(where)
	if err != nil {
		return nil, err
	}
	v, err := f.GetUint(KeyVersion)
	if err != nil || v != Version {
		f.Close()
		return nil, fmt.Errorf("%s: %w", where, &VersionError{Have: versionString(err, v)})
	}
	return f, nil
}

func versionString(err error, v uint64) string {
	if err != nil {
		return ""
	}
	return strconv.FormatUint(v, 10)
}
