// libFuzzer entry point for the ONNX importer (clang only):
//   cmake -DCMAKE_CXX_COMPILER=clang++ -DVKFUSE_FUZZ=ON ... && ./fuzz_import corpus/
#include "tests/fuzz/import_one.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  vkfuse::testing::import_and_run({data, size});
  return 0;
}
