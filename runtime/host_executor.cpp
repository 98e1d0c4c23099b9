// The `cpu` strategy: every op through Halide-generated kernels (codegen/halide).
#include "runtime/executor.h"

namespace vkfuse::runtime {

std::unique_ptr<Executor> make_host_executor(const graph::Graph&, const ExecutorOptions&) {
  throw Error(ErrorKind::InvalidArgument, "strategy 'cpu' is not implemented in this build yet");
}

}  // namespace vkfuse::runtime
