// graph/passes.h — turning bytes into a canonical, fully shaped Graph.
//
//   import_onnx()     parse and validate an ONNX ModelProto into the IR
//   infer_shapes()    give every value a dtype and concrete shape, folding
//                     constant subgraphs (incl. Shape/Gather arithmetic) as it goes
//   canonicalize()    drop Identity/Dropout, fold BatchNormalization into Conv,
//                     turn constant-bound Clip into attributes, spatial
//                     ReduceMean into GlobalAveragePool, Pow by 2 or 0.5 into
//                     Mul or Sqrt, decomposed LayerNorm into one node, fuse
//                     activations (and SiLU, HardSwish,
//                     GELU as exported) into their producers, run an
//                     average pool after the 1x1 conv that reads it
//                     where that pools fewer channels
//   prepare_graph()   all of the above, in order: what every backend starts from
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "graph/ir.h"

namespace vkfuse::graph {

using InputShapeOverrides = std::vector<std::pair<std::string, Shape>>;

// Throws Error(InvalidModel) on anything that is not a well-formed ONNX model,
// Error(Unsupported) for valid models outside vkfuse's scope (other domains,
// external data, non-float inputs).
Graph import_onnx(std::span<const std::uint8_t> bytes, const InputShapeOverrides& overrides = {});
// The bytes of a model file, memory-mapped (read where it cannot be: a pipe);
// an Io error naming the file if it cannot be opened or read.
class ModelFile {
 public:
  explicit ModelFile(const std::string& path);
  ~ModelFile();
  ModelFile(const ModelFile&) = delete;
  ModelFile& operator=(const ModelFile&) = delete;
  std::span<const std::uint8_t> bytes() const { return bytes_; }

 private:
  void* mapped_ = nullptr;
  std::string read_;
  std::span<const std::uint8_t> bytes_;
};
// Writes `parts` one after another to a temporary file beside `path` and
// renames it into place, so that readers (other processes too) see the old
// file, no file, or the whole new one. False, leaving nothing behind, if any
// step fails. The folder must exist.
bool write_file_atomically(const std::string& path, std::span<const std::span<const char>> parts);
// FNV-1a, 64-bit: the key and checksum of vkfuse's cache files (SPIR-V
// modules, device and link profiles).
std::uint64_t fnv1a(const void* data, std::size_t bytes);

void infer_shapes(Graph& g, int threads = 1);

struct CanonicalizeOptions {
  bool fold_batchnorm = true;
  bool fuse_activations = true;
};
void canonicalize(Graph& g, const CanonicalizeOptions& options = {}, int threads = 1);

// sort → infer_shapes → canonicalize → infer_shapes again (cheap) → checks.
void prepare_graph(Graph& g, int threads = 1);

// The built-in model zoo: CNNs built in C++ with deterministic synthetic
// weights, so that vkfuse runs without any file.
std::vector<std::string> zoo_names();
Graph build_zoo_model(const std::string& name, std::int64_t batch = 1);

}  // namespace vkfuse::graph

namespace vkfuse::graph {

// The graph made of `nodes` (indices into g.nodes, in a topological order that
// the subgraph keeps: an executor runs them in that order) alone: values
// they read that they do not produce become its inputs (constants stay
// constants), and values they produce that anything outside reads (or that
// are graph outputs) become its outputs. Inputs and outputs are listed in
// ascending ValueId order of `g`; `input_ids`/`output_ids`, when given, receive
// those ids so that callers can route buffers. Used to hand a planner's
// dispatch unit or host step to an executor.
Graph extract_subgraph(const Graph& g, const std::vector<std::int32_t>& nodes,
                       std::vector<ValueId>* input_ids = nullptr, std::vector<ValueId>* output_ids = nullptr);

}  // namespace vkfuse::graph
