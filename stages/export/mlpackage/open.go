package mlpackage

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// Package is an opened model package.
type Package struct {
	Dir      string       // the package directory
	Manifest *Manifest    // the parsed Manifest.json
	Model    *milpb.Model // the root model

	modelDir string                  // directory holding the model file: @model_path
	weights  map[string]*blob.Reader // by file name as the program refers to it
}

// Open reads the package at dir: its manifest, its root model, and every
// blob file the model's program refers to. Each BlobFileValue is checked
// against its file (the record exists, and its data type and element count
// match the declared tensor type), so a package that opens has no dangling
// weight references. Close releases the blob files.
func Open(dir string) (*Package, error) {
	p, err := open(dir)
	if err != nil {
		return nil, fmt.Errorf("mlpackage: %w", err)
	}
	return p, nil
}

func open(dir string) (*Package, error) {
	mpath := filepath.Join(dir, ManifestFile)
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return nil, err
	}
	man, err := ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	for id, item := range man.ItemInfoEntries {
		if !filepath.IsLocal(filepath.FromSlash(item.Path)) {
			return nil, fmt.Errorf("%s: item %s: path %q leaves the package", mpath, id, item.Path)
		}
	}
	// Only the root model item must exist. Other items (the weights
	// directory) matter only if the program refers to them, which is
	// checked below; an empty weights directory does not survive git.
	root := man.ItemInfoEntries[man.RootModelIdentifier]
	specPath := filepath.Join(dir, "Data", filepath.FromSlash(root.Path))
	spec, err := os.ReadFile(specPath)
	if err != nil {
		return nil, fmt.Errorf("root model item %s: %w", man.RootModelIdentifier, err)
	}
	model := new(milpb.Model)
	if err := proto.Unmarshal(spec, model); err != nil {
		return nil, fmt.Errorf("%s: %w", specPath, err)
	}
	p := &Package{
		Dir:      dir,
		Manifest: man,
		Model:    model,
		modelDir: filepath.Dir(specPath),
		weights:  map[string]*blob.Reader{},
	}
	if err := p.openWeights(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// blobRef is one BlobFileValue of the program and where it appears.
type blobRef struct {
	where string
	value *milpb.Value
}

// openWeights opens every blob file the program names and checks each
// reference into it.
func (p *Package) openWeights() error {
	refs := programBlobRefs(p.Model.GetMlProgram())
	for _, ref := range refs {
		bf := ref.value.GetBlobFileValue()
		r, err := p.reader(bf.GetFileName())
		if err != nil {
			return fmt.Errorf("%s: %w", ref.where, err)
		}
		tt := ref.value.GetType().GetTensorType()
		if tt == nil {
			return fmt.Errorf("%s: blob value has no tensor type", ref.where)
		}
		count, known := 1, true
		for _, d := range tt.GetDimensions() {
			c, ok := d.GetDimension().(*milpb.Dimension_Constant)
			if !ok {
				known = false
				break
			}
			count *= int(c.Constant.GetSize())
		}
		if known {
			_, err = r.Tensor(bf.GetOffset(), tt.GetDataType(), count)
		} else {
			_, _, _, err = r.Blob(bf.GetOffset())
		}
		if err != nil {
			return fmt.Errorf("%s: %w", ref.where, err)
		}
	}
	return nil
}

// reader returns the open blob file for a program file name, opening it on
// first use.
func (p *Package) reader(name string) (*blob.Reader, error) {
	if r, ok := p.weights[name]; ok {
		return r, nil
	}
	rel, ok := strings.CutPrefix(name, "@model_path/")
	if !ok || !filepath.IsLocal(filepath.FromSlash(rel)) {
		return nil, fmt.Errorf("blob file %q is not a path under @model_path", name)
	}
	r, err := blob.Open(filepath.Join(p.modelDir, filepath.FromSlash(path.Clean(rel))))
	if err != nil {
		return nil, err
	}
	p.weights[name] = r
	return r, nil
}

// programBlobRefs lists every BlobFileValue in the program, in a stable
// order, with a description of where it appears.
func programBlobRefs(prog *milpb.Program) []blobRef {
	var refs []blobRef
	fnames := make([]string, 0, len(prog.GetFunctions()))
	for name := range prog.GetFunctions() {
		fnames = append(fnames, name)
	}
	sort.Strings(fnames)
	for _, fname := range fnames {
		fn := prog.GetFunctions()[fname]
		for _, opset := range sortedKeys(fn.GetBlockSpecializations()) {
			refs = blockBlobRefs(refs, "function "+fname+" ("+opset+")", fn.GetBlockSpecializations()[opset])
		}
	}
	return refs
}

func blockBlobRefs(refs []blobRef, where string, block *milpb.Block) []blobRef {
	for _, op := range block.GetOperations() {
		name := op.GetAttributes()["name"].GetImmediateValue().GetTensor().GetStrings().GetValues()
		opWhere := where + ": op " + op.GetType()
		if len(name) == 1 {
			opWhere += " " + name[0]
		}
		for _, key := range sortedKeys(op.GetAttributes()) {
			if v := op.GetAttributes()[key]; v.GetBlobFileValue() != nil {
				refs = append(refs, blobRef{opWhere + " attribute " + key, v})
			}
		}
		for _, key := range sortedKeys(op.GetInputs()) {
			for _, b := range op.GetInputs()[key].GetArguments() {
				if v := b.GetValue(); v.GetBlobFileValue() != nil {
					refs = append(refs, blobRef{opWhere + " input " + key, v})
				}
			}
		}
		for _, nested := range op.GetBlocks() {
			refs = blockBlobRefs(refs, opWhere, nested)
		}
	}
	return refs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ItemPath returns where on disk the item of author and name that the manifest lists is,
// and whether the manifest lists one.
func (p *Package) ItemPath(author, name string) (string, bool) {
	for _, item := range p.Manifest.ItemInfoEntries {
		if item.Author == author && item.Name == name {
			return filepath.Join(p.Dir, "Data", filepath.FromSlash(item.Path)), true
		}
	}
	return "", false
}

// CheckItems reports every item of the manifest that does not exist on disk. Core ML's
// package reader refuses such a package ("Item does not exist for identifier", coremltools
// modelpackage/src/ModelPackage.cpp), so the static validator checks it; Open does not,
// since git does not keep the empty weights directory of a program without weights.
func (p *Package) CheckItems() []error {
	var errs []error
	for _, id := range sortedKeys(p.Manifest.ItemInfoEntries) {
		item := p.Manifest.ItemInfoEntries[id]
		if _, err := os.Stat(filepath.Join(p.Dir, "Data", filepath.FromSlash(item.Path))); err != nil {
			errs = append(errs, fmt.Errorf("%s: item %s (%s) does not exist", ManifestFile, id, "Data/"+item.Path))
		}
	}
	return errs
}

// Weights returns the blob file the program names fileName, such as
// WeightRef. Only files the program refers to are open.
func (p *Package) Weights(fileName string) (*blob.Reader, error) {
	r, ok := p.weights[fileName]
	if !ok {
		return nil, fmt.Errorf("mlpackage: %s: program refers to no blob file %q", p.Dir, fileName)
	}
	return r, nil
}

// WeightFiles returns the blob file names the program refers to, sorted.
func (p *Package) WeightFiles() []string {
	return sortedKeys(p.weights)
}

// Tensor returns the payload of a blob-backed value: the little-endian
// element bytes (packed for sub-byte types), checked against the value's
// tensor type when Open ran. The slice aliases the file mapping: do not
// modify it or use it after Close.
func (p *Package) Tensor(v *milpb.Value) ([]byte, error) {
	bf := v.GetBlobFileValue()
	if bf == nil {
		return nil, errors.New("mlpackage: value is not stored in a blob file")
	}
	r, err := p.Weights(bf.GetFileName())
	if err != nil {
		return nil, err
	}
	_, data, _, err := r.Blob(bf.GetOffset())
	return data, err
}

// Close releases the package's blob files.
func (p *Package) Close() error {
	var errs []error
	for name, r := range p.weights {
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mlpackage: close %s: %w", name, err))
		}
	}
	p.weights = nil
	return errors.Join(errs...)
}
