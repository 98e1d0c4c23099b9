# Sources of runtime/vulkan/, included by runtime/CMakeLists.txt.
#   loader           libvulkan.so.1 opened at run time (dlopen), its functions
#   devices          vkfuse::list_devices()
#   context          instance, device, queue, buffers, uploads, pipeline cache, validation
#   vulkan_executor  the `gpu` strategy (make_vulkan_executor)
target_sources(vkfuse_runtime PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/loader.cpp
  ${CMAKE_CURRENT_LIST_DIR}/devices.cpp
  ${CMAKE_CURRENT_LIST_DIR}/context.cpp
  ${CMAKE_CURRENT_LIST_DIR}/vulkan_executor.cpp
)
