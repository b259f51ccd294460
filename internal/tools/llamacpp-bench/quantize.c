// quantize: times llama.cpp's own f16 -> Q4_0 conversion (what llama-quantize does) on the
// same machine as lilims' conversion, through the public llama_model_quantize API of the
// prebuilt libllama that node-llama-cpp ships. A measuring tool only; see README.md.
//
// Build (the header comes from the matching llama.cpp release, the library from npm):
//   cc -O2 -o quantize quantize.c -I LLAMA_CPP/include -I LLAMA_CPP/ggml/include \
//      -L BINS -l:libllama.v0.4.0.so -Wl,-rpath,BINS
// Run: quantize IN.gguf OUT.gguf [threads] [ftype]   -> prints one JSON line: seconds, peak RSS.
// ftype: q4_0 (default), q4_k_m, iq4_nl, iq3_s, or copy (llama-quantize's COPY: tensors as they are).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "llama.h"

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: quantize IN.gguf OUT.gguf [threads]\n");
		return 2;
	}
	llama_backend_init();
	struct llama_model_quantize_params p = llama_model_quantize_default_params();
	p.ftype = LLAMA_FTYPE_MOSTLY_Q4_0;
	p.nthread = argc > 3 ? atoi(argv[3]) : 0;
	const char *ftype = argc > 4 ? argv[4] : "q4_0";
	if (strcmp(ftype, "q4_k_m") == 0) {
		p.ftype = LLAMA_FTYPE_MOSTLY_Q4_K_M;
	} else if (strcmp(ftype, "iq4_nl") == 0) {
		p.ftype = LLAMA_FTYPE_MOSTLY_IQ4_NL;
	} else if (strcmp(ftype, "iq3_s") == 0) {
		p.ftype = LLAMA_FTYPE_MOSTLY_IQ3_S;
	} else if (strcmp(ftype, "copy") == 0) {
		p.only_copy = true;
	} else if (strcmp(ftype, "q4_0") != 0) {
		fprintf(stderr, "quantize: ftype %s is not q4_0, q4_k_m, iq4_nl, iq3_s or copy\n", ftype);
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc != 0) {
		fprintf(stderr, "quantize: llama_model_quantize failed (%u)\n", rc);
		return 1;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("{\"ftype\":\"%s\",\"threads\":%d,\"seconds\":%.3f,\"peak_rss_mb\":%.1f}\n",
	       ftype, p.nthread, secs, ru.ru_maxrss / 1024.0);
	return 0;
}
