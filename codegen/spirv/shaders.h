// codegen/spirv/shaders.h — the GLSL compute templates of shaders/, embedded
// into the library at build time (codegen/spirv/embed_shaders.cmake).
#pragma once

#include <string_view>
#include <vector>

namespace vkfuse::codegen::spirv {

struct EmbeddedShader {
  std::string_view name;    // file name without extension, e.g. "conv"
  std::string_view source;  // the template's text
};

const std::vector<EmbeddedShader>& embedded_shaders();
// The template named `name`; throws Error(Internal) if there is none.
std::string_view shader_template(std::string_view name);

}  // namespace vkfuse::codegen::spirv
