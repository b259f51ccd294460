package compile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// ValidateExport validates a lilims export: a single package, or the directory of a chunked
// export. Each package must be a valid Core ML package (as Validate checks) and the packages
// together must follow the lilims program contract (contract.Check: names, types and shapes
// of the functions' inputs, outputs and states, the chain between chunks, the contract
// version). Every problem of every package is reported.
func ValidateExport(path string) error {
	pkgs, err := mlpackage.PackagesAt(path)
	if err != nil {
		return err
	}
	var problems []string
	var descs []contract.Description
	opened := true
	for _, p := range pkgs {
		prefix := ""
		if len(pkgs) > 1 {
			prefix = filepath.Base(p) + ": "
		}
		desc, errs := validatePackage(p)
		for _, e := range errs {
			problems = append(problems, prefix+e.Error())
		}
		if desc == nil {
			opened = false
			continue
		}
		descs = append(descs, *desc)
	}
	if opened { // the contract's errors number the chunks: all of them are needed
		_, errs := contract.Check(descs)
		for _, e := range errs {
			problems = append(problems, e.Error())
		}
	}
	if len(problems) > 0 {
		return &ValidationError{Path: path, Problems: problems}
	}
	return nil
}

// ValidateChunks is ValidateExport for the directory of a chunked export: it fails on
// anything else.
func ValidateChunks(dir string) error {
	if _, err := mlpackage.ReadChunkIndex(dir); err != nil {
		return err
	}
	return ValidateExport(dir)
}

// validatePackage opens the package at path and checks it as a Core ML package: its
// manifest items, its program and its interface. It returns the package's contract
// description when it could be read.
func validatePackage(path string) (*contract.Description, []error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, []error{errors.New("the index lists it, but it does not exist")}
	}
	pkg, err := mlpackage.Open(path)
	if err != nil {
		return nil, []error{err}
	}
	defer pkg.Close()
	errs := append(pkg.CheckItems(), CheckModel(pkg.Model)...)
	desc := contract.Describe(pkg.Model)
	return &desc, errs
}
