#include "runtime/executor.h"

namespace vkfuse::runtime {

bool host_backend_available() { return true; }
bool vulkan_backend_available() { return true; }

}  // namespace vkfuse::runtime
