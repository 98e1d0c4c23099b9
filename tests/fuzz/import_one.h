// tests/fuzz/import_one.h — what the import fuzzers do with one input: load
// it as an ONNX model and, if that works, run it once with the reference
// strategy. Anything but success or vkfuse::Error is a bug.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkfuse/vkfuse.h"

namespace vkfuse::testing {

inline bool import_and_run(std::span<const std::uint8_t> bytes) {
  try {
    vkfuse::LoadOptions opts;
    opts.threads = 1;
    auto model = vkfuse::Model::load_bytes(bytes, opts);
    std::int64_t total = 0;
    for (const auto& t : model.inputs()) total += t.element_count();
    for (const auto& t : model.outputs()) total += t.element_count();
    if (model.summary().flops > 50'000'000 || total > 4'000'000) return true;  // too big to run per input
    std::vector<std::vector<float>> in(model.inputs().size()), out(model.outputs().size());
    std::vector<vkfuse::InputBuffer> ib;
    std::vector<vkfuse::OutputBuffer> ob;
    for (std::size_t i = 0; i < in.size(); ++i) {
      in[i].assign(static_cast<std::size_t>(model.inputs()[i].element_count()), 0.5f);
      ib.push_back({model.inputs()[i].name, in[i]});
    }
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i].resize(static_cast<std::size_t>(model.outputs()[i].element_count()));
      ob.push_back({model.outputs()[i].name, out[i]});
    }
    model.run(ib, ob);
    return true;
  } catch (const vkfuse::Error&) {
    return false;
  }
}

}  // namespace vkfuse::testing
