// libFuzzer target for the importer and the planner (clang only; CI runs it
// for a bounded time from tests/fuzz/corpus): each input is imported as an
// ONNX model, prepared as a load prepares it, and planned with three
// strategies against the default profiles. Anything but success or
// vkfuse::Error (a crash, a sanitizer report, another exception) is a bug.
// It links the graph and planner libraries only, so a clang build of it
// needs none of the kernels:
//   cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DVKFUSE_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_plan && build-fuzz/tests/fuzz/fuzz_plan -max_total_time=60 CORPUS
#include <cstdint>
#include <span>

#include "graph/passes.h"
#include "planner/planner.h"
#include "vkfuse/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace g = vkfuse::graph;
  namespace p = vkfuse::planner;
  try {
    g::Graph graph = g::import_onnx({data, size});
    if (graph.nodes.size() > 200) return 0;  // planning time grows with the graph: keep each input fast
    g::prepare_graph(graph);
    for (const char* strategy : {"fused", "gpu", "naive"}) {
      p::PlanOptions options;
      options.strategy = strategy;
      p::make_plan(graph, p::default_host_profile(), p::default_accelerator_profile("discrete-gpu"),
                   p::default_link_profile("discrete-gpu"), options);
    }
  } catch (const vkfuse::Error&) {
    // a clear error is the right answer to a bad model
  }
  return 0;
}
