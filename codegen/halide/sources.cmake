# Sources of codegen/halide/, included by codegen/CMakeLists.txt.
