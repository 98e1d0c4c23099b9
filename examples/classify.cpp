// classify — one image through an ImageNet classifier, top-5 classes.
//
//   classify MODEL.onnx IMAGE.png|jpg [--labels FILE] [--strategy S] [--threads N]
//
// MODEL is an ONNX file whose one input is [1, 3, H, W] (a torchvision
// export, e.g. from tools/export_torchvision.py) or a built-in name
// (resnet18, inception_v3). FILE holds one class name per line; without it
// classes are printed by index.
#include <vkfuse/vkfuse.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "image.h"

int main(int argc, char** argv) {
  std::vector<std::string> args;
  std::string labels_path;
  vkfuse::LoadOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--labels" || a == "--strategy" || a == "--threads") && i + 1 < argc) {
      const std::string v = argv[++i];
      if (a == "--labels") labels_path = v;
      else if (a == "--strategy") options.strategy = v;
      else options.threads = std::stoi(v);
    } else if (a == "-h" || a == "--help") {
      args.clear();
      break;
    } else {
      args.push_back(a);
    }
  }
  if (args.size() != 2) {
    std::fprintf(stderr, "usage: classify MODEL.onnx IMAGE.png|jpg [--labels FILE] [--strategy S] [--threads N]\n");
    return 2;
  }
  try {
    options.progress = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    const bool builtin = args[0].size() < 5 || args[0].compare(args[0].size() - 5, 5, ".onnx") != 0;
    vkfuse::Model model = builtin ? vkfuse::Model::builtin(args[0], options) : vkfuse::Model::load(args[0], options);
    for (const std::string& w : model.warnings()) std::fprintf(stderr, "vkfuse: %s\n", w.c_str());
    if (model.inputs().size() != 1 || model.inputs()[0].shape.size() != 4 || model.inputs()[0].shape[1] != 3) {
      std::fprintf(stderr, "classify: %s does not take one [1, 3, H, W] image\n", args[0].c_str());
      return 2;
    }
    const auto& shape = model.inputs()[0].shape;
    const std::vector<float> input =
        example::to_input(example::read_image(args[1]), static_cast<int>(shape[2]), static_cast<int>(shape[3]));
    std::vector<float> logits(static_cast<std::size_t>(model.outputs()[0].element_count()));
    const vkfuse::InputBuffer in[] = {{model.inputs()[0].name, input}};
    const vkfuse::OutputBuffer out[] = {{model.outputs()[0].name, logits}};
    const vkfuse::RunTimings timings = model.run(in, out);

    // Softmax, then the five most probable classes.
    const float top = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float v : logits) sum += std::exp(static_cast<double>(v - top));
    std::vector<int> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    const std::size_t k = std::min<std::size_t>(5, order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](int a, int b) { return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)]; });
    std::vector<std::string> labels;
    if (!labels_path.empty()) {
      std::ifstream f(labels_path);
      if (!f) throw std::runtime_error(labels_path + ": cannot open");
      for (std::string line; std::getline(f, line);) labels.push_back(line);
    }
    std::printf("%s on %s (%.2f ms):\n", args[1].c_str(), model.backend_description().c_str(),
                timings.total_ms);
    for (std::size_t r = 0; r < k; ++r) {
      const int c = order[r];
      const double p = std::exp(static_cast<double>(logits[static_cast<std::size_t>(c)] - top)) / sum;
      const std::string name = static_cast<std::size_t>(c) < labels.size() ? labels[static_cast<std::size_t>(c)]
                                                                              : "class " + std::to_string(c);
      std::printf("  %zu. %6.2f%%  %s\n", r + 1, 100 * p, name.c_str());
    }
  } catch (const vkfuse::Error& e) {
    std::fprintf(stderr, "classify: %s (%s)\n", e.what(), vkfuse::error_kind_name(e.kind()));
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "classify: %s\n", e.what());
    return 1;
  }
  return 0;
}
