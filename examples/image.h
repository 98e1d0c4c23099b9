// examples/image.h — a PNG or JPEG file as a model input: decoded with libpng
// or libjpeg, resized (bilinear) to the model's height and width, scaled to
// [0, 1] and normalized with ImageNet's mean and deviation, as torchvision's
// classifiers expect, in NCHW order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace example {

struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // height * width * 3
};

// Throws std::runtime_error naming the file on anything it cannot read.
Image read_image(const std::string& path);

// [1, 3, height, width] floats.
std::vector<float> to_input(const Image& image, int height, int width);

}  // namespace example
