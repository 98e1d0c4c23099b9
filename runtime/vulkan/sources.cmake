# Sources of runtime/vulkan/, included by runtime/CMakeLists.txt.
target_sources(vkfuse_runtime PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/devices.cpp
  ${CMAKE_CURRENT_LIST_DIR}/vulkan_executor.cpp
)
