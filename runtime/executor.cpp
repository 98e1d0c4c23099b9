#include "runtime/executor.h"

namespace vkfuse::runtime {

std::unique_ptr<Executor> make_executor(const std::string& strategy, const graph::Graph& graph,
                                        const ExecutorOptions& options) {
  if (strategy == "reference") return make_reference_executor(graph, options);
  if (strategy == "cpu") return make_host_executor(graph, options);
  if (strategy == "gpu") return make_vulkan_executor(graph, options);
  throw Error(ErrorKind::InvalidArgument, "unknown strategy '" + strategy + "'");
}

}  // namespace vkfuse::runtime
