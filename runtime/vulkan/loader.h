// runtime/vulkan/loader.h — the Vulkan loader (libvulkan.so.1), opened at run
// time rather than linked: a machine without it still runs vkfuse on the host.
//
// Include this instead of <vulkan/vulkan.h>. The Vulkan functions vkfuse calls
// are function pointers in namespace vkfuse (so code inside it calls them by
// their usual names), filled by load_vulkan() from the loader's exports; they
// never clash with an application's own libvulkan symbols.
// VKFUSE_VULKAN_LOADER names another loader file (tests use a missing one).
#pragma once

#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan.h>

#include <string>

#define VKFUSE_VULKAN_FUNCTIONS(X)                                                                                  \
  X(vkGetInstanceProcAddr) X(vkCreateInstance) X(vkDestroyInstance) X(vkEnumerateInstanceLayerProperties)        \
  X(vkEnumeratePhysicalDevices) X(vkEnumerateDeviceExtensionProperties) X(vkGetPhysicalDeviceProperties)          \
  X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceFeatures2) X(vkGetPhysicalDeviceFormatProperties)        \
  X(vkGetPhysicalDeviceMemoryProperties) X(vkGetPhysicalDeviceMemoryProperties2)                                  \
  X(vkGetPhysicalDeviceQueueFamilyProperties) X(vkCreateDevice) X(vkDestroyDevice) X(vkDeviceWaitIdle) X(vkQueueWaitIdle) \
  X(vkGetDeviceQueue) X(vkQueueSubmit) X(vkCreateBuffer) X(vkDestroyBuffer) X(vkCreateBufferView)                \
  X(vkDestroyBufferView) X(vkGetBufferMemoryRequirements) X(vkAllocateMemory) X(vkFreeMemory)                    \
  X(vkBindBufferMemory) X(vkMapMemory) X(vkUnmapMemory) X(vkCreateCommandPool) X(vkDestroyCommandPool)           \
  X(vkAllocateCommandBuffers) X(vkFreeCommandBuffers) X(vkBeginCommandBuffer) X(vkEndCommandBuffer)              \
  X(vkCmdBindDescriptorSets) X(vkCmdBindPipeline) X(vkCmdCopyBuffer) X(vkCmdDispatch) X(vkCmdPipelineBarrier)    \
  X(vkCmdPushConstants) X(vkCmdResetQueryPool) X(vkCmdWriteTimestamp) X(vkCreateComputePipelines)                \
  X(vkDestroyPipeline) X(vkCreatePipelineCache) X(vkDestroyPipelineCache) X(vkGetPipelineCacheData)              \
  X(vkCreatePipelineLayout) X(vkDestroyPipelineLayout) X(vkCreateShaderModule) X(vkDestroyShaderModule)          \
  X(vkCreateDescriptorPool) X(vkDestroyDescriptorPool) X(vkCreateDescriptorSetLayout)                            \
  X(vkDestroyDescriptorSetLayout) X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets) X(vkCreateFence)         \
  X(vkDestroyFence) X(vkResetFences) X(vkWaitForFences) X(vkCreateSemaphore) X(vkDestroySemaphore)               \
  X(vkCreateQueryPool) X(vkDestroyQueryPool) X(vkGetQueryPoolResults)

namespace vkfuse {

#define VKFUSE_DECLARE_VULKAN_FUNCTION(name) extern PFN_##name name;
VKFUSE_VULKAN_FUNCTIONS(VKFUSE_DECLARE_VULKAN_FUNCTION)
#undef VKFUSE_DECLARE_VULKAN_FUNCTION

namespace runtime::vulkan {

// Opens the loader once per process and fills the function pointers. True
// when every function is there; otherwise false, with `why` saying what is
// missing and what to install (the same answer on every call).
bool load_vulkan(std::string* why = nullptr);

}  // namespace runtime::vulkan
}  // namespace vkfuse
