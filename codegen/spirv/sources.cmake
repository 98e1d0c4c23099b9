# Sources of codegen/spirv/, included by codegen/CMakeLists.txt.
