// batch — every image of a folder through one loaded model, from several
// threads at once (LoadOptions::pipeline runs in flight), top-1 per image.
//
//   batch MODEL.onnx FOLDER [--threads N] [--strategy S]
//
// One Model serves all threads: run() may be called by up to `pipeline`
// threads at once, each with its own input and output buffers.
#include <vkfuse/vkfuse.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "image.h"

int main(int argc, char** argv) {
  std::vector<std::string> args;
  int threads = 2;
  vkfuse::LoadOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--threads" || a == "--strategy") && i + 1 < argc) {
      const std::string v = argv[++i];
      if (a == "--threads") threads = std::max(1, std::stoi(v));
      else options.strategy = v;
    } else {
      args.push_back(a);
    }
  }
  if (args.size() != 2) {
    std::fprintf(stderr, "usage: batch MODEL.onnx FOLDER [--threads N] [--strategy S]\n");
    return 2;
  }
  try {
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(args[1])) {
      const std::string ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      std::fprintf(stderr, "batch: no .png or .jpg files in %s\n", args[1].c_str());
      return 2;
    }
    options.pipeline = threads;
    options.threads = 0;
    vkfuse::Model model = vkfuse::Model::load(args[0], options);
    if (model.inputs().size() != 1 || model.inputs()[0].shape.size() != 4 || model.inputs()[0].shape[1] != 3) {
      std::fprintf(stderr, "batch: %s does not take one [1, 3, H, W] image\n", args[0].c_str());
      return 2;
    }
    const auto& shape = model.inputs()[0].shape;
    std::vector<int> top1(files.size(), -1);
    std::vector<std::string> errors(files.size());
    std::atomic<std::size_t> next{0};
    const auto t0 = std::chrono::steady_clock::now();
    auto worker = [&] {
      std::vector<float> logits(static_cast<std::size_t>(model.outputs()[0].element_count()));
      for (std::size_t i; (i = next++) < files.size();) {
        try {
          const std::vector<float> input = example::to_input(example::read_image(files[i]), static_cast<int>(shape[2]),
                                                             static_cast<int>(shape[3]));
          const vkfuse::InputBuffer in[] = {{model.inputs()[0].name, input}};
          const vkfuse::OutputBuffer out[] = {{model.outputs()[0].name, logits}};
          model.run(in, out);
          top1[i] = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      }
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int failed = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
      if (errors[i].empty()) {
        std::printf("%s: class %d\n", files[i].c_str(), top1[i]);
      } else {
        std::printf("%s: %s\n", files[i].c_str(), errors[i].c_str());
        ++failed;
      }
    }
    std::printf("%zu images, %d threads, %.1f images/s (%s)\n", files.size(), threads, files.size() / s,
                model.backend_description().c_str());
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "batch: %s\n", e.what());
    return 1;
  }
}
