// cli/tensor_file.h — reading and writing tensors as raw little-endian
// float32 (.bin) or NumPy .npy files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vkfuse::cli {

struct TensorFile {
  std::vector<std::int64_t> shape;  // empty for .bin (raw files carry no shape)
  bool has_shape = false;
  std::vector<float> data;
};

// Throws vkfuse::Error(Io / InvalidInput) with the file name in the message.
TensorFile read_tensor_file(const std::string& path);
// Writes .npy when the path ends in .npy, raw float32 otherwise.
void write_tensor_file(const std::string& path, const std::vector<std::int64_t>& shape, const std::vector<float>& data);

}  // namespace vkfuse::cli
