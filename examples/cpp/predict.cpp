// Classify images with a cifar-pack ONNX model from C++ (C++17), through onnxruntime's C API
// with RAII owners (onnxruntime's C++ wrapper header, onnxruntime_cxx_api.h, ships only in its
// release archives and NuGet, which CI cannot reach; the C API underneath is the same).
//
//   ./predict MODEL.onnx IMAGE...
//
// Prints one line per image: path, TAB, label, TAB, every class probability (space-separated,
// 9 significant digits). Unreadable files: "path<TAB>error: why" on stderr, exit code 1.
// Preprocessing (decode as Pillow does, EXIF orientation, alpha over white, Pillow's BILINEAR resize
// to 32x32) is examples/c/image.c.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "image.h"  // declares its functions extern "C" itself
#include "onnxruntime_c_api.h"

namespace {

constexpr int kApiVersion = 24;  // the headers' API; any onnxruntime >= 1.24 serves it
constexpr size_t kBatch = 256;   // images per Run call
constexpr size_t kPixels = CP_SIZE * CP_SIZE * 3;
const OrtApi* ort = nullptr;

void check(OrtStatus* status) {
  if (status) {
    std::string message = ort->GetErrorMessage(status);
    ort->ReleaseStatus(status);
    throw std::runtime_error("onnxruntime: " + message);
  }
}

// unique_ptr owners that call the matching Release function.
template <typename T, void (*OrtApi::*Release)(T*)>
struct Releaser {
  void operator()(T* p) const { (ort->*Release)(p); }
};
using Env = std::unique_ptr<OrtEnv, Releaser<OrtEnv, &OrtApi::ReleaseEnv>>;
using Session = std::unique_ptr<OrtSession, Releaser<OrtSession, &OrtApi::ReleaseSession>>;
using Value = std::unique_ptr<OrtValue, Releaser<OrtValue, &OrtApi::ReleaseValue>>;
using MemoryInfo = std::unique_ptr<OrtMemoryInfo, Releaser<OrtMemoryInfo, &OrtApi::ReleaseMemoryInfo>>;
using Options = std::unique_ptr<OrtSessionOptions, Releaser<OrtSessionOptions, &OrtApi::ReleaseSessionOptions>>;
using Metadata = std::unique_ptr<OrtModelMetadata, Releaser<OrtModelMetadata, &OrtApi::ReleaseModelMetadata>>;

// metadata_props["class_names"]: a JSON list of plain strings, as cifar-pack writes it.
std::vector<std::string> parse_labels(const std::string& json) {
  std::vector<std::string> labels;
  for (size_t i = json.find('"'); i != std::string::npos; i = json.find('"', i + 1)) {
    std::string label;
    for (++i; i < json.size() && json[i] != '"'; ++i) label += json[i] == '\\' ? json[++i] : json[i];
    labels.push_back(label);
  }
  return labels;
}

class Classifier {
 public:
  Classifier(OrtEnv* env, const char* model) {
    OrtSessionOptions* options;
    check(ort->CreateSessionOptions(&options));
    Options owned_options(options);
    OrtSession* session;
    check(ort->CreateSession(env, model, options, &session));
    session_.reset(session);
    OrtAllocator* allocator;
    check(ort->GetAllocatorWithDefaultOptions(&allocator));
    OrtModelMetadata* meta;
    check(ort->SessionGetModelMetadata(session, &meta));
    Metadata owned_meta(meta);
    std::string names = lookup(meta, allocator, "class_names"), input = lookup(meta, allocator, "input");
    if (names.empty()) throw std::runtime_error(std::string(model) + ": no class_names in its metadata");
    labels_ = parse_labels(names);
    // The pixel cap: the "max_pixels" of metadata_props["input"], or CIFAR_PACK_MAX_PIXELS.
    max_pixels_ = cp_max_pixels(input.empty() ? nullptr : input.c_str());
    if (max_pixels_ == 0) throw std::runtime_error("CIFAR_PACK_MAX_PIXELS must be a whole number of at least 1");
    if (max_pixels_ < 0)
      throw std::runtime_error(std::string(model) + ": no max_pixels in its input metadata (exported by an older " +
                               "cifar-pack): set CIFAR_PACK_MAX_PIXELS, or re-export it with cifar-pack export");
  }

  // pixels: n images of (32, 32, 3) uint8 -> n rows of class probabilities.
  std::vector<std::vector<float>> classify(std::vector<uint8_t>& pixels, size_t n) const {
    OrtMemoryInfo* memory;
    check(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory));
    MemoryInfo owned_memory(memory);
    const int64_t shape[4] = {static_cast<int64_t>(n), CP_SIZE, CP_SIZE, 3};
    OrtValue *input = nullptr, *output = nullptr;
    check(ort->CreateTensorWithDataAsOrtValue(memory, pixels.data(), n * kPixels, shape, 4,
                                              ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, &input));
    Value owned_input(input);
    const char* in_names[] = {"images"};
    const char* out_names[] = {"probabilities"};
    check(ort->Run(session_.get(), nullptr, in_names, &input, 1, out_names, 1, &output));
    Value owned_output(output);
    float* probs;
    check(ort->GetTensorMutableData(output, reinterpret_cast<void**>(&probs)));
    std::vector<std::vector<float>> rows;
    for (size_t i = 0; i < n; ++i) rows.emplace_back(probs + i * labels_.size(), probs + (i + 1) * labels_.size());
    return rows;
  }

  const std::vector<std::string>& labels() const { return labels_; }
  long long max_pixels() const { return max_pixels_; }

 private:
  // A metadata_props value (JSON text), or "" when the key is absent.
  static std::string lookup(OrtModelMetadata* meta, OrtAllocator* allocator, const char* key) {
    char* value = nullptr;
    check(ort->ModelMetadataLookupCustomMetadataMap(meta, allocator, key, &value));
    std::string text = value ? value : "";
    if (value) check(ort->AllocatorFree(allocator, value));
    return text;
  }

  Session session_;
  std::vector<std::string> labels_;
  long long max_pixels_ = -1;
};

void print(const Classifier& model, const std::vector<std::string>& paths, std::vector<uint8_t>& pixels) {
  auto rows = model.classify(pixels, paths.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    size_t best = 0;
    for (size_t c = 1; c < rows[i].size(); ++c)
      if (rows[i][c] > rows[i][best]) best = c;
    std::printf("%s\t%s\t", paths[i].c_str(), model.labels()[best].c_str());
    for (size_t c = 0; c < rows[i].size(); ++c) std::printf(c ? " %.9g" : "%.9g", rows[i][c]);
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.onnx IMAGE...\n", argv[0]);
    return 2;
  }
  ort = OrtGetApiBase()->GetApi(kApiVersion);
  if (!ort) {
    std::fprintf(stderr, "error: this onnxruntime library is older than API %d (onnxruntime 1.24)\n", kApiVersion);
    return 2;
  }
  try {
    OrtEnv* env;
    check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "cifar-pack", &env));
    Env owned_env(env);
    Classifier model(env, argv[1]);
    int failed = 0;
    std::vector<std::string> paths;
    std::vector<uint8_t> pixels;
    for (int i = 2; i < argc; ++i) {
      uint8_t image[kPixels];
      char why[256];
      if (cp_load_image(argv[i], model.max_pixels(), image, why, sizeof why)) {
        std::fprintf(stderr, "%s\terror: %s\n", argv[i], why);
        failed = 1;
        continue;
      }
      paths.emplace_back(argv[i]);
      pixels.insert(pixels.end(), image, image + kPixels);
      if (paths.size() == kBatch) {
        print(model, paths, pixels);
        paths.clear();
        pixels.clear();
      }
    }
    if (!paths.empty()) print(model, paths, pixels);
    return failed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
