#include "runtime/calibration.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <cctype>
#include <fstream>
#include <thread>
#include <vector>

#include "graph/ops.h"
#include "graph/passes.h"
#include "planner/cost_model.h"
#include "runtime/host_executor.h"
#include "runtime/vulkan/context.h"
#include "runtime/vulkan/vulkan_executor.h"
#include "vkfuse/vkfuse.h"

namespace vkfuse::runtime {

namespace fs = std::filesystem;
using graph::Graph;
using graph::Shape;
using graph::Tensor;
using graph::ValueId;

std::string cache_dir() {
  fs::path dir;
  if (const char* v = std::getenv("VKFUSE_CACHE_DIR"); v && *v) dir = v;
  else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) dir = fs::path(x) / "vkfuse";
  else if (const char* h = std::getenv("HOME"); h && *h) dir = fs::path(h) / ".cache" / "vkfuse";
  else dir = fs::temp_directory_path() / "vkfuse-cache";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorKind::Io, "cannot create the cache folder '" + dir.string() + "' (set VKFUSE_CACHE_DIR)");
  return dir.string();
}

namespace {

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown cpu";
}

// ---- micro-benchmark graphs: one op each, shaped like layers of real CNNs ----

class MicroGraph {
 public:
  explicit MicroGraph(Shape input) {
    g_.name = "calibration";
    x_ = g_.add_value("x", graph::DType::f32, std::move(input), true);
    g_.inputs.push_back(x_);
  }
  ValueId x() const { return x_; }
  ValueId constant(Shape s, float scale) {
    Tensor t(graph::DType::f32, std::move(s));
    for (std::int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = scale * static_cast<float>((i * 7919) % 17 - 8) / 8.f;
    return g_.add_constant("c" + std::to_string(g_.values.size()), std::move(t));
  }
  ValueId op(const std::string& type, std::vector<ValueId> inputs, graph::Attributes attrs = {}) {
    graph::Node n;
    n.op_type = type;
    n.name = type + "_" + std::to_string(g_.nodes.size());
    n.inputs = std::move(inputs);
    n.attrs = std::move(attrs);
    ValueId y = g_.add_value(n.name + ".out");
    n.outputs = {y};
    g_.nodes.push_back(std::move(n));
    return y;
  }
  Graph finish(ValueId out) {
    g_.outputs = {out};
    graph::prepare_graph(g_);
    return std::move(g_);
  }

 private:
  Graph g_;
  ValueId x_;
};

graph::Attributes conv_attrs(std::int64_t kh, std::int64_t kw, std::int64_t stride, std::int64_t group) {
  graph::Attributes a;
  a.set("kernel_shape", std::vector<std::int64_t>{kh, kw});
  a.set("pads", std::vector<std::int64_t>{kh / 2, kw / 2, kh / 2, kw / 2});
  a.set("strides", std::vector<std::int64_t>{stride, stride});
  a.set("group", group);
  return a;
}

// A kh×kw convolution ("same" padding) over a hw×hw map.
Graph conv_graph(std::int64_t c_in, std::int64_t c_out, std::int64_t hw, std::int64_t kh, std::int64_t kw,
                 std::int64_t stride = 1, std::int64_t group = 1) {
  MicroGraph m({1, c_in, hw, hw});
  ValueId w = m.constant({c_out, c_in / group, kh, kw}, 0.1f);
  ValueId b = m.constant({c_out}, 0.1f);
  return m.finish(m.op("Conv", {m.x(), w, b}, conv_attrs(kh, kw, stride, group)));
}

Graph gemm_graph(std::int64_t m_rows, std::int64_t k, std::int64_t n) {
  MicroGraph m({m_rows, k});
  graph::Attributes a;
  a.set("transB", std::int64_t{1});
  return m.finish(m.op("Gemm", {m.x(), m.constant({n, k}, 0.05f), m.constant({n}, 0.1f)}, a));
}

Graph pool_graph(std::int64_t c, std::int64_t hw, std::int64_t stride = 2, const char* op = "MaxPool") {
  MicroGraph m({1, c, hw, hw});
  graph::Attributes a;
  a.set("kernel_shape", std::vector<std::int64_t>{3, 3});
  a.set("strides", std::vector<std::int64_t>{stride, stride});
  a.set("pads", std::vector<std::int64_t>{1, 1, 1, 1});
  return m.finish(m.op(op, {m.x()}, a));
}

Graph add_graph(std::int64_t c, std::int64_t hw) {
  MicroGraph m({1, c, hw, hw});
  return m.finish(m.op("Add", {m.x(), m.constant({1, c, hw, hw}, 1.f)}));
}

// `count` chained Relus on `elements` floats: per-dispatch and per-submit cost.
Graph relu_chain_graph(std::int64_t elements, int count) {
  MicroGraph m({elements});
  ValueId y = m.x();
  for (int i = 0; i < count; ++i) y = m.op(i % 2 ? "Relu" : "Sigmoid", {y});
  return m.finish(y);
}

// A synthetic CNN of a dozen layers (not any model of the zoo): convs of
// several kernels, strides and widths with ReLU, a pooling, a global pooling
// and a classifier; ≈4.4 GFLOP, the size of an ImageNet-class CNN, so that a
// run lasts as long as real ones do. Run end to end, it shows what ops cost
// in sequence against each measured alone.
Graph synthetic_network() {
  MicroGraph m({1, 16, 192, 192});
  auto conv = [&](ValueId x, std::int64_t c_in, std::int64_t c_out, std::int64_t k, std::int64_t stride, bool relu) {
    ValueId y = m.op("Conv", {x, m.constant({c_out, c_in, k, k}, 0.05f), m.constant({c_out}, 0.01f)},
                     conv_attrs(k, k, stride, 1));
    return relu ? m.op("Relu", {y}) : y;
  };
  ValueId y = conv(m.x(), 16, 32, 3, 1, true);
  y = conv(y, 32, 64, 3, 2, true);
  y = conv(y, 64, 96, 1, 1, true);
  y = conv(y, 96, 96, 3, 1, true);
  graph::Attributes pool;
  pool.set("kernel_shape", std::vector<std::int64_t>{3, 3});
  pool.set("strides", std::vector<std::int64_t>{2, 2});
  pool.set("pads", std::vector<std::int64_t>{1, 1, 1, 1});
  y = m.op("MaxPool", {y}, pool);
  y = conv(y, 96, 192, 3, 1, true);
  y = conv(y, 192, 128, 1, 1, false);
  y = conv(y, 128, 256, 3, 2, true);
  y = conv(y, 256, 256, 3, 1, true);
  y = conv(y, 256, 512, 1, 1, true);
  y = m.op("GlobalAveragePool", {y});
  y = m.op("Flatten", {y});
  graph::Attributes gemm;
  gemm.set("transB", std::int64_t{1});
  y = m.op("Gemm", {y, m.constant({100, 512}, 0.05f), m.constant({100}, 0.1f)}, gemm);
  return m.finish(y);
}

// A chain of inverted-residual blocks (1x1 expansion, depthwise, 1x1
// projection, a residual where shapes allow; not any model of the zoo) from
// 112x112 down to 7x7 maps, ending in a global pool: the host holds its
// values in blocked channels (planner/host_layout.h), so its steps time the
// blocked kernels as they run between mobile layers.
Graph mobile_chain() {
  MicroGraph m({1, 16, 112, 112});
  auto conv = [&](ValueId x, std::int64_t c_in, std::int64_t c_out, std::int64_t k, std::int64_t stride,
                  std::int64_t group, bool relu) {
    ValueId y = m.op("Conv", {x, m.constant({c_out, c_in / group, k, k}, 0.05f), m.constant({c_out}, 0.01f)},
                     conv_attrs(k, k, stride, group));
    return relu ? m.op("Relu", {y}) : y;
  };
  struct Block {
    std::int64_t c_in, expanded, c_out, k, stride;
  };
  const Block blocks[] = {{16, 96, 24, 3, 2},   {24, 144, 24, 3, 1},    {24, 144, 40, 5, 2},
                          {40, 240, 40, 5, 1},  {40, 240, 80, 3, 2},    {80, 480, 112, 3, 1},
                          {112, 672, 160, 5, 2}, {160, 960, 160, 3, 1}};
  ValueId y = m.x();
  for (const Block& b : blocks) {
    ValueId h = conv(y, b.c_in, b.expanded, 1, 1, 1, true);
    h = conv(h, b.expanded, b.expanded, b.k, b.stride, b.expanded, true);
    h = conv(h, b.expanded, b.c_out, 1, 1, 1, false);
    y = b.stride == 1 && b.c_in == b.c_out ? m.op("Add", {h, y}) : h;
  }
  return m.finish(m.op("GlobalAveragePool", {y}));
}

using Factory = std::function<std::unique_ptr<Executor>(const Graph&, const ExecutorOptions&)>;

// "other processes used 45% of the CPUs while the host was calibrated", or ""
// when the share was below kBusyCalibrationShare.
std::string disturbed_note(const planner::DeviceProfile& p, const std::string& who) {
  if (p.others_cpu_share <= planner::kBusyCalibrationShare) return "";
  return "other processes used " + std::to_string(static_cast<int>(p.others_cpu_share * 100 + 0.5)) +
         "% of the CPUs while the " + who + " (" + p.name +
         ") was calibrated: its timings are likely too slow and plans made with them may put work on the wrong "
         "device; run `vkfuse calibrate` again when the machine is idle";
}

// Microseconds of one run after a warm-up, over ≥ min_runs runs and ≥ 30 ms,
// at the given quantile of the runs. Single ops take the lower quartile, not
// the median, so that a burst of other work on a shared machine during one
// short benchmark does not make its point slow.
// evictor: when given, read once (a line at a time) before each timed run, so
// that the run starts with its weights in memory, as each layer of a real
// network does (ResNet-18's weights alone are 45 MB; the synthetic network's
// 5 MB would otherwise stay cached between runs and hide it).
// A graph's inputs (all 0.5) and outputs, as the executors take them.
struct GraphBuffers {
  explicit GraphBuffers(const Graph& g) {
    for (auto v : g.inputs) in.emplace_back(static_cast<std::size_t>(graph::element_count(g.value(v).shape)), 0.5f);
    for (auto v : g.outputs) out.emplace_back(static_cast<std::size_t>(graph::element_count(g.value(v).shape)));
    for (auto& b : in) ip.push_back(b.data());
    for (auto& b : out) op.push_back(b.data());
  }
  std::vector<std::vector<float>> in, out;
  std::vector<const float*> ip;
  std::vector<float*> op;
};

double time_us(Executor& ex, const Graph& g, std::size_t min_runs = 3, double quantile = 0.25,
               const std::vector<float>* evictor = nullptr) {
  GraphBuffers io(g);
  const auto& ip = io.ip;
  const auto& op = io.op;
  ex.run(ip, op);  // warm-up: first-dispatch compilation, page faults
  std::vector<double> times;
  double total = 0;
  volatile float sink = 0;
  while (times.size() < min_runs || (total < 30'000 && times.size() < 25)) {
    if (evictor) {
      float acc = 0;
      for (std::size_t i = 0; i < evictor->size(); i += 16) acc += (*evictor)[i];  // one read per cache line
      sink = sink + acc;
    }
    const auto t0 = std::chrono::steady_clock::now();
    ex.run(ip, op);
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    times.push_back(us);
    total += us;
  }
  std::sort(times.begin(), times.end());
  return times[static_cast<std::size_t>(quantile * static_cast<double>(times.size() - 1) + 0.5)];
}


struct Measured {
  double flops = 0, us = 0;
  // On a Vulkan device with timestamps, the kernels' own times, without the
  // submission and the copies over the link, which the cost model prices
  // apart (wall time less the overheads hid a 30 us kernel of a GPU behind
  // the link's copies of its input and output: on an H200, 6x under its rate
  // in a network). kernel_us: each kernel repeated until the median one's
  // repeats last ~0.5 ms, so that its launch is amortized and the device
  // busy, as in a network (a lone microsecond kernel on an idle GPU measured
  // 2-5x slow and varied 3x between calibrations); sequence_us: the kernels
  // run once each, in order, as a run does.
  double kernel_us = 0, sequence_us = 0;
  std::size_t kernels = 0;
  int repeats = 1;
  std::string variants;  // the kernels' distinct names, in order of first run: for the progress line
  bool gpu_kernels = false;  // the executor's kernel regime (vulkan::LoadInfo::gpu_kernels)
};

// Keeps a Vulkan device busy with the executor's kernels, repeated back to
// back, for about `ms`. A GPU that idles lowers its clocks: between steps
// (while the host builds the next one) an H200 did, and the later half of
// its first calibration measured 4-5x slow (1x1 convs at 0.3-1.7 TFLOP/s,
// 4 in a network); a second calibration right after the first did not.
// Busy first, a step is timed at the clocks a network's runs see.
void keep_busy(vulkan::VulkanExecutor& v, double ms) {
  if (ms <= 0) return;
  double once_us = 0;
  for (const auto& k : v.profile(1)) once_us += k.ms * 1e3;
  if (once_us <= 0) return;  // no timestamps: nothing to size the repeats by
  const int repeats = static_cast<int>(std::clamp(std::ceil(ms * 1e3 / once_us), 1.0, 1024.0));
  const auto t0 = std::chrono::steady_clock::now();
  do v.profile(1, repeats);
  while (std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() < ms);
}

// busy_ms: see keep_busy (accelerators only).
Measured measure(const Factory& make, const ExecutorOptions& options, const Graph& g, double busy_ms,
                 std::size_t min_runs = 3, double quantile = 0.25, const std::vector<float>* evictor = nullptr) {
  auto ex = make(g, options);
  auto* v = dynamic_cast<vulkan::VulkanExecutor*>(ex.get());
  if (v) keep_busy(*v, busy_ms);
  Measured m;
  m.flops = static_cast<double>(graph::graph_flops(g));
  m.us = time_us(*ex, g, min_runs, quantile, evictor);
  if (v) {
    m.gpu_kernels = v->load_info().gpu_kernels;
    const auto sum_us = [](const std::vector<vulkan::KernelInfo>& ks) {
      double us = 0;
      for (const auto& k : ks) us += k.ms * 1e3;
      return us;
    };
    const auto once = v->profile(5);
    m.sequence_us = sum_us(once);
    if (m.sequence_us > 0) {
      std::vector<double> each;  // the median kernel's repeats last ~0.5 ms
      for (const auto& k : once) each.push_back(k.ms * 1e3);
      std::nth_element(each.begin(), each.begin() + static_cast<std::ptrdiff_t>(each.size() / 2), each.end());
      const double median_us = std::max(each[each.size() / 2], 1e-3);
      const int repeats = static_cast<int>(std::clamp(std::ceil(500.0 / median_us), 1.0, 16.0));
      const auto repeated = repeats > 1 ? v->profile(3, repeats) : once;
      m.kernel_us = sum_us(repeated);
      m.kernels = m.kernel_us > 0 ? repeated.size() : 0;
      m.repeats = repeats;
      std::vector<std::string> seen;
      for (const auto& k : once)
        if (std::find(seen.begin(), seen.end(), k.variant) == seen.end()) {
          seen.push_back(k.variant);
          m.variants += (m.variants.empty() ? "" : " ") + k.variant;
        }
    }
  }
  return m;
}

// Per-device tuning (issue 17): the register block of spatial and of 1x1
// convolutions (on a GPU also the tiled 1x1 GEMM), each timed on two layers
// of its kind (a wide map, a deep small one), then on a GPU how many
// invocations a layer should launch before its input channels split, timed
// on all four. A candidate replaces
// the one before only when 5% faster, so that noise keeps the defaults.
// gpu: the device runs a GPU's kernel shapes (their split threshold is tuned too).
planner::KernelShape tune_kernel_shape(const Factory& make, const ExecutorOptions& options, bool gpu,
                                       double busy_ms, const Progress& progress, const std::string& who) {
  const std::vector<Graph> spatial = {conv_graph(64, 64, 56, 3, 3), conv_graph(256, 256, 14, 3, 3)};
  const std::vector<Graph> pointwise = {conv_graph(64, 256, 56, 1, 1), conv_graph(768, 192, 17, 1, 1)};
  std::vector<Graph> all = spatial;
  all.insert(all.end(), pointwise.begin(), pointwise.end());
  // A shape's time on `layers`, and the kernels it ran (their variant names).
  struct Timed {
    double us = 0;
    std::string kernels;
  };
  const auto time_of = [&](const planner::KernelShape& shape, const std::vector<Graph>& layers, const char* kind) {
    ExecutorOptions o = options;
    o.kernel_shape = shape;
    Timed t;
    for (const Graph& g : layers) {
      const Measured m = measure(make, o, g, busy_ms);
      if (!m.kernels) return Timed{};  // no device timestamps: nothing to compare by
      t.us += m.kernel_us;
      t.kernels += m.variants + ";";
    }
    if (progress) {
      char line[96];
      std::snprintf(line, sizeof line, ": %.1f us on %zu %s layers", t.us, layers.size(), kind);
      progress("calibrating " + who + ": kernels, " + planner::describe(shape) + line);
    }
    return t;
  };
  planner::KernelShape best;  // the device type's defaults
  best.gpu_kernels = gpu;
  // One stage: the candidates `make_candidate(i)` against the best so far,
  // on `layers`. A candidate that runs the same kernels as the best (the
  // device's default spelt out) is never taken: only noise could prefer it.
  const auto stage = [&](const std::vector<Graph>& layers, const char* kind, int count,
                         const std::function<planner::KernelShape(int)>& make_candidate) {
    Timed best_t = time_of(best, layers, kind);
    if (best_t.us <= 0) return false;
    for (int i = 0; i < count; ++i) {
      const planner::KernelShape s = make_candidate(i);
      if (s == best) continue;
      const Timed t = time_of(s, layers, kind);
      if (t.us > 0 && t.us < 0.95 * best_t.us && t.kernels != best_t.kernels) {
        best = s;
        best_t = t;
      }
    }
    return true;
  };
  // The register-block candidates of one kind (3x3 or 1x1): the best so far
  // with that kind's output channels x pixels set to each block.
  const auto blocks = [&](int planner::KernelShape::*ocb, int planner::KernelShape::*opx) {
    return [&best, ocb, opx](int i) {
      static constexpr int kBlocks[][2] = {{16, 8}, {8, 8}, {8, 4}, {4, 4}};
      planner::KernelShape s = best;
      s.*ocb = kBlocks[i][0];
      s.*opx = kBlocks[i][1];
      return s;
    };
  };
  if (!stage(spatial, "3x3", 4, blocks(&planner::KernelShape::conv_ocb, &planner::KernelShape::conv_opx)))
    return best;
  // On a GPU also the 1x1 GEMM tiled through shared memory, against the
  // best register block (a CPU device runs its barriers 5x slower: lavapipe,
  // Inception v3's 1x1s at 2.5-4.4 GFLOP/s against 11-22).
  const auto pointwise_blocks = blocks(&planner::KernelShape::pointwise_ocb, &planner::KernelShape::pointwise_opx);
  stage(pointwise, "1x1", gpu ? 5 : 4, [&](int i) {
    if (i < 4) return pointwise_blocks(i);
    planner::KernelShape s = best;
    s.pointwise_tiled = true;
    return s;
  });
  if (gpu)
    stage(all, "conv", 2, [&](int i) {
      planner::KernelShape s = best;
      s.conv_fill = i == 0 ? 8192 : 131072;
      return s;
    });
  if (progress) progress("calibrating " + who + ": kernels tuned: " + planner::describe(best));
  return best.tuned() ? best : planner::KernelShape{};
}

planner::DeviceProfile calibrate(planner::DeviceProfile p, const Factory& make, const ExecutorOptions& base_options,
                                 const Progress& progress, bool accelerator) {
  using planner::OpClass;
  struct Bench {
    OpClass cls;
    const char* label;
    std::function<Graph()> build;
  };
  // Overheads first (one tiny op vs eight chained tiny ops), so that each
  // measured op's throughput is its kernel's alone: the cost model adds the
  // per-op dispatch and the per-unit submission back itself.
  const std::string who = accelerator ? "accelerator" : "host";
  const OtherCpuUse others;
  const Graph one = relu_chain_graph(64, 1), eight = relu_chain_graph(64, 8);
  // A GPU is kept busy before each step (see keep_busy); lavapipe's clocks
  // are the host's, and a token 5 ms keeps the path run where CI runs.
  const double busy_ms = !accelerator ? 0.0 : p.device_type == "cpu" ? 5.0 : 100.0;
  const Measured m1 = measure(make, base_options, one, busy_ms);
  const double t1 = m1.us, t8 = measure(make, base_options, eight, busy_ms).us;
  p.dispatch_us = std::max(0.1, (t8 - t1) / 7.0);
  p.submit_us = accelerator ? std::max(0.0, t1 - p.dispatch_us) : 0.0;
  const double overhead_us = p.dispatch_us + p.submit_us;

  // The kernels tuned first, so that every step below times the kernels
  // that will run (a model's executors take the profile's kernel_shape).
  ExecutorOptions options = base_options;
  p.kernel_shape = {};
  if (accelerator) {
    if (progress) progress("calibrating " + who + " (" + p.name + "): tuning the convolution kernels");
    // Tuned in the kernel regime the executor runs here (as it reported).
    p.kernel_shape = tune_kernel_shape(make, base_options, m1.gpu_kernels, busy_ms, progress, who + " (" + p.name + ")");
    options.kernel_shape = p.kernel_shape;
  }

  // Layer shapes of the kind real CNNs are made of, for every kernel variant a
  // backend may pick by shape: 3x3 stride 1 on large and small maps, with few
  // and many channels (Winograd, tiled and channel-vector kernels on the
  // host), strided 3x3 and a 7x7 stem, 5x5 and 1x7 kernels, 1x1 convs on
  // even and odd planes and strided, depthwise, pooling both ways. The cost
  // model prices an op from the measured shapes nearest to it.
  std::vector<Bench> benches = {
      {OpClass::direct_conv, "3x3 conv 32ch 112x112", [] { return conv_graph(32, 32, 112, 3, 3); }},
      {OpClass::direct_conv, "3x3 conv 32ch 28x28", [] { return conv_graph(32, 32, 28, 3, 3); }},
      {OpClass::direct_conv, "3x3 conv 64ch 56x56", [] { return conv_graph(64, 64, 56, 3, 3); }},
      {OpClass::direct_conv, "3x3 conv 96ch 35x35", [] { return conv_graph(96, 96, 35, 3, 3); }},
      {OpClass::direct_conv, "3x3 conv 128ch 28x28", [] { return conv_graph(128, 128, 28, 3, 3); }},
      {OpClass::direct_conv, "3x3 conv 192ch 17x17", [] { return conv_graph(192, 192, 17, 3, 3); }},
      {OpClass::direct_conv, "3x3 conv 256ch 14x14", [] { return conv_graph(256, 256, 14, 3, 3); }},
      {OpClass::direct_conv, "3x3 conv 384ch 8x8", [] { return conv_graph(384, 384, 8, 3, 3); }},
      {OpClass::direct_conv, "3x3 conv 512ch 7x7", [] { return conv_graph(512, 512, 7, 3, 3); }},
      {OpClass::direct_conv, "3x3/2 conv 3->32ch 224x224", [] { return conv_graph(3, 32, 224, 3, 3, 2); }},
      {OpClass::direct_conv, "3x3/2 conv 64->128ch 56x56", [] { return conv_graph(64, 128, 56, 3, 3, 2); }},
      {OpClass::direct_conv, "3x3/2 conv 256->512ch 14x14", [] { return conv_graph(256, 512, 14, 3, 3, 2); }},
      {OpClass::direct_conv, "7x7/2 conv 3->64ch 224x224", [] { return conv_graph(3, 64, 224, 7, 7, 2); }},
      {OpClass::direct_conv, "5x5 conv 48->64ch 35x35", [] { return conv_graph(48, 64, 35, 5, 5); }},
      {OpClass::direct_conv, "1x7 conv 128ch 17x17", [] { return conv_graph(128, 128, 17, 1, 7); }},
      {OpClass::direct_conv, "1x3 conv 384ch 8x8", [] { return conv_graph(384, 384, 8, 1, 3); }},
      {OpClass::conv1x1_gemm, "1x1 conv 64->256ch 56x56", [] { return conv_graph(64, 256, 56, 1, 1); }},
      {OpClass::conv1x1_gemm, "1x1 conv 64ch 28x28", [] { return conv_graph(64, 64, 28, 1, 1); }},
      {OpClass::conv1x1_gemm, "1x1 conv 256ch 14x14", [] { return conv_graph(256, 256, 14, 1, 1); }},
      {OpClass::conv1x1_gemm, "1x1 conv 192->64ch 35x35", [] { return conv_graph(192, 64, 35, 1, 1); }},
      {OpClass::conv1x1_gemm, "1x1 conv 768->192ch 17x17", [] { return conv_graph(768, 192, 17, 1, 1); }},
      {OpClass::conv1x1_gemm, "1x1 conv 1024->256ch 7x7", [] { return conv_graph(1024, 256, 7, 1, 1); }},
      {OpClass::conv1x1_gemm, "1x1/2 conv 128->256ch 28x28", [] { return conv_graph(128, 256, 28, 1, 1, 2); }},
      {OpClass::depthwise, "3x3 depthwise 32ch 56x56", [] { return conv_graph(32, 32, 56, 3, 3, 1, 32); }},
      {OpClass::depthwise, "3x3 depthwise 144ch 56x56", [] { return conv_graph(144, 144, 56, 3, 3, 1, 144); }},
      {OpClass::depthwise, "3x3 depthwise 512ch 14x14", [] { return conv_graph(512, 512, 14, 3, 3, 1, 512); }},
      {OpClass::gemm, "gemm 1x512x1000", [] { return gemm_graph(1, 512, 1000); }},
      {OpClass::gemm, "gemm 16x1024x1000", [] { return gemm_graph(16, 1024, 1000); }},
      {OpClass::pooling, "maxpool 3x3 s2 64ch 56x56", [] { return pool_graph(64, 56); }},
      {OpClass::pooling, "maxpool 3x3 s2 64ch 112x112", [] { return pool_graph(64, 112); }},
      {OpClass::pooling, "avgpool 3x3 s1 192ch 35x35", [] { return pool_graph(192, 35, 1, "AveragePool"); }},
      {OpClass::pooling, "avgpool 3x3 s1 768ch 17x17", [] { return pool_graph(768, 17, 1, "AveragePool"); }},
      {OpClass::elementwise, "add 64ch 28x28", [] { return add_graph(64, 28); }},
      {OpClass::elementwise, "add 64ch 56x56", [] { return add_graph(64, 56); }},
  };
  // Host ops are timed from cold caches, as in a network (see time_us): a
  // buffer twice the size of a large L3, for this calibration only.
  const std::vector<float> evictor(accelerator ? 0 : (std::size_t{64} << 20) / sizeof(float), 1.f);
  const std::vector<float>* evict = accelerator ? nullptr : &evictor;
  for (auto& c : p.classes) c.throughput.clear();
  // A class's memory roof: the elementwise ops' bandwidth, or what one of its
  // own measured ops moved, if more (cold single ops read their operands from
  // memory; a layer in a network reads what the last one left in cache, and
  // a roof below its own measured rate would price it slower than it ran).
  double bandwidth_gbs = 0;
  std::array<double, planner::kOpClassCount> achieved_gbs{};
  const auto moved = [&](OpClass c, const Graph& g, const graph::Node& n, double us) {
    double bytes = 0;
    for (const auto& list : {n.inputs, n.outputs})
      for (ValueId v : list)
        if (v != graph::kNoValue)
          bytes += static_cast<double>(graph::element_count(g.value(v).shape) * graph::dtype_size(g.value(v).dtype));
    double& a = achieved_gbs[static_cast<std::size_t>(c)];
    a = std::max(a, bytes / (us * 1e3));
  };
  const auto set_bandwidths = [&] {
    for (OpClass c : planner::kAllOpClasses)
      p.op_class(c).bandwidth_gbs = std::max({0.1, bandwidth_gbs, achieved_gbs[static_cast<std::size_t>(c)]});
  };
  int step = 0;
  for (const auto& b : benches) {
    ++step;
    const Graph g = b.build();
    const Measured m = measure(make, options, g, busy_ms, 3, 0.25, evict);
    // The kernel's own time: timed on the device where it can be, else the
    // measured run less the overheads, but never less than half of it
    // (noise on tiny ops).
    const double us = m.kernels ? m.kernel_us : std::max(0.5 * m.us, m.us - overhead_us);
    auto& table = p.op_class(b.cls).throughput;
    table.push_back({m.flops, std::max(1e-3, m.flops / (us * 1e3)), planner::op_geometry(g, g.nodes.at(0))});
    moved(b.cls, g, g.nodes.at(0), us);
    if (progress) {
      // What was measured, so that a strange profile can be traced to its step.
      char line[160];
      std::snprintf(line, sizeof line, "%.0f GFLOP/s, %.1f us", table.back().gflops, us);
      char once[64];
      std::snprintf(once, sizeof once, ": %.1f us alone, %d in a row", m.sequence_us, m.repeats);
      const std::string how = m.kernels ? " (" + m.variants + " on the device" + (m.repeats > 1 ? once : "") + ")" : "";
      progress("calibrating " + who + " (" + p.name + ") [" + std::to_string(step) + "/" +
               std::to_string(benches.size()) + "] " + b.label + ": " + line + how);
    }
    if (b.cls == OpClass::elementwise) {
      // Two operands in, one result out.
      const double bytes = 3.0 * 4.0 * static_cast<double>(graph::element_count(g.value(g.outputs[0]).shape));
      bandwidth_gbs = std::max(bandwidth_gbs, bytes / (us * 1e3));
    }
  }
  for (auto& c : p.classes)
    std::stable_sort(c.throughput.begin(), c.throughput.end(), [](auto& a, auto& b) { return a.flops < b.flops; });
  set_bandwidths();

  // Host: mobile layers in blocked channels, timed step by step in a chain
  // of them (alone, an op's output is the caller's, so it runs planar); the
  // cost model prices the layers the host lowering holds blocked from these.
  if (!accelerator) {
    const Graph chain = mobile_chain();
    auto ex = make(chain, options);
    if (auto* host = dynamic_cast<HostExecutor*>(ex.get())) {
      if (progress) progress("calibrating " + who + ": mobile layers in blocked channels");
      GraphBuffers io(chain);
      const auto& steps = host->program().steps();
      std::vector<std::vector<double>> step_us(steps.size());
      for (int r = 0; r < 9; ++r) {
        const auto times = host->profile(io.ip, io.op);
        for (std::size_t k = 0; k < steps.size(); ++k) step_us[k].push_back(times[k].second * 1e3);
      }
      planner::validate(p);
      const planner::CostModel cm(chain, p, p, planner::LinkProfile{});
      int points = 0;
      for (std::size_t k = 0; k < steps.size(); ++k) {
        if (steps[k].kernel != "pointwise_blocked" && steps[k].kernel != "depthwise_blocked") continue;
        auto& t = step_us[k];
        std::sort(t.begin(), t.end());
        const double measured = t[t.size() / 4];  // the lower quartile, as for single ops
        const double us = std::max(0.5 * measured, measured - p.dispatch_us);
        const int node = steps[k].node;
        planner::OpGeometry shape = planner::op_geometry(chain, chain.nodes.at(static_cast<std::size_t>(node)));
        shape.blocked = true;
        const double flops = cm.node(node).flops;
        p.op_class(cm.node(node).op_class).throughput.push_back({flops, std::max(1e-3, flops / (us * 1e3)), shape});
        moved(cm.node(node).op_class, chain, chain.nodes.at(static_cast<std::size_t>(node)), us);
        ++points;
      }
      for (auto& c : p.classes)
        std::stable_sort(c.throughput.begin(), c.throughput.end(), [](auto& a, auto& b) { return a.flops < b.flops; });
      set_bandwidths();
      if (progress)
        progress("calibrating " + who + ": " + std::to_string(points) + " blocked-channel layers timed in a chain");
    }
  }

  // Ops in sequence: the synthetic network measured end to end against the
  // sum of its ops as just calibrated (on the accelerator: as one unit).
  if (progress) progress("calibrating " + who + ": a synthetic network, ops in sequence");
  {
    const Graph net = synthetic_network();
    p.sequence_factor = 1;
    planner::validate(p);
    const planner::CostModel cm(net, p, p, planner::LinkProfile{});
    double predicted = 0;
    if (accelerator) {
      std::vector<int> all(net.nodes.size()), one_unit(net.nodes.size(), 0);
      for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
      predicted = cm.unit_compute_us(all, one_unit);
    } else {
      for (int i = 0; i < cm.node_count(); ++i) predicted += cm.host_us(i);
    }
    // The median of several runs: what a network run typically takes here,
    // as `vkfuse run` reports it. On the host each run starts with cold
    // caches: the single ops above were timed with their weights cached, a
    // real network streams them from memory layer after layer.
    // On an accelerator whose kernels are timed on the device: the
    // network's kernels run once each in order against the same kernels
    // each repeated alone (see Measured), so that the factor is what running
    // in sequence costs, not how far the network's layer shapes are from
    // the calibrated ones (the prediction from those is the cost model's
    // business; mixed in here it scaled every op of an H200 by 2-3x).
    const Measured mn = measure(make, options, net, busy_ms, 9, 0.5, evict);
    const bool on_device = mn.kernels > 0;
    const double measured = on_device ? mn.sequence_us : mn.us;
    const double alone = on_device ? mn.kernel_us : predicted;
    // Bounded: a wild value means a disturbed measurement, not a property.
    if (alone > 0) p.sequence_factor = std::clamp(measured / alone, 0.5, 3.0);
    if (progress) {
      char line[256];
      std::snprintf(line, sizeof line, ": the synthetic network took %.0f us, its ops alone %.0f us (%s): factor %.2f",
                    measured, alone,
                    on_device ? "kernels timed on the device" : "wall time against the ops' predictions",
                    p.sequence_factor);
      progress("calibrating " + who + line);
    }
    // fp16 weights: the same network's kernels with them, against fp32 (a
    // device without 16-bit storage runs fp32 either way: about 1).
    p.fp16_factor = 1;
    if (accelerator && on_device) {
      ExecutorOptions half = options;
      half.fp16 = true;
      const Measured mh = measure(make, half, net, busy_ms, 9, 0.5, evict);
      if (mh.kernels > 0 && mn.kernel_us > 0) p.fp16_factor = std::clamp(mh.kernel_us / mn.kernel_us, 0.25, 2.0);
      if (progress) {
        char line[160];
        std::snprintf(line, sizeof line, ": with fp16 weights its ops alone took %.0f us: fp16 factor %.2f",
                      mh.kernel_us, p.fp16_factor);
        progress("calibrating " + who + line);
      }
    }
  }
  p.others_cpu_share = others.share();
  if (progress) progress("calibrating " + who + ": done");
  if (const std::string note = disturbed_note(p, who); progress && !note.empty()) progress("warning: " + note);
  p.measured = true;
  planner::validate(p);
  return p;
}

// The version a calibrated profile is cached under: vkfuse's and its kernels'
// revision, e.g. "0.1.0+kernels.3f2a9c81d0e4".
std::string profile_version() {
#ifndef VKFUSE_KERNEL_REVISION
#define VKFUSE_KERNEL_REVISION "unknown"
#endif
  return std::string(vkfuse::version()) + "+kernels." + VKFUSE_KERNEL_REVISION;
}

}  // namespace

OtherCpuUse::OtherCpuUse() : start_(sample()) {}

OtherCpuUse::Sample OtherCpuUse::sample() {
  Sample s;
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    s.self_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  std::ifstream stat("/proc/stat");
  std::string label;
  // cpu  user nice system idle iowait irq softirq steal ...
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(stat >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) || label != "cpu")
    return s;
  int cpus = 0;
  std::string line;
  while (std::getline(stat, line))
    if (line.size() > 3 && line.compare(0, 3, "cpu") == 0 && std::isdigit(static_cast<unsigned char>(line[3]))) ++cpus;
  const long ticks = sysconf(_SC_CLK_TCK);
  if (cpus == 0 || ticks <= 0) return s;
  s.busy_s = (user + nice + system + irq + softirq + steal) / static_cast<double>(ticks);
  s.cpus = cpus;
  s.ok = true;
  return s;
}

double OtherCpuUse::share() const {
  const Sample end = sample();
  const double wall = end.wall_s - start_.wall_s;
  if (!start_.ok || !end.ok || wall <= 0) return 0;
  const double others = (end.busy_s - start_.busy_s) - (end.self_s - start_.self_s);
  return std::clamp(others / (wall * end.cpus), 0.0, 1.0);
}

planner::DeviceProfile host_identity() {
  planner::DeviceProfile p = planner::default_host_profile();
  p.name = cpu_model_name() + ", " + std::to_string(std::max(1u, std::thread::hardware_concurrency())) + " threads";
  p.kind = "host";
  p.uuid = "host-" + p.name;
  p.driver = "halide14";
  p.vkfuse_version = profile_version();
  p.measured = false;
  p.shares_host_cores = false;
  return p;
}

namespace {
// The device behind accelerator_identity(), as list_devices() describes it.
std::optional<DeviceInfo> chosen_accelerator(const ExecutorOptions& options) {
  const auto devices = vkfuse::list_devices();
  if (devices.empty()) return std::nullopt;
  int index = -1;
  try {
    index = runtime::vulkan::select_device(devices, options.device);  // a selector matching nothing throws
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::Device) throw;
    return std::nullopt;  // no usable device: the host alone
  }
  return devices[static_cast<std::size_t>(index)];
}

planner::DeviceProfile identity_of(const DeviceInfo& device) {
  planner::DeviceProfile p = planner::default_accelerator_profile(device.type);
  p.device_type = device.type;
  p.name = device.name;
  p.kind = "vulkan";
  p.uuid = device.uuid.empty() ? device.name : device.uuid;
  p.driver = device.driver;
  p.vkfuse_version = profile_version();
  p.measured = false;
  p.shares_host_cores = device.type == "cpu";  // lavapipe runs on the host's own cores
  return p;
}
}  // namespace

std::optional<planner::DeviceProfile> accelerator_identity(const ExecutorOptions& options) {
  const auto chosen = chosen_accelerator(options);
  if (!chosen) return std::nullopt;
  return identity_of(*chosen);
}

planner::DeviceProfile calibrate_host(const ExecutorOptions& options, const Progress& progress) {
  return calibrate(host_identity(), make_host_executor, options, progress, false);
}

planner::DeviceProfile calibrate_accelerator(const ExecutorOptions& options, const Progress& progress) {
  auto id = accelerator_identity(options);
  if (!id) throw Error(ErrorKind::Device, "no Vulkan device to calibrate (see `vkfuse devices`)");
  // One device context for all the steps: each step's executor would
  // otherwise create and destroy a device of its own.
  const auto held = vulkan::Context::acquire(options.device);
  return calibrate(*id, make_vulkan_executor, options, progress, true);
}

planner::LinkProfile calibrate_link(const ExecutorOptions& options, const Progress& progress) {
  // A unit that copies N floats up and the same N down (one Relu between):
  // the executor reports each copy's size and duration.
  struct Sample {
    double bytes, us;
  };
  std::vector<Sample> up, down;
  ExecutorOptions o = options;
  o.on_transfer = [&](TransferDirection d, std::int64_t bytes, double us) {
    (d == TransferDirection::upload ? up : down).push_back({static_cast<double>(bytes), us});
  };
  const std::int64_t sizes[] = {1 << 10, 1 << 14, 1 << 18, 1 << 21, 1 << 22};
  const auto held = vulkan::Context::acquire(options.device);  // one context for all the steps
  int step = 0;
  for (auto n : sizes) {
    if (progress)
      progress("calibrating link: " + std::to_string(n * 4 / 1024) + " KiB copies [" + std::to_string(++step) + "/" +
               std::to_string(std::size(sizes)) + "]");
    const Graph g = relu_chain_graph(n, 1);
    auto ex = make_vulkan_executor(g, o);
    time_us(*ex, g);
  }
  // Least squares fit of us = latency + bytes / bandwidth, per direction.
  auto fit = [](const std::vector<Sample>& s, double& mbps, double& latency_us) {
    if (s.size() < 2) throw Error(ErrorKind::Device, "the Vulkan executor reported no transfers to calibrate the link with");
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (auto& p : s) {
      sx += p.bytes;
      sy += p.us;
      sxx += p.bytes * p.bytes;
      sxy += p.bytes * p.us;
    }
    const double n = static_cast<double>(s.size());
    const double slope = (n * sxy - sx * sy) / std::max(1e-9, n * sxx - sx * sx);  // us per byte
    latency_us = std::max(0.0, (sy - slope * sx) / n);
    mbps = slope > 0 ? 1.0 / slope : 1e6;  // bytes/us = MB/s
  };
  planner::LinkProfile l;
  l.name = "measured";
  l.emulated = false;
  fit(up, l.h2d_mbps, l.h2d_latency_us);
  fit(down, l.d2h_mbps, l.d2h_latency_us);
  return l;
}

PlanningProfiles planning_profiles(const ExecutorOptions& options, Uses uses, bool calibrate_if_missing,
                                   const Progress& progress) {
  PlanningProfiles out;
  out.host = planner::default_host_profile();
  out.accel = planner::default_lavapipe_profile();
  out.measured_link = planner::default_link_profile("cpu");

  std::optional<DeviceInfo> chosen;
  if (uses == Uses::host_and_accelerator) {
    chosen = chosen_accelerator(options);
    if (!chosen) return out;
    out.max_tensor_bytes = chosen->max_tensor_bytes;
    out.accel = identity_of(*chosen);  // the defaults for its type until it is calibrated
    out.measured_link = planner::default_link_profile(out.accel.device_type);
  }
  const planner::DeviceProfile accel_id = out.accel;
  const planner::DeviceProfile host_id = host_identity();
  const fs::path dir = cache_dir();
  const fs::path host_file = dir / planner::profile_cache_file_name(host_id);
  const fs::path accel_file = dir / planner::profile_cache_file_name(accel_id);
  const fs::path link_file = dir / ("link-" + planner::profile_cache_file_name(accel_id));

  // A cached profile is used only when whole (its checksum matches), written
  // by this vkfuse and its kernels for this device and driver, and measured
  // shape by shape; otherwise it is discarded with a note and measured again
  // (or, without calibration, the built-in defaults are planned with).
  std::vector<std::string> notes;
  auto discard = [&](const fs::path& f, const std::string& who, const std::string& why) {
    std::error_code ec;
    fs::remove(f, ec);
    notes.push_back("discarded the cached " + who + " profile " + f.string() + ": " + why);
  };
  auto read_text = [](const fs::path& f) {
    std::ifstream in(f, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  auto load_matching = [&](const fs::path& f, const planner::DeviceProfile& id,
                           const std::string& who) -> std::optional<planner::DeviceProfile> {
    if (!fs::exists(f)) return std::nullopt;
    const std::string text = read_text(f);
    try {
      auto p = planner::device_profile_from_json(text);
      const auto& convs = p.op_class(planner::OpClass::direct_conv).throughput;
      const bool shaped = std::any_of(convs.begin(), convs.end(), [](auto& t) { return t.shape.known(); });
      if (!planner::carries_checksum(text) || !shaped)
        discard(f, who, "stale (written by an older vkfuse)");
      else if (!planner::same_cache_key(p, id))
        discard(f, who, "stale (measured for " + p.driver + " by vkfuse " + p.vkfuse_version + ", not " + id.driver +
                            " by vkfuse " + id.vkfuse_version + ")");
      else if (!p.measured)
        discard(f, who, "stale (not a measured profile)");
      else
        return p;
    } catch (const Error& e) {
      discard(f, who, std::string("corrupt (") + e.what() + ")");
    }
    return std::nullopt;
  };
  auto host = load_matching(host_file, host_id, "host");
  auto accel = chosen ? load_matching(accel_file, accel_id, "accelerator") : std::nullopt;
  // Cached profiles measured under load say so each time (a fresh
  // calibration below warns by itself).
  for (const auto& [cached, who] : {std::pair{&host, "host"}, std::pair{&accel, "accelerator"}})
    if (const std::string note = *cached ? disturbed_note(**cached, who) : ""; progress && !note.empty())
      progress("note: cached profile: " + note);
  std::optional<planner::LinkProfile> link;
  if (chosen && fs::exists(link_file)) {
    const std::string text = read_text(link_file);
    try {
      link = planner::link_profile_from_json(text);
      if (!planner::carries_checksum(text)) {
        link.reset();
        discard(link_file, "link", "stale (written by an older vkfuse)");
      }
    } catch (const Error& e) {
      discard(link_file, "link", std::string("corrupt (") + e.what() + ")");
    }
  }
  if (progress)
    for (const std::string& n : notes)
      progress("note: " + n + (calibrate_if_missing ? "; measuring again"
                                                     : "; planning with built-in profiles until `vkfuse calibrate`"));
  const bool accel_missing = chosen && (!accel || !link);
  if ((!host || accel_missing) && calibrate_if_missing) {
    if (progress) progress("no calibration for these devices yet: measuring them once (results cached in " + dir.string() + ")");
    if (!host) {
      host = calibrate_host(options, progress);
      planner::save_device_profile(*host, host_file.string());
    }
    if (chosen && !accel) {
      accel = calibrate_accelerator(options, progress);
      planner::save_device_profile(*accel, accel_file.string());
    }
    if (chosen && (!link || !accel)) {
      link = calibrate_link(options, progress);
      planner::save_link_profile(*link, link_file.string());
    }
  }
  if (host) out.host = *host;
  if (accel) out.accel = *accel;
  if (link) out.measured_link = *link;
  out.measured = host.has_value() && (!chosen || (accel.has_value() && link.has_value()));
  return out;
}

}  // namespace vkfuse::runtime
