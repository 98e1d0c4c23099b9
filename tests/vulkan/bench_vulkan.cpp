// bench_vulkan [model|FILE.onnx] [iterations] [--profile] [--repeats N] [--fp16]
// — latency of a model on the Vulkan executor (median of `iterations` runs
// after load and warm-up), with dispatches and bytes moved per inference,
// load-time breakdown, and with --profile the per-kernel times (timestamp
// queries) and GFLOP/s; --repeats N times each kernel run N times back to
// back, as calibration does.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "graph/passes.h"
#include "runtime/vulkan/vulkan_executor.h"

namespace g = vkfuse::graph;

int main(int argc, char** argv) {
  std::string model = "resnet18";
  int iters = 10;
  bool profile = false, fp16 = false;
  int pos = 0, repeats = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--profile") == 0) profile = true;
    else if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) repeats = std::max(1, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--fp16") == 0) fp16 = true;
    else if (pos++ == 0) model = argv[i];
    else iters = std::atoi(argv[i]);
  }
  try {
    const auto t0 = std::chrono::steady_clock::now();
    g::Graph graph = model.ends_with(".onnx") ? g::import_onnx(g::ModelFile(model).bytes()) : g::build_zoo_model(model);
    g::prepare_graph(graph);
    vkfuse::runtime::ExecutorOptions options;
    options.fp16 = fp16;
    vkfuse::runtime::vulkan::VulkanExecutor exec(graph, options);
    const double load_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::vector<std::vector<float>> in, out;
    std::mt19937 rng(1);
    std::normal_distribution<float> d;
    for (auto v : graph.inputs) {
      in.emplace_back(static_cast<std::size_t>(g::element_count(graph.value(v).shape)));
      for (auto& x : in.back()) x = d(rng);
    }
    for (auto v : graph.outputs) out.emplace_back(static_cast<std::size_t>(g::element_count(graph.value(v).shape)));
    std::vector<const float*> ip;
    std::vector<float*> op;
    for (auto& x : in) ip.push_back(x.data());
    for (auto& x : out) op.push_back(x.data());
    auto cpu_ms = [] {
      rusage u{};
      getrusage(RUSAGE_SELF, &u);
      return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-3;
    };
    const double cpu0 = cpu_ms();
    std::vector<double> times;
    for (int i = 0; i < std::max(1, iters); ++i) {
      const auto t = std::chrono::steady_clock::now();
      exec.run(ip, op);
      times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
    }
    const double cpu_per_run = (cpu_ms() - cpu0) / std::max(1, iters);
    std::sort(times.begin(), times.end());
    const auto& li = exec.load_info();
    const auto st = exec.stats();
    std::int64_t flops = 0;
    for (const auto& k : exec.kernels()) flops += k.flops;
    std::printf("model %s on %s\n", model.c_str(), exec.description().c_str());
    std::printf("latency ms: min %.1f median %.1f max %.1f (%zu runs); CPU time per run %.1f ms\n", times.front(),
                times[times.size() / 2], times.back(), times.size(), cpu_per_run);
    std::printf("dispatches %lld, bytes up %lld, bytes down %lld, %.2f GFLOP, %.2f GFLOP/s overall\n",
                static_cast<long long>(st.dispatches), static_cast<long long>(st.bytes_uploaded),
                static_cast<long long>(st.bytes_downloaded), flops * 1e-9, flops * 1e-6 / times[times.size() / 2]);
    std::printf("load ms %.0f (lower %.0f, glsl->spirv %.0f, pipelines %.0f, upload %.0f, warm-up %.0f); %lld shaders, "
                "arena %.1f MiB%s, weights %.1f MiB, %lld residual adds fused, %lld concat inputs in place, %lld reductions "
                "folded with subgroup arithmetic\n",
                load_ms, li.lower_ms, li.compile_ms, li.pipelines_ms, li.upload_ms, li.warmup_ms,
                static_cast<long long>(li.shaders), li.arena_bytes / 1048576.0,
                li.arena_windows ? " (bound in windows)" : "", li.weight_bytes / 1048576.0,
                static_cast<long long>(li.fused_adds), static_cast<long long>(li.aliased_concat_inputs),
                static_cast<long long>(li.subgroup_folds));
    std::printf("pipelines created on %u threads; slowest:", std::max(1u, std::thread::hardware_concurrency()));
    for (std::size_t i = 0; i < li.pipeline_ms.size() && i < 5; ++i)
      std::printf("%s %s %.0f ms", i ? "," : "", li.pipeline_ms[i].first.c_str(), li.pipeline_ms[i].second);
    std::printf("\n");
    if (profile) {
      auto ks = exec.profile(std::max(1, std::min(iters, 5)), repeats);
      std::map<std::string, std::pair<double, std::int64_t>> by_variant;
      double total = 0;
      for (const auto& k : ks) {
        std::printf("  %-40s %-28s %8.3f ms %7.2f GFLOP/s\n", k.variant.c_str(), k.nodes.substr(0, 28).c_str(), k.ms,
                    k.ms > 0 ? k.flops * 1e-6 / k.ms : 0.0);
        by_variant[k.variant].first += k.ms;
        by_variant[k.variant].second += k.flops;
        total += k.ms;
      }
      std::printf("kernel time total %.1f ms\n", total);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_vulkan: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
