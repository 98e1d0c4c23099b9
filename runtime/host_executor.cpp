// The `cpu` strategy and a plan's host segments: one run's state over a
// shared HostProgram. See runtime/host_executor.h.
#include "runtime/host_executor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "vkfuse/error.h"

namespace vkfuse::runtime {

namespace hk = codegen::halide;
using graph::ValueId;

HostExecutor::HostExecutor(std::shared_ptr<const HostProgram> program, const ExecutorOptions& options)
    : program_(std::move(program)),
      threads_(options.threads > 0 ? options.threads
                                   : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) {
  hk::set_num_threads(threads_);
  arena_storage_.assign(static_cast<std::size_t>(program_->arena_floats() + 16), 0.f);
  side_.assign(program_->graph().values.size(), std::nullopt);
}

HostExecutor::HostExecutor(const graph::Graph& graph, const ExecutorOptions& options, std::span<const int> segment_of)
    : HostExecutor(std::make_shared<const HostProgram>(graph, segment_of, options.threads), options) {}

HostExecutor::~HostExecutor() = default;

std::pair<std::int64_t, std::int64_t> HostExecutor::activation_memory(const graph::Graph& graph) {
  const HostProgram plan = HostProgram::plan_only(graph);
  return {plan.arena_bytes(), plan.unplanned_bytes()};
}

std::string HostExecutor::kernel_target() { return hk::target_description(); }

void HostExecutor::run(std::span<const float* const> inputs, std::span<float* const> outputs) {
  for (int k = 0; k < segment_count(); ++k) run_segment(k, inputs, outputs);
}

void HostExecutor::run_segment(int segment, std::span<const float* const> inputs, std::span<float* const> outputs) {
  if (segment < 0 || segment >= segment_count())
    throw Error(ErrorKind::Internal, "HostExecutor: no segment " + std::to_string(segment));
  const graph::Graph& g = program_->graph();
  const HostFrame f = frame();
  hk::set_num_threads(threads_);
  const hk::DenormalsAreZero flush;
  for (std::size_t i : program_->segment_inputs(segment)) {
    if (i >= inputs.size()) continue;
    const ValueId v = g.inputs[i];
    const std::size_t n = static_cast<std::size_t>(graph::element_count(g.value(v).shape));
    float* dst = program_->value_data(v, f.arena);
    if (!dst || n == 0) continue;
    std::memcpy(dst, inputs[i], n * sizeof(float));
  }
  const auto [first, last] = program_->segment_steps(segment);
  const auto& steps = program_->steps();
  for (std::size_t s = first; s < last; ++s) steps[s].run(f);
  for (std::size_t i : program_->segment_outputs(segment)) {
    if (i >= outputs.size()) continue;
    const ValueId v = g.outputs[i];
    const std::size_t n = static_cast<std::size_t>(graph::element_count(g.value(v).shape));
    if (n == 0) continue;  // zero elements: nothing computed, nothing to copy
    if (const float* src = program_->value_data(v, f.arena)) {
      std::memcpy(outputs[i], src, n * sizeof(float));
    } else if (side_[static_cast<std::size_t>(v)]) {
      throw Error(ErrorKind::Unsupported, "output '" + g.value(v).name + "' is not float32");
    } else {
      throw Error(ErrorKind::Internal, "output '" + g.value(v).name + "' was not computed");
    }
  }
}

std::vector<std::pair<std::string, double>> HostExecutor::profile(std::span<const float* const> inputs,
                                                                  std::span<float* const> outputs) {
  run(inputs, outputs);  // inputs in place, caches warm
  const HostFrame f = frame();
  const hk::DenormalsAreZero flush;  // as run() has them
  std::vector<std::pair<std::string, double>> times;
  for (const auto& s : program_->steps()) {
    const auto t0 = std::chrono::steady_clock::now();
    s.run(f);
    const auto t1 = std::chrono::steady_clock::now();
    times.emplace_back(s.name, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return times;
}

std::string HostExecutor::description() const {
  auto mib = [](std::int64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
    return std::string(buf);
  };
  std::string s = "host: Halide AOT kernels " + hk::target_description() + ", " + std::to_string(threads_) +
                  " thread" + (threads_ == 1 ? "" : "s") + ", activation arena " + mib(arena_bytes()) +
                  " (unplanned " + mib(unplanned_bytes()) + ")";
  if (!fallback_ops().empty()) {
    s += "; reference fallback:";
    for (const auto& op : fallback_ops()) s += " " + op;
  }
  return s;
}

std::unique_ptr<Executor> make_host_executor(const graph::Graph& graph, const ExecutorOptions& options) {
  return std::make_unique<HostExecutor>(graph, options);
}

}  // namespace vkfuse::runtime
