# Sources of codegen/spirv/, included by codegen/CMakeLists.txt.
#   compiler    GLSL → SPIR-V (glslang) → spirv-opt → spirv-val, cached by source hash
#   lowering    prepared Graph → list of fused GPU kernels (GLSL + packed weights)
#   shaders     the GLSL templates of shaders/, embedded as string literals
find_package(Threads REQUIRED)
find_package(glslang REQUIRED)
find_package(SPIRV-Tools REQUIRED)
find_package(SPIRV-Tools-opt REQUIRED)

file(GLOB VKFUSE_SHADER_TEMPLATES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/shaders/*.glsl)
set(VKFUSE_EMBEDDED_SHADERS ${CMAKE_CURRENT_BINARY_DIR}/spirv_embedded_shaders.cpp)
add_custom_command(
  OUTPUT ${VKFUSE_EMBEDDED_SHADERS}
  COMMAND ${CMAKE_COMMAND} -DOUT=${VKFUSE_EMBEDDED_SHADERS} "-DFILES=${VKFUSE_SHADER_TEMPLATES}"
          -P ${CMAKE_CURRENT_LIST_DIR}/embed_shaders.cmake
  DEPENDS ${VKFUSE_SHADER_TEMPLATES} ${CMAKE_CURRENT_LIST_DIR}/embed_shaders.cmake
  COMMENT "Embedding GLSL templates from shaders/"
  VERBATIM)

target_sources(vkfuse_codegen PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/compiler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lowering.cpp
  ${CMAKE_CURRENT_LIST_DIR}/shaders.cpp
  ${VKFUSE_EMBEDDED_SHADERS}
)
target_link_libraries(vkfuse_codegen PRIVATE
  glslang::glslang glslang::SPIRV glslang::glslang-default-resource-limits
  SPIRV-Tools-opt SPIRV-Tools-static Threads::Threads)
