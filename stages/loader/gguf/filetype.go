package gguf

import "fmt"

// fileTypes names the values of general.file_type, llama.cpp's llama_ftype: what most of a
// file's 2-D tensors are ("mostly"; a mixed K-quant names its main type and size), as
// llama_model_ftype_name in llama.cpp's src/llama-model-loader.cpp prints them.
var fileTypes = map[int64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
	16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
	22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
	28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
	38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}

// FileType returns the name of the file's general.file_type (Q4_K_M, F16 …), "" when the
// key is absent, or "ftype N" for a value llama.cpp does not name.
func (f *File) FileType() string {
	if !f.Has("general.file_type") {
		return ""
	}
	n, err := f.GetInt("general.file_type")
	if err != nil {
		return ""
	}
	if s, ok := fileTypes[n]; ok {
		return s
	}
	return fmt.Sprintf("ftype %d", n)
}
