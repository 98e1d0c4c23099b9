#include "codegen/spirv/shaders.h"

#include <string>

#include "vkfuse/error.h"

namespace vkfuse::codegen::spirv {

std::string_view shader_template(std::string_view name) {
  for (const EmbeddedShader& s : embedded_shaders())
    if (s.name == name) return s.source;
  throw Error(ErrorKind::Internal, "no embedded shader template named '" + std::string(name) + "'");
}

}  // namespace vkfuse::codegen::spirv
