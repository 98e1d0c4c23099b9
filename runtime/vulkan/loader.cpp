#include "runtime/vulkan/loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace vkfuse {

#define VKFUSE_DEFINE_VULKAN_FUNCTION(name) PFN_##name name = nullptr;
VKFUSE_VULKAN_FUNCTIONS(VKFUSE_DEFINE_VULKAN_FUNCTION)
#undef VKFUSE_DEFINE_VULKAN_FUNCTION

namespace runtime::vulkan {

bool load_vulkan(std::string* why) {
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    const char* env = std::getenv("VKFUSE_VULKAN_LOADER");
    const std::string file = env && *env ? env : "libvulkan.so.1";
    // Never closed: the functions stay in use until the process exits.
    void* lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      failure = "the Vulkan loader (" + file + ") could not be opened: " + std::string(dlerror()) +
                "; install libvulkan1 and a Vulkan driver (e.g. mesa-vulkan-drivers)";
      return;
    }
#define VKFUSE_LOAD_VULKAN_FUNCTION(name)                                                          \
  name = reinterpret_cast<PFN_##name>(dlsym(lib, #name));                                          \
  if (!name && failure.empty())                                                                     \
    failure = "the Vulkan loader (" + file + ") lacks " #name " (Vulkan 1.1 or later is needed)";
    VKFUSE_VULKAN_FUNCTIONS(VKFUSE_LOAD_VULKAN_FUNCTION)
#undef VKFUSE_LOAD_VULKAN_FUNCTION
  });
  if (why) *why = failure;
  return failure.empty();
}

}  // namespace runtime::vulkan
}  // namespace vkfuse
