// Package mlpackage reads and writes Core ML model packages: the .mlpackage
// directory that holds Manifest.json, the serialized Model protobuf and the
// MILBlob weight files an ML Program refers to.
//
// Layout, as coremltools writes it (coremltools/models/utils.py, _create_mlpackage; the
// manifest format is modelpackage/src/ModelPackage.cpp):
//
//	X.mlpackage/
//	  Manifest.json
//	  Data/com.apple.CoreML/model.mlmodel
//	  Data/com.apple.CoreML/weights/weight.bin
//
// The package does not build or check programs; that is package mil's job.
// It only moves a milpb.Model and its weights to and from disk, atomically
// on write.
package mlpackage

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Paths inside a package, as coremltools writes them.
const (
	// ManifestFile is the package manifest, at the package root.
	ManifestFile = "Manifest.json"
	// Author is the author string of the items coremltools writes; it is
	// also the directory under Data/ that holds them.
	Author = "com.apple.CoreML"
	// ModelFile is the path of the serialized Model, relative to the package.
	ModelFile = "Data/" + Author + "/model.mlmodel"
	// WeightsDir is the directory of the blob files, relative to the package.
	WeightsDir = "Data/" + Author + "/weights"
	// WeightFile is the name Write gives the blob file in WeightsDir.
	WeightFile = "weight.bin"
	// WeightRef is how a BlobFileValue names WeightFile: @model_path is the
	// directory that holds model.mlmodel.
	WeightRef = "@model_path/weights/" + WeightFile
)

// FileFormatVersion is the manifest version written, and the newest read.
const FileFormatVersion = "1.0.0"

// Manifest is the content of Manifest.json.
type Manifest struct {
	FileFormatVersion   string              `json:"fileFormatVersion"`
	ItemInfoEntries     map[string]ItemInfo `json:"itemInfoEntries"`
	RootModelIdentifier string              `json:"rootModelIdentifier"`
}

// ItemInfo describes one item of the package. Path is relative to the
// package's Data directory. Fields are in the (alphabetical) order
// coremltools writes them.
type ItemInfo struct {
	Author      string `json:"author"`
	Description string `json:"description"`
	Name        string `json:"name"`
	Path        string `json:"path"`
}

// Item is an extra file of a package, beside the model and its weights: it lives at
// Data/<Author>/<Name> and Manifest.json lists it. Core ML's package reader accepts items of
// any author as long as each exists (coremltools modelpackage/src/ModelPackage.cpp).
type Item struct {
	Author, Name, Description string
	Data                      []byte
}

// path is the item's path relative to the package's Data directory.
func (it Item) path() string { return it.Author + "/" + it.Name }

// newManifest returns a manifest for the model item, the weights directory item and the
// extra items. The identifiers are derived from the model's bytes (name-based UUIDs, RFC 9562 version 8), so
// writing the same model twice gives byte-identical packages — which content-addressed
// caches and reproducible builds rely on. Core ML only needs them to be unique keys.
func newManifest(spec []byte, items []Item) *Manifest {
	modelID, weightsID := contentUUID(spec, "model.mlmodel"), contentUUID(spec, "weights")
	m := &Manifest{
		FileFormatVersion: FileFormatVersion,
		ItemInfoEntries: map[string]ItemInfo{
			modelID:   {Author: Author, Description: "CoreML Model Specification", Name: "model.mlmodel", Path: Author + "/model.mlmodel"},
			weightsID: {Author: Author, Description: "CoreML Model Weights", Name: "weights", Path: Author + "/weights"},
		},
		RootModelIdentifier: modelID,
	}
	for _, it := range items {
		m.ItemInfoEntries[contentUUID(spec, it.path())] = ItemInfo{Author: it.Author, Description: it.Description, Name: it.Name, Path: it.path()}
	}
	return m
}

// contentUUID is a version-8 UUID made of the first 16 bytes of sha256(item, content).
func contentUUID(content []byte, item string) string {
	h := sha256.New()
	h.Write([]byte(item))
	h.Write([]byte{0})
	h.Write(content)
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80 // version 8 (custom, RFC 9562)
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// ParseManifest decodes and checks the content of Manifest.json.
func ParseManifest(raw []byte) (*Manifest, error) {
	// Decode items as plain maps first: Core ML requires all four keys.
	var m struct {
		FileFormatVersion   string                       `json:"fileFormatVersion"`
		ItemInfoEntries     map[string]map[string]string `json:"itemInfoEntries"`
		RootModelIdentifier string                       `json:"rootModelIdentifier"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if err := checkVersion(m.FileFormatVersion); err != nil {
		return nil, err
	}
	out := &Manifest{
		FileFormatVersion:   m.FileFormatVersion,
		ItemInfoEntries:     make(map[string]ItemInfo, len(m.ItemInfoEntries)),
		RootModelIdentifier: m.RootModelIdentifier,
	}
	for id, item := range m.ItemInfoEntries {
		for _, key := range []string{"path", "name", "author", "description"} {
			if _, ok := item[key]; !ok {
				return nil, fmt.Errorf("item %s has no %q", id, key)
			}
		}
		out.ItemInfoEntries[id] = ItemInfo{Author: item["author"], Description: item["description"], Name: item["name"], Path: item["path"]}
	}
	if _, ok := out.ItemInfoEntries[m.RootModelIdentifier]; !ok {
		return nil, fmt.Errorf("rootModelIdentifier %q names no item", m.RootModelIdentifier)
	}
	return out, nil
}

// checkVersion accepts major.minor.patch versions not newer than 1.0.0, as
// Core ML's package reader does.
func checkVersion(v string) error {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return fmt.Errorf("fileFormatVersion %q is not major.minor.patch", v)
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return fmt.Errorf("fileFormatVersion %q is not major.minor.patch", v)
		}
		n[i] = x
	}
	if n[0] > 1 || n[0] == 1 && (n[1] > 0 || n[2] > 0) {
		return fmt.Errorf("fileFormatVersion %s is newer than %s", v, FileFormatVersion)
	}
	return nil
}
