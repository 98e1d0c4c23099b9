// The `gpu` strategy: the whole graph on one Vulkan device.
#include "runtime/executor.h"

namespace vkfuse::runtime {

std::unique_ptr<Executor> make_vulkan_executor(const graph::Graph&, const ExecutorOptions&) {
  throw Error(ErrorKind::InvalidArgument, "strategy 'gpu' is not implemented in this build yet");
}

}  // namespace vkfuse::runtime
