// vkfuse_codegen: see codegen/CMakeLists.txt for what lives here.
namespace vkfuse::codegen {}
