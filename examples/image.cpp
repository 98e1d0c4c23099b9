#include "image.h"

#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <memory>
#include <stdexcept>

namespace example {
namespace {

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

Image read_png(std::FILE* f, const std::string& path) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_stdio(&png, f)) throw std::runtime_error(path + ": " + png.message);
  png.format = PNG_FORMAT_RGB;
  Image im;
  im.width = static_cast<int>(png.width);
  im.height = static_cast<int>(png.height);
  im.rgb.resize(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, im.rgb.data(), 0, nullptr))
    throw std::runtime_error(path + ": " + png.message);
  return im;
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

Image read_jpeg(std::FILE* f, const std::string& path) {
  jpeg_decompress_struct cinfo{};
  JpegError err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = [](j_common_ptr c) {
    auto* e = reinterpret_cast<JpegError*>(c->err);
    e->mgr.format_message(c, e->message);
    std::longjmp(e->jump, 1);
  };
  Image im;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw std::runtime_error(path + ": " + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  im.width = static_cast<int>(cinfo.output_width);
  im.height = static_cast<int>(cinfo.output_height);
  im.rgb.resize(static_cast<std::size_t>(im.width) * im.height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = im.rgb.data() + static_cast<std::size_t>(cinfo.output_scanline) * im.width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return im;
}

}  // namespace

Image read_image(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw std::runtime_error(path + ": cannot open");
  unsigned char magic[8] = {};
  const std::size_t n = std::fread(magic, 1, sizeof magic, f.get());
  std::rewind(f.get());
  if (n == 8 && png_sig_cmp(magic, 0, 8) == 0) return read_png(f.get(), path);
  if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) return read_jpeg(f.get(), path);
  throw std::runtime_error(path + ": not a PNG or JPEG file");
}

std::vector<float> to_input(const Image& image, int height, int width) {
  static constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
  static constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};
  std::vector<float> out(static_cast<std::size_t>(3) * height * width);
  const float sy = static_cast<float>(image.height) / height, sx = static_cast<float>(image.width) / width;
  auto at = [&](int y, int x, int c) {
    y = std::clamp(y, 0, image.height - 1);
    x = std::clamp(x, 0, image.width - 1);
    return image.rgb[(static_cast<std::size_t>(y) * image.width + x) * 3 + c] / 255.0f;
  };
  for (int y = 0; y < height; ++y) {
    const float fy = std::max(0.0f, (y + 0.5f) * sy - 0.5f);
    const int y0 = static_cast<int>(fy);
    const float wy = fy - y0;
    for (int x = 0; x < width; ++x) {
      const float fx = std::max(0.0f, (x + 0.5f) * sx - 0.5f);
      const int x0 = static_cast<int>(fx);
      const float wx = fx - x0;
      for (int c = 0; c < 3; ++c) {
        const float v = (1 - wy) * ((1 - wx) * at(y0, x0, c) + wx * at(y0, x0 + 1, c)) +
                        wy * ((1 - wx) * at(y0 + 1, x0, c) + wx * at(y0 + 1, x0 + 1, c));
        out[(static_cast<std::size_t>(c) * height + y) * width + x] = (v - kMean[c]) / kStd[c];
      }
    }
  }
  return out;
}

}  // namespace example
