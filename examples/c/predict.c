/* Classify images with a cifar-pack ONNX model from C, through onnxruntime's C API.
 *
 *   ./predict MODEL.onnx IMAGE...
 *
 * Prints one line per image: path, TAB, label, TAB, every class probability (space-separated,
 * 9 significant digits). A file that cannot be read prints "path<TAB>error: why" on stderr and
 * the exit code is 1; the other images are still classified.
 *
 * What an app copies: load the session once, read the class names from the model's metadata
 * ("class_names", a JSON list), feed uint8 [N, 32, 32, 3] RGB (image.c makes it, as Pillow does),
 * read float32 [N, C] probabilities. The graph does the scaling itself. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "onnxruntime_c_api.h"

#define BATCH 256 /* images per Run call */
#define API_VERSION 24 /* the headers' API; any onnxruntime >= 1.24 serves it */

static const OrtApi *ort;

static void check(OrtStatus *status) {
  if (status) {
    fprintf(stderr, "error: onnxruntime: %s\n", ort->GetErrorMessage(status));
    ort->ReleaseStatus(status);
    exit(2);
  }
}

/* The JSON list of strings in metadata_props["class_names"] -> labels[] (simple strings only:
 * cifar-pack writes class names as plain JSON strings; escapes other than \" and \\ are kept). */
static int parse_labels(const char *json, char ***labels) {
  int n = 0;
  *labels = NULL;
  for (const char *p = json; (p = strchr(p, '"')) != NULL;) {
    const char *start = ++p;
    while (*p && *p != '"') p += (*p == '\\' && p[1]) ? 2 : 1;
    char *label = malloc((size_t)(p - start) + 1), *q = label;
    for (const char *s = start; s < p; s++) *q++ = (*s == '\\' && s + 1 < p) ? *++s : *s;
    *q = '\0';
    *labels = realloc(*labels, sizeof(char *) * (n + 1));
    (*labels)[n++] = label;
    if (*p) p++;
  }
  return n;
}

/* A metadata_props value (a JSON text) as a malloc'd string, or NULL when the key is absent. */
static char *metadata(OrtModelMetadata *meta, OrtAllocator *allocator, const char *key) {
  char *value = NULL, *copy = NULL;
  check(ort->ModelMetadataLookupCustomMetadataMap(meta, allocator, key, &value));
  if (value) {
    copy = strdup(value);
    check(ort->AllocatorFree(allocator, value));
  }
  return copy;
}

/* The session, its class names and its pixel cap (the "max_pixels" of metadata_props["input"],
 * or CIFAR_PACK_MAX_PIXELS). */
static OrtSession *open_session(OrtEnv *env, const char *model, char ***labels, int *classes, long long *max_pixels) {
  OrtSessionOptions *options;
  OrtSession *session;
  OrtModelMetadata *meta;
  OrtAllocator *allocator;
  check(ort->CreateSessionOptions(&options));
  check(ort->CreateSession(env, model, options, &session));
  ort->ReleaseSessionOptions(options);
  check(ort->GetAllocatorWithDefaultOptions(&allocator));
  check(ort->SessionGetModelMetadata(session, &meta));
  char *names = metadata(meta, allocator, "class_names"), *input = metadata(meta, allocator, "input");
  ort->ReleaseModelMetadata(meta);
  if (!names) {
    fprintf(stderr, "error: %s: no class_names in its metadata (not a cifar-pack export?)\n", model);
    exit(2);
  }
  *max_pixels = cp_max_pixels(input);
  if (*max_pixels < 1) {
    fprintf(stderr, *max_pixels == 0 ? "error: CIFAR_PACK_MAX_PIXELS must be a whole number of at least 1\n"
                                     : "error: %s: no max_pixels in its input metadata (exported by an older cifar-pack): "
                                       "set CIFAR_PACK_MAX_PIXELS, or re-export it with cifar-pack export\n", model);
    exit(2);
  }
  *classes = parse_labels(names, labels);
  free(names);
  free(input);
  return session;
}

/* Run one batch: pixels (n, 32, 32, 3) uint8 -> probabilities (n, classes) float32, printed. */
static void run_batch(OrtSession *session, uint8_t *pixels, char **paths, int n, char **labels, int classes) {
  OrtMemoryInfo *memory;
  OrtValue *input = NULL, *output = NULL;
  int64_t shape[4] = {n, CP_SIZE, CP_SIZE, 3};
  const char *in_names[] = {"images"}, *out_names[] = {"probabilities"};
  float *probs;
  check(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory));
  check(ort->CreateTensorWithDataAsOrtValue(memory, pixels, (size_t)n * CP_SIZE * CP_SIZE * 3, shape, 4,
                                            ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, &input));
  check(ort->Run(session, NULL, in_names, (const OrtValue *const *)&input, 1, out_names, 1, &output));
  check(ort->GetTensorMutableData(output, (void **)&probs));
  for (int i = 0; i < n; i++) {
    const float *row = probs + (size_t)i * classes;
    int best = 0;
    for (int c = 1; c < classes; c++)
      if (row[c] > row[best]) best = c;
    printf("%s\t%s\t", paths[i], labels[best]);
    for (int c = 0; c < classes; c++) printf(c ? " %.9g" : "%.9g", row[c]);
    printf("\n");
  }
  ort->ReleaseValue(output);
  ort->ReleaseValue(input);
  ort->ReleaseMemoryInfo(memory);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.onnx IMAGE...\n", argv[0]);
    return 2;
  }
  ort = OrtGetApiBase()->GetApi(API_VERSION);
  if (!ort) {
    fprintf(stderr, "error: this onnxruntime library is older than API %d (onnxruntime 1.24)\n", API_VERSION);
    return 2;
  }
  OrtEnv *env;
  check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "cifar-pack", &env));
  char **labels;
  int classes, failed = 0, n = 0;
  long long max_pixels;
  OrtSession *session = open_session(env, argv[1], &labels, &classes, &max_pixels);
  uint8_t *pixels = malloc((size_t)BATCH * CP_SIZE * CP_SIZE * 3);
  char *paths[BATCH];
  for (int i = 2; i < argc; i++) {
    char why[256];
    if (cp_load_image(argv[i], max_pixels, pixels + (size_t)n * CP_SIZE * CP_SIZE * 3, why, sizeof why)) {
      fprintf(stderr, "%s\terror: %s\n", argv[i], why);
      failed = 1;
      continue;
    }
    paths[n++] = argv[i];
    if (n == BATCH) {
      run_batch(session, pixels, paths, n, labels, classes);
      n = 0;
    }
  }
  if (n) run_batch(session, pixels, paths, n, labels, classes);
  free(pixels);
  for (int c = 0; c < classes; c++) free(labels[c]);
  free(labels);
  ort->ReleaseSession(session);
  ort->ReleaseEnv(env);
  return failed;
}
