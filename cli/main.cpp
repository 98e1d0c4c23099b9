// The vkfuse runner: `vkfuse run | info | devices`, built only on the public
// API in include/vkfuse/.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>

#include "cli/tensor_file.h"
#include "vkfuse/vkfuse.h"

namespace {

using vkfuse::Error;
using vkfuse::ErrorKind;
using json = nlohmann::json;

constexpr const char* kDefaultModel = "resnet18";

std::string shape_string(const std::vector<std::int64_t>& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out.empty() ? "scalar" : out;
}

std::vector<std::int64_t> parse_dims(const std::string& text) {
  std::vector<std::int64_t> dims;
  std::istringstream is(text);
  std::string d;
  while (std::getline(is, d, 'x')) {
    try {
      std::size_t used = 0;
      long long v = std::stoll(d, &used);
      if (used != d.size() || v <= 0) throw std::invalid_argument(d);
      dims.push_back(v);
    } catch (const std::exception&) {
      throw Error(ErrorKind::InvalidArgument, "bad shape '" + text + "': write dimensions as 1x3x224x224");
    }
  }
  if (dims.empty()) throw Error(ErrorKind::InvalidArgument, "bad shape '" + text + "': write dimensions as 1x3x224x224");
  return dims;
}

// "NAME=VALUE" → {NAME, VALUE}; "VALUE" → {"", VALUE}.
std::pair<std::string, std::string> split_named(const std::string& arg) {
  auto eq = arg.find('=');
  if (eq == std::string::npos) return {"", arg};
  return {arg.substr(0, eq), arg.substr(eq + 1)};
}

struct ModelArgs {
  std::string model = kDefaultModel;
  std::string strategy = "fused";
  int threads = 0;
  std::vector<std::string> input_shapes;
  bool quiet = false;
  std::string device;
  bool fp16 = false;
  std::string link = "measured";
  double k = 1.0;
  std::string accel_profile;
  std::string plan_file;
  std::string trace_file;
  int pipeline = 1;
  double device_timeout_s = 120;
};

void add_model_options(CLI::App* cmd, ModelArgs& a, bool with_strategy) {
  cmd->add_option("model", a.model,
                  "An .onnx file, or a built-in model: " +
                      [] {
                        std::string s;
                        for (auto& n : vkfuse::Model::builtin_names()) s += (s.empty() ? "" : ", ") + n;
                        return s;
                      }() +
                      " (default: " + kDefaultModel + ")");
  if (with_strategy) {
    std::string list;
    for (auto& s : vkfuse::available_strategies()) list += (list.empty() ? "" : ", ") + s;
    cmd->add_option("-s,--strategy", a.strategy, "Where ops run; available in this build: " + list)
        ->capture_default_str();
    cmd->add_option("-d,--device", a.device, "Vulkan device: index, UUID or part of its name (see `vkfuse devices`; default: the best)");
    cmd->add_flag("--fp16", a.fp16, "16-bit storage on the device (fp32 accumulation)");
    cmd->add_option("--device-timeout", a.device_timeout_s,
                    "Seconds a run waits for the device before failing with a device timeout")
        ->capture_default_str();
    cmd->add_option("-l,--link", a.link,
                    "Host-accelerator link: measured, local, edge, or bw=<MB/s>,lat=<us> (emulated links are enforced)")
        ->capture_default_str();
    cmd->add_option("-k,--k", a.k, "Offloading ratio: an offload must beat k x its transfer cost")->capture_default_str();
    cmd->add_option("--profile", a.accel_profile, "Plan against this accelerator profile (JSON)");
    cmd->add_option("--plan", a.plan_file,
                    "Run this saved plan (from `vkfuse plan MODEL --json FILE`, or edited) instead of planning");
  }
  cmd->add_flag("-q,--quiet", a.quiet, "No progress lines on stderr");
  cmd->add_option("-t,--threads", a.threads, "Host threads (0: one per core)")->capture_default_str();
  cmd->add_option("--input-shape", a.input_shapes,
                  "Override an input's shape, NAME=1x3x224x224 (or just the dims for a one-input model); "
                  "needed for symbolic dimensions other than the batch");
}

// A loaded model's memory, as `run` and `info --memory` report it.
json memory_json(const vkfuse::MemoryReport& mem) {
  return {{"host_weights", mem.host_weight_bytes},          {"host_activations", mem.host_activation_bytes},
          {"device_weights", mem.device_weight_bytes},      {"device_activations", mem.device_activation_bytes},
          {"device_staging", mem.device_staging_bytes},     {"peak_host_rss", mem.peak_host_rss_bytes}};
}

void print_memory(const char* label, const vkfuse::MemoryReport& mem) {
  auto mib = [](std::int64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  std::printf("%shost: weights %.1f MiB, activations %.1f MiB (process peak %.0f MiB)", label,
              mib(mem.host_weight_bytes), mib(mem.host_activation_bytes), mib(mem.peak_host_rss_bytes));
  if (mem.device_weight_bytes + mem.device_activation_bytes + mem.device_staging_bytes > 0)
    std::printf("; device: weights %.1f MiB, activations %.1f MiB, staging %.1f MiB", mib(mem.device_weight_bytes),
                mib(mem.device_activation_bytes), mib(mem.device_staging_bytes));
  std::printf("\n");
}

vkfuse::Model load_model(const ModelArgs& a) {
  vkfuse::LoadOptions opts;
  opts.strategy = a.strategy;
  opts.threads = a.threads;
  opts.device = a.device;
  opts.fp16 = a.fp16;
  if (!(a.device_timeout_s >= 0.001 && a.device_timeout_s <= 1e6))
    throw Error(ErrorKind::InvalidArgument, "--device-timeout must be between 0.001 and 1000000 seconds");
  opts.device_timeout_ms = static_cast<std::int64_t>(a.device_timeout_s * 1000);
  opts.link = a.link;
  opts.k = a.k;
  opts.accel_profile = a.accel_profile;
  opts.plan = a.plan_file;
  opts.pipeline = a.pipeline;
  opts.trace = !a.trace_file.empty();
  if (!a.quiet) opts.progress = [](const std::string& line) { std::cerr << "vkfuse: " << line << "\n"; };
  for (const auto& s : a.input_shapes) {
    auto [name, dims] = split_named(s);
    opts.input_shapes.emplace_back(name.empty() ? "input" : name, parse_dims(dims));
  }
  const auto names = vkfuse::Model::builtin_names();
  const bool builtin = std::find(names.begin(), names.end(), a.model) != names.end() &&
                       !std::filesystem::exists(a.model);
  if (builtin) return vkfuse::Model::builtin(a.model, opts);
  if (!std::filesystem::exists(a.model)) {
    std::string list;
    for (auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw Error(ErrorKind::Io, "'" + a.model + "' is neither a file nor a built-in model (" + list + ")");
  }
  if (!a.input_shapes.empty() && split_named(a.input_shapes.front()).first.empty()) {
    // A bare shape applies to the model's only input, whatever its name: load
    // once to learn the name. Cheap next to the run that follows.
    vkfuse::LoadOptions probe = opts;
    probe.input_shapes.clear();
    try {
      auto m = vkfuse::Model::load(a.model, probe);
      if (m.inputs().size() == 1) opts.input_shapes.front().first = m.inputs()[0].name;
    } catch (const Error&) {
      // Symbolic dims make the probe fail; the model's input is then usually "input".
    }
  }
  return vkfuse::Model::load(a.model, opts);
}

struct Stats {
  double min = 0, median = 0, max = 0, mean = 0, p90 = 0, p99 = 0;
};
Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  // Nearest rank.
  auto rank = [&](double q) { return v[std::min(v.size() - 1, static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1)]; };
  s.p90 = rank(0.90);
  s.p99 = rank(0.99);
  return s;
}

int cmd_run(const ModelArgs& a, const std::vector<std::string>& input_files, const std::vector<std::string>& output_files,
            int iters, int warmup, bool as_json, std::uint64_t seed) {
  const bool progress = !a.quiet;
  auto t0 = std::chrono::steady_clock::now();
  if (progress) std::cerr << "vkfuse: loading " << a.model << " (strategy " << a.strategy << ")...\n";
  vkfuse::Model model = load_model(a);
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::size_t warned = 0;  // warnings printed so far (a background build may add one later)
  auto print_warnings = [&] {
    const auto w = model.warnings();
    for (; warned < w.size(); ++warned) std::cerr << "vkfuse: warning: " << w[warned] << "\n";
  };
  print_warnings();

  // Inputs: from files (NAME=FILE, or FILE for the inputs in order), else seeded random.
  std::vector<std::vector<float>> input_data(model.inputs().size());
  std::vector<bool> given(model.inputs().size(), false);
  for (std::size_t k = 0; k < input_files.size(); ++k) {
    auto [name, path] = split_named(input_files[k]);
    std::size_t idx = k;
    if (!name.empty()) {
      auto it = std::find_if(model.inputs().begin(), model.inputs().end(), [&](auto& t) { return t.name == name; });
      if (it == model.inputs().end()) throw Error(ErrorKind::InvalidInput, "--input names '" + name + "', which is not an input of the model");
      idx = static_cast<std::size_t>(it - model.inputs().begin());
    } else if (idx >= model.inputs().size()) {
      throw Error(ErrorKind::InvalidInput, "more --input files than the model has inputs (" +
                                               std::to_string(model.inputs().size()) + ")");
    }
    const auto& info = model.inputs()[idx];
    auto file = vkfuse::cli::read_tensor_file(path);
    if (file.has_shape && file.shape != info.shape)
      throw Error(ErrorKind::InvalidInput, path + ": shape " + shape_string(file.shape) + " does not match input '" +
                                               info.name + "' of shape " + shape_string(info.shape));
    if (static_cast<std::int64_t>(file.data.size()) != info.element_count())
      throw Error(ErrorKind::InvalidInput, path + ": holds " + std::to_string(file.data.size()) + " floats (" +
                                               std::to_string(file.data.size() * 4) + " bytes) but input '" + info.name +
                                               "' of shape " + shape_string(info.shape) + " needs " +
                                               std::to_string(info.element_count()) + " floats (" +
                                               std::to_string(info.element_count() * 4) + " bytes)");
    input_data[idx] = std::move(file.data);
    given[idx] = true;
  }
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (std::size_t i = 0; i < input_data.size(); ++i)
    if (!given[i]) {
      input_data[i].resize(static_cast<std::size_t>(model.inputs()[i].element_count()));
      for (auto& v : input_data[i]) v = normal(rng);
    }

  std::vector<vkfuse::InputBuffer> inputs;
  for (std::size_t i = 0; i < input_data.size(); ++i) inputs.push_back({model.inputs()[i].name, input_data[i]});
  std::vector<std::vector<float>> output_data(model.outputs().size());
  std::vector<vkfuse::OutputBuffer> outputs;
  for (std::size_t i = 0; i < output_data.size(); ++i) {
    output_data[i].resize(static_cast<std::size_t>(model.outputs()[i].element_count()));
    outputs.push_back({model.outputs()[i].name, output_data[i]});
  }

  // The default strategy answers on the host while the accelerator's part
  // builds (LoadOptions::host_while_building): one answer now, to show when
  // the first result came, then the timed runs on the plan once it is ready.
  double first_result_ms = 0, plan_ready_ms = load_ms;
  if (model.building()) {
    model.run(inputs, outputs);
    first_result_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (progress)
      std::cerr << "vkfuse: first result (from the host) after " << first_result_ms
                << " ms; waiting for the accelerator's part of the plan\n";
    model.wait_until_built();
    plan_ready_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (progress) std::cerr << "vkfuse: the plan is ready after " << plan_ready_ms << " ms\n";
  }
  model.wait_until_built();  // a build that ended (or failed) before the check above
  print_warnings();

  std::vector<double> times;
  std::vector<std::vector<double>> step_times;  // per plan step: its measured ms in each timed run
  double wall_ms = 0;                            // of the timed runs
  vkfuse::RunTimings last;                       // the last run's (pipelined: the last to finish)
  if (a.pipeline <= 1) {
    const int total = warmup + iters;
    std::chrono::steady_clock::time_point timed_start;
    for (int r = 0; r < total; ++r) {
      if (r == warmup) timed_start = std::chrono::steady_clock::now();
      last = model.run(inputs, outputs);
      const double ms = last.total_ms;
      if (r >= warmup) {
        times.push_back(ms);
        const auto& steps = last.steps;
        step_times.resize(steps.size());
        for (std::size_t k = 0; k < steps.size(); ++k) step_times[k].push_back(steps[k].measured_ms);
      }
      if (progress && (ms > 1000 || r + 1 == total))
        std::cerr << "vkfuse: " << (r < warmup ? "warm-up " : "run ") << (r < warmup ? r + 1 : r + 1 - warmup) << "/"
                  << (r < warmup ? warmup : iters) << ": " << ms << " ms\n";
    }
    wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - timed_start).count();
  } else {
    // --pipeline N: N threads keep up to N inferences in flight, each with
    // its own output buffers; the first thread's are the ones written out.
    const int n = a.pipeline;
    std::vector<std::vector<std::vector<float>>> thread_out(static_cast<std::size_t>(n), output_data);
    std::mutex times_mutex;
    std::atomic<int> next{0};
    std::exception_ptr failed;
    auto phase = [&](int count, bool timed) {
      next = 0;
      std::vector<std::thread> threads;
      for (int t = 0; t < n; ++t)
        threads.emplace_back([&, t] {
          try {
            std::vector<vkfuse::OutputBuffer> outs;
            auto& mine = t == 0 ? output_data : thread_out[static_cast<std::size_t>(t)];
            for (std::size_t i = 0; i < mine.size(); ++i) outs.push_back({model.outputs()[i].name, mine[i]});
            while (next.fetch_add(1) < count) {
              const auto r0 = std::chrono::steady_clock::now();
              vkfuse::RunTimings rt = model.run(inputs, outs);
              const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r0).count();
              std::lock_guard<std::mutex> lock(times_mutex);
              if (timed) times.push_back(ms);
              last = std::move(rt);
            }
          } catch (...) {
            std::lock_guard<std::mutex> lock(times_mutex);
            if (!failed) failed = std::current_exception();
          }
        });
      for (auto& th : threads) th.join();
      if (failed) std::rethrow_exception(failed);
    };
    phase(warmup * n, false);
    const auto timed_start = std::chrono::steady_clock::now();
    phase(iters, true);
    wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - timed_start).count();
    if (progress) std::cerr << "vkfuse: " << iters << " runs, up to " << n << " in flight: " << wall_ms << " ms\n";
  }
  const double throughput = wall_ms > 0 ? 1e3 * static_cast<double>(iters) / wall_ms : 0;

  for (std::size_t k = 0; k < output_files.size(); ++k) {
    auto [name, path] = split_named(output_files[k]);
    std::size_t idx = k;
    if (!name.empty()) {
      auto it = std::find_if(model.outputs().begin(), model.outputs().end(), [&](auto& t) { return t.name == name; });
      if (it == model.outputs().end()) throw Error(ErrorKind::InvalidArgument, "--output names '" + name + "', which is not an output of the model");
      idx = static_cast<std::size_t>(it - model.outputs().begin());
    } else if (idx >= model.outputs().size()) {
      throw Error(ErrorKind::InvalidArgument, "more --output files than the model has outputs");
    }
    vkfuse::cli::write_tensor_file(path, model.outputs()[idx].shape, output_data[idx]);
  }

  if (!a.trace_file.empty()) {
    std::ofstream tf(a.trace_file, std::ios::binary | std::ios::trunc);
    if (!tf) throw Error(ErrorKind::Io, "cannot write trace file '" + a.trace_file + "'");
    tf << last.trace_json;
  }

  const Stats s = stats_of(times);
  auto ratio = [](double measured, double predicted) { return predicted > 0 ? measured / predicted : 0.0; };
  if (as_json) {
    json j;
    j["model"] = a.model;
    j["strategy"] = model.strategy();
    j["backend"] = model.backend_description();
    j["link"] = a.link;
    j["predicted_ms"] = model.predicted_ms();
    j["dispatches"] = last.dispatches;
    j["host_kernels"] = last.host_kernels;
    j["host_copies"] = last.host_copies;
    j["bytes_uploaded"] = last.bytes_uploaded;
    j["bytes_downloaded"] = last.bytes_downloaded;
    j["threads"] = a.threads;
    j["iterations"] = iters;
    j["warmup"] = warmup;
    j["load_ms"] = load_ms;
    // With the host answering while the plan built: when the first result
    // came and when the planned placement was ready (else 0 and load_ms).
    j["first_result_ms"] = first_result_ms;
    j["plan_ready_ms"] = plan_ready_ms;
    {
      const vkfuse::LoadTimings lt = model.load_timings();
      j["load_phases_ms"] = {{"import", lt.import_ms},
                             {"plan", lt.plan_ms},
                             {"executors", lt.executors_ms},
                             {"shader_lowering", lt.shader_lowering_ms},
                             {"shader_compile", lt.shader_compile_ms},
                             {"pipelines", lt.pipelines_ms},
                             {"weights_upload", lt.weights_upload_ms},
                             {"warmup", lt.warmup_ms},
                             {"background", lt.background_ms}};
      j["shaders"] = lt.shaders;
    }
    j["latency_ms"] = {{"min", s.min}, {"median", s.median}, {"max", s.max}, {"mean", s.mean},
                       {"p50", s.median}, {"p90", s.p90}, {"p99", s.p99}};
    j["pipeline"] = a.pipeline;
    j["throughput_per_s"] = throughput;
    j["memory_bytes"] = memory_json(model.memory());
    // Predicted against measured, in total (median latency) and per plan step
    // (each step's median over the timed runs).
    json pred;
    pred["predicted_ms"] = last.predicted_ms;
    pred["measured_ms"] = s.median;
    pred["ratio"] = ratio(s.median, last.predicted_ms);
    pred["steps"] = json::array();
    double steps_predicted = 0, steps_measured = 0;
    for (std::size_t k = 0; k < last.steps.size(); ++k) {
      const auto& st = last.steps[k];
      const double measured = k < step_times.size() ? stats_of(step_times[k]).median : st.measured_ms;
      steps_predicted += st.predicted_ms;
      steps_measured += measured;
      pred["steps"].push_back({{"name", st.name},
                               {"device", st.device},
                               {"predicted_ms", st.predicted_ms},
                               {"measured_ms", measured},
                               {"ratio", ratio(measured, st.predicted_ms)},
                               {"bytes", st.bytes}});
    }
    pred["steps_predicted_ms"] = steps_predicted;
    pred["steps_measured_ms"] = steps_measured;
    j["prediction"] = std::move(pred);
    j["outputs"] = json::array();
    for (auto& o : model.outputs()) j["outputs"].push_back({{"name", o.name}, {"shape", o.shape}});
    j["output_shape"] = model.outputs().empty() ? std::vector<std::int64_t>{} : model.outputs()[0].shape;
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("model      %s\nstrategy   %s (%s)\nload       %.1f ms", a.model.c_str(), model.strategy().c_str(),
              model.backend_description().c_str(), load_ms);
  {
    const vkfuse::LoadTimings lt = model.load_timings();
    std::printf(" (import %.0f, plan %.0f, executors %.0f", lt.import_ms, lt.plan_ms, lt.executors_ms);
    if (lt.shaders > 0)
      std::printf(": %lld GPU kernels, compile %.0f, pipelines %.0f, warm-up %.0f", static_cast<long long>(lt.shaders),
                  lt.shader_compile_ms, lt.pipelines_ms, lt.warmup_ms);
    std::printf(")\n");
    if (first_result_ms > 0)
      std::printf("first      result from the host after %.1f ms; the plan ready after %.1f ms (built in the "
                  "background in %.0f ms)\n",
                  first_result_ms, plan_ready_ms, lt.background_ms);
  }
  {
    print_memory("memory     ", model.memory());
  }
  for (auto& in : model.inputs()) std::printf("input      %s %s\n", in.name.c_str(), shape_string(in.shape).c_str());
  for (std::size_t i = 0; i < model.outputs().size(); ++i) {
    const auto& o = model.outputs()[i];
    std::printf("output     %s %s", o.name.c_str(), shape_string(o.shape).c_str());
    const auto& d = output_data[i];
    if (o.shape.size() == 2 && o.shape[0] == 1 && d.size() > 1) {  // a classifier: show its top classes
      std::vector<std::size_t> idx(d.size());
      std::iota(idx.begin(), idx.end(), 0);
      const std::size_t k = std::min<std::size_t>(5, idx.size());
      std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                        [&](auto x, auto y) { return d[x] > d[y]; });
      std::printf("  top-%zu:", k);
      for (std::size_t t = 0; t < k; ++t) std::printf(" %zu (%.3f)", idx[t], d[idx[t]]);
    }
    std::printf("\n");
  }
  if (model.predicted_ms() > 0)
    std::printf("predicted  %.3f ms, measured %.3f ms (ratio %.2f) over %zu plan steps\n", model.predicted_ms(),
                s.median, ratio(s.median, model.predicted_ms()), last.steps.size());
  std::printf("latency    min %.3f ms, median %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms over %d runs (%d warm-up)\n",
              s.min, s.median, s.p90, s.p99, s.max, iters, warmup);
  std::printf("throughput %.2f inferences/s (up to %d in flight)\n", throughput, std::max(1, a.pipeline));
  return 0;
}

int cmd_info(const ModelArgs& a, bool as_json, bool layers, const std::string& memory_strategy) {
  vkfuse::Model model = load_model(a);
  const auto s = model.summary();
  // --memory STRATEGY: what the model holds loaded that way (its executors built).
  std::optional<vkfuse::MemoryReport> memory;
  if (!memory_strategy.empty()) {
    ModelArgs m = a;
    m.strategy = memory_strategy;
    memory = load_model(m).memory();
  }
  if (as_json) {
    json j;
    j["model"] = a.model;
    j["name"] = s.name;
    j["opset"] = s.opset;
    j["nodes"] = s.node_count;
    j["parameters"] = s.parameter_count;
    j["flops"] = s.flops;
    j["ops"] = json::object();
    for (auto& o : s.ops) j["ops"][o.op_type] = o.count;
    j["host_arena_bytes"] = s.host_arena_bytes;
    j["host_unplanned_bytes"] = s.host_unplanned_bytes;
    if (!s.host_kernels.empty()) j["host_kernels"] = s.host_kernels;
    if (memory) {
      j["memory_strategy"] = memory_strategy;
      j["memory_bytes"] = memory_json(*memory);
    }
    j["inputs"] = json::array();
    for (auto& i : model.inputs()) j["inputs"].push_back({{"name", i.name}, {"shape", i.shape}, {"dtype", i.dtype}});
    j["outputs"] = json::array();
    for (auto& o : model.outputs()) j["outputs"].push_back({{"name", o.name}, {"shape", o.shape}, {"dtype", o.dtype}});
    if (layers) {
      j["layers"] = json::array();
      for (auto& l : s.layers)
        j["layers"].push_back({{"name", l.name}, {"op", l.op_type}, {"activation", l.activation},
                               {"output_shape", l.output_shape}, {"flops", l.flops}});
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("model       %s (%s, opset %lld)\n", a.model.c_str(), s.name.c_str(), static_cast<long long>(s.opset));
  for (auto& i : model.inputs()) std::printf("input       %s %s %s\n", i.name.c_str(), i.dtype.c_str(), shape_string(i.shape).c_str());
  for (auto& o : model.outputs()) std::printf("output      %s %s %s\n", o.name.c_str(), o.dtype.c_str(), shape_string(o.shape).c_str());
  std::printf("parameters  %lld (%.2f M)\n", static_cast<long long>(s.parameter_count), static_cast<double>(s.parameter_count) / 1e6);
  std::printf("FLOPs       %lld (%.3f GFLOP per inference)\n", static_cast<long long>(s.flops), static_cast<double>(s.flops) / 1e9);
  auto mib = [](std::int64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  std::printf("host arena  %.1f MiB peak activation memory (%.1f MiB without reuse)\n", mib(s.host_arena_bytes),
              mib(s.host_unplanned_bytes));
  if (!s.host_kernels.empty()) std::printf("host kernels %s\n", s.host_kernels.c_str());
  if (memory) print_memory(("memory (" + memory_strategy + ") ").c_str(), *memory);
  std::printf("nodes       %d after canonicalization\n", s.node_count);
  for (auto& o : s.ops) std::printf("  %-20s %d\n", o.op_type.c_str(), o.count);
  if (layers) {
    std::printf("\n%-40s %-20s %-12s %-18s %s\n", "layer", "op", "activation", "output", "MFLOP");
    for (auto& l : s.layers)
      std::printf("%-40s %-20s %-12s %-18s %.2f\n", l.name.c_str(), l.op_type.c_str(), l.activation.c_str(),
                  shape_string(l.output_shape).c_str(), static_cast<double>(l.flops) / 1e6);
  }
  return 0;
}

struct PlanArgs {
  vkfuse::PlanOptions options;
  std::string json_file, dot_file;
  bool table = false;
};

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error(ErrorKind::Io, "cannot write '" + path + "'");
  f << text;
  if (!f) throw Error(ErrorKind::Io, "failed writing '" + path + "'");
}

int cmd_plan(const ModelArgs& a, const PlanArgs& p) {
  ModelArgs load = a;
  load.strategy = "reference";  // planning needs the graph, not a backend
  vkfuse::Model model = load_model(load);
  if (p.table) {
    // Every strategy under every link: predicted ms.
    std::vector<std::string> links = vkfuse::link_presets();
    std::printf("%-10s", "strategy");
    for (auto& l : links) std::printf(" %14s", l.c_str());
    std::printf("\n");
    bool predicted_only = false;
    for (auto& s : vkfuse::plan_strategies()) {
      std::printf("%-10s", s.c_str());
      for (auto& l : links) {
        vkfuse::PlanOptions o = p.options;
        o.strategy = s;
        o.link = l;
        auto r = model.plan(o);
        predicted_only |= r.predicted_only;
        std::printf(" %11.2f ms", r.predicted_ms);
      }
      std::printf("\n");
    }
    if (predicted_only) std::printf("(predicted from profiles, not measured)\n");
    return 0;
  }
  auto r = model.plan(p.options);
  std::fputs(r.text.c_str(), stdout);
  if (!p.json_file.empty()) write_text_file(p.json_file, r.json);
  if (!p.dot_file.empty()) write_text_file(p.dot_file, r.dot);
  return 0;
}

int cmd_devices(bool as_json) {
  const auto devices = vkfuse::list_devices();
  if (as_json) {
    json j = json::array();
    for (auto& d : devices)
      j.push_back({{"index", d.index}, {"name", d.name}, {"type", d.type}, {"driver", d.driver},
                   {"api_version", d.api_version}, {"device_local_bytes", d.device_local_bytes},
                   {"max_tensor_bytes", d.max_tensor_bytes}, {"subgroup_size", d.subgroup_size}, {"fp16", d.fp16}});
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  if (devices.empty()) {
    std::printf("no Vulkan devices found (install the Vulkan loader libvulkan1 and a driver, e.g. mesa-vulkan-drivers "
                "for lavapipe); "
                "vkfuse will run on the host\n");
    return 0;
  }
  for (auto& d : devices)
    std::printf("[%d] %s\n    type %s, Vulkan %s, driver %s\n    device-local memory %.1f GiB, largest tensor %.0f MiB, "
                "subgroup size %u, fp16 %s\n    uuid %s\n",
                d.index, d.name.c_str(), d.type.c_str(), d.api_version.c_str(), d.driver.c_str(),
                static_cast<double>(d.device_local_bytes) / (1024.0 * 1024 * 1024),
                static_cast<double>(d.max_tensor_bytes) / (1024.0 * 1024), d.subgroup_size, d.fp16 ? "yes" : "no",
                d.uuid.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vkfuse " + std::string(vkfuse::version()) +
               " — run CNNs (ONNX) across the host CPU and a Vulkan accelerator"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("vkfuse ") + vkfuse::version());
  app.footer(
      "Examples:\n"
      "  vkfuse run                                  run the built-in ResNet-18 on a random input\n"
      "  vkfuse run model.onnx --input x.npy --output y.npy\n"
      "  vkfuse info model.onnx --layers             ops, shapes, parameters and FLOPs\n"
      "  vkfuse plan inception_v3 --link edge --dot plan.dot\n"
      "  vkfuse devices                              Vulkan devices found\n"
      "  vkfuse calibrate                            measure host, device and link for the planner\n"
      "Inputs and outputs: .npy (float32) or raw little-endian float32 (.bin).\n"
      "Environment: VKFUSE_CACHE_DIR (calibrated profiles, shader caches; default ~/.cache/vkfuse),\n"
      "  VKFUSE_VALIDATION=1|sync (Khronos validation layer; sync adds synchronization validation),\n"
      "  VKFUSE_DEVICE_LIMITS=discrete (a discrete GPU's memory and texel limits and kernel shapes on any Vulkan device),\n"
      "  VKFUSE_VULKAN_LOADER=FILE (the Vulkan loader to open; default libvulkan.so.1),\n"
      "  VKFUSE_SPIRV_OPT=1 (run spirv-opt's performance passes on the shaders; slower cold loads).");

  ModelArgs run_args;
  std::vector<std::string> input_files, output_files;
  int iters = -1, warmup = -1;
  bool run_json = false;
  std::uint64_t seed = 0;
  auto* run = app.add_subcommand("run", "Run a model and report its latency");
  add_model_options(run, run_args, true);
  run->add_option("-i,--input", input_files,
                  "Input tensor file (.npy or raw float32 .bin), or NAME=FILE; repeat for several inputs. "
                  "Default: a seeded random normal input");
  run->add_option("-o,--output", output_files, "Write an output tensor (.npy or raw .bin), or NAME=FILE");
  run->add_option("-n,--iters", iters, "Timed runs (default 10; 1 for the slow reference strategy)");
  run->add_option("-w,--warmup", warmup, "Untimed warm-up runs (default 2; 0 for the reference strategy)");
  run->add_option("--seed", seed, "Seed of the random input")->capture_default_str();
  run->add_option("--trace", run_args.trace_file, "Write a Chrome/Perfetto trace of the last run to FILE");
  run->add_option("--pipeline", run_args.pipeline,
                  "Keep up to N inferences in flight (N threads; the host part of one overlaps the device and link "
                  "part of another); reports throughput and latency percentiles")
      ->capture_default_str();
  run->add_flag("--json", run_json, "Print one JSON object: latency statistics, strategy, output shapes");

  ModelArgs info_args;
  info_args.strategy = "reference";  // info needs the graph, not a plan: no calibration, no shaders
  bool info_json = false, info_layers = false;
  std::string info_memory;
  auto* info = app.add_subcommand("info", "Show a model's inputs, outputs, ops, parameters and FLOPs");
  add_model_options(info, info_args, false);
  info->add_flag("--json", info_json, "Print JSON");
  info->add_flag("--layers", info_layers, "List every layer with its output shape and FLOPs");
  info->add_option("--memory", info_memory,
                   "Also load the model with this strategy (e.g. fused, gpu, cpu) and report the memory it holds: "
                   "weights, activations and staging, host and device");

  ModelArgs plan_args;
  PlanArgs plan_opts;
  auto* plan = app.add_subcommand("plan", "Show where each op would run, the dispatch units, transfers and predicted time");
  add_model_options(plan, plan_args, false);
  {
    std::string strategies, links;
    for (auto& s : vkfuse::plan_strategies()) strategies += (strategies.empty() ? "" : ", ") + s;
    for (auto& l : vkfuse::link_presets()) links += (links.empty() ? "" : ", ") + l;
    plan->add_option("-s,--strategy", plan_opts.options.strategy, "Planning strategy: " + strategies)->capture_default_str();
    plan->add_option("-l,--link", plan_opts.options.link, "Host-accelerator link: " + links + ", or bw=<MB/s>,lat=<us>")
        ->capture_default_str();
    plan->add_option("-k,--k", plan_opts.options.k, "Offloading ratio: an offload must beat k x its transfer cost")
        ->capture_default_str();
  }
  plan->add_option("--profile", plan_opts.options.accel_profile,
                   "Plan against this accelerator profile (JSON), e.g. a device not present (what-if)");
  plan->add_option("--host-profile", plan_opts.options.host_profile, "Plan against this host profile (JSON)");
  plan->add_option("--json", plan_opts.json_file, "Write the plan as JSON to FILE");
  plan->add_option("--dot", plan_opts.dot_file, "Write the plan as Graphviz DOT to FILE (render: dot -Tsvg FILE)");
  plan->add_flag("--table", plan_opts.table, "Predicted time of every strategy under every link preset");

  std::string cal_device;
  int cal_threads = 0;
  bool cal_json = false;
  auto* calibrate = app.add_subcommand(
      "calibrate", "Measure the host, the Vulkan device and the link between them; cache the profiles for planning");
  calibrate->add_option("-d,--device", cal_device, "Vulkan device: index, UUID or part of its name (see `vkfuse devices`; default: the best)");
  calibrate->add_option("-t,--threads", cal_threads, "Host threads (0: one per core)")->capture_default_str();
  calibrate->add_flag("--json", cal_json, "Print the measured profiles as JSON");

  bool dev_json = false;
  auto* devices = app.add_subcommand("devices", "List the Vulkan devices vkfuse can use");
  devices->add_flag("--json", dev_json, "Print JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    if (*run) {
      if (iters < 0) iters = run_args.strategy == "reference" ? 1 : 10;
      if (warmup < 0) warmup = run_args.strategy == "reference" ? 0 : 2;
      if (iters < 1) throw Error(ErrorKind::InvalidArgument, "--iters must be at least 1");
      if (run_args.pipeline < 1) throw Error(ErrorKind::InvalidArgument, "--pipeline must be at least 1 (inferences in flight)");
      return cmd_run(run_args, input_files, output_files, iters, warmup, run_json, seed);
    }
    if (*info) return cmd_info(info_args, info_json, info_layers, info_memory);
    if (*plan) return cmd_plan(plan_args, plan_opts);
    if (*calibrate) {
      const auto t0 = std::chrono::steady_clock::now();
      auto profiles = vkfuse::calibrate(cal_device, cal_threads, [](const std::string& line) {
        std::cerr << "vkfuse: " << line << "\n";
      });
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (cal_json) std::cout << profiles << "\n";
      else std::printf("calibrated in %.1f s; profiles cached for `vkfuse plan` and `vkfuse run`\n", s);
      return 0;
    }
    if (*devices) return cmd_devices(dev_json);
  } catch (const Error& e) {
    std::cerr << "vkfuse: error: " << e.what() << "\n";
    return e.kind() == ErrorKind::InvalidArgument ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "vkfuse: internal error: " << e.what() << " (please report this)\n";
    return 3;
  }
  return 0;
}
