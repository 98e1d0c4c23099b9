// The public API (include/vkfuse/vkfuse.h) on top of graph/ and runtime/.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "graph/ops.h"
#include "graph/passes.h"
#include "planner/planner.h"
#include "runtime/executor.h"
#include "runtime/hetero_executor.h"
#include "runtime/trace.h"
#include "vkfuse/vkfuse.h"

namespace vkfuse {

const char* version() { return VKFUSE_VERSION; }

std::int64_t TensorInfo::element_count() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<std::string> available_strategies() {
  std::vector<std::string> s{"reference"};
  if (runtime::host_backend_available())
    for (auto& p : planner::strategy_names()) s.push_back(p);
  return s;
}

struct Model::Impl {
  graph::Graph graph;
  std::vector<TensorInfo> inputs, outputs;
  std::string strategy;
  int threads = 1;
  std::unique_ptr<runtime::Trace> trace;
  std::unique_ptr<runtime::Executor> executor;
  RunTimings timings;
  double predicted_ms = 0;
  std::vector<std::string> warnings;
};

namespace {

int resolve_threads(int requested) {
  if (requested < 0) throw Error(ErrorKind::InvalidArgument, "--threads must be 0 (all cores) or positive");
  if (requested > 0) return requested;
  return std::max(1u, std::thread::hardware_concurrency());
}

void check_strategy(const std::string& s) {
  auto avail = available_strategies();
  if (std::find(avail.begin(), avail.end(), s) != avail.end()) return;
  std::string list;
  for (auto& a : avail) list += (list.empty() ? "" : ", ") + a;
  static const std::vector<std::string> planned = {"cpu", "gpu", "naive", "fused", "fuse-all", "per-op"};
  if (std::find(planned.begin(), planned.end(), s) != planned.end())
    throw Error(ErrorKind::InvalidArgument,
                "strategy '" + s + "' is not implemented in this build yet; available: " + list);
  throw Error(ErrorKind::InvalidArgument, "unknown strategy '" + s + "'; available: " + list);
}

TensorInfo info_of(const graph::Value& v) { return TensorInfo{v.name, v.shape, graph::dtype_name(v.dtype)}; }

}  // namespace

namespace {
planner::LinkProfile uncalibrated_measured_link();

planner::LinkProfile resolve_link(const std::string& spec) {
  return spec == "measured" ? uncalibrated_measured_link() : planner::link_from_spec(spec);
}
}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& path, const LoadOptions& options) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::Io, "cannot open model file '" + path + "': no such file or not readable");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  try {
    return load_bytes(bytes, options);
  } catch (const Error& e) {
    throw Error(e.kind(), path + ": " + e.what());
  }
}

Model Model::load_bytes(std::span<const std::uint8_t> onnx_bytes, const LoadOptions& options) {
  check_strategy(options.strategy);
  graph::InputShapeOverrides overrides(options.input_shapes.begin(), options.input_shapes.end());
  auto impl = std::make_unique<Impl>();
  impl->graph = graph::import_onnx(onnx_bytes, overrides);
  return prepare(std::move(impl), options);
}

Model Model::builtin(const std::string& zoo_name, const LoadOptions& options) {
  check_strategy(options.strategy);
  std::int64_t batch = 1;
  for (const auto& [name, shape] : options.input_shapes) {
    if (name != "input" || shape.size() != 4)
      throw Error(ErrorKind::InvalidArgument, "built-in models take one input 'input' of rank 4 (NCHW)");
    batch = shape[0];
  }
  auto impl = std::make_unique<Impl>();
  impl->graph = graph::build_zoo_model(zoo_name, batch);
  return prepare(std::move(impl), options);
}

std::vector<std::string> Model::builtin_names() { return graph::zoo_names(); }

Model Model::prepare(std::unique_ptr<Impl> impl, const LoadOptions& options) {
  impl->threads = resolve_threads(options.threads);
  impl->strategy = options.strategy;
  graph::prepare_graph(impl->graph, impl->threads);
  for (auto i : impl->graph.inputs) impl->inputs.push_back(info_of(impl->graph.value(i)));
  for (auto o : impl->graph.outputs) impl->outputs.push_back(info_of(impl->graph.value(o)));
  runtime::ExecutorOptions eo;
  eo.threads = impl->threads;
  eo.device = options.device;
  eo.fp16 = options.fp16;
  if (options.trace) {
    impl->trace = std::make_unique<runtime::Trace>();
    eo.trace = impl->trace.get();
  }
  if (impl->strategy == "reference") {
    impl->executor = runtime::make_reference_executor(impl->graph, eo);
  } else {
    const planner::LinkProfile link = resolve_link(options.link);
    if (link.emulated) eo.on_transfer = runtime::link_emulator(link);
    const planner::DeviceProfile host = planner::default_host_profile();
    const planner::DeviceProfile accel = options.accel_profile.empty()
                                             ? planner::default_lavapipe_profile()
                                             : planner::load_device_profile(options.accel_profile);
    planner::PlanOptions po;
    po.strategy = impl->strategy;
    po.k = options.k;
    planner::Plan plan = planner::make_plan(impl->graph, host, accel, link, po);
    plan.model = impl->graph.name;
    try {
      impl->executor = std::make_unique<runtime::HeteroExecutor>(impl->graph, plan, eo);
    } catch (const Error& e) {
      // No usable accelerator: a default (cost-aware) plan falls back to the
      // host and says so; a strategy that asked for the device fails.
      if (e.kind() != ErrorKind::Device || impl->strategy != "fused" || plan.units.empty()) throw;
      impl->warnings.push_back(std::string("no usable Vulkan device (") + e.what() + "); running on the host");
      po.strategy = "cpu";
      plan = planner::make_plan(impl->graph, host, accel, link, po);
      plan.model = impl->graph.name;
      impl->executor = std::make_unique<runtime::HeteroExecutor>(impl->graph, plan, eo);
    }
    impl->predicted_ms = plan.predicted_ms;
  }
  return Model(std::move(impl));
}

const std::vector<TensorInfo>& Model::inputs() const { return impl_->inputs; }
const std::vector<TensorInfo>& Model::outputs() const { return impl_->outputs; }
const std::string& Model::strategy() const { return impl_->strategy; }
std::string Model::backend_description() const { return impl_->executor->description(); }
double Model::predicted_ms() const { return impl_->predicted_ms; }
const std::vector<std::string>& Model::warnings() const { return impl_->warnings; }
std::string Model::trace_json() const { return impl_->trace ? impl_->trace->to_json() : std::string(); }
RunTimings Model::last_timings() const { return impl_->timings; }

ModelSummary Model::summary() const {
  const auto& g = impl_->graph;
  ModelSummary s;
  s.name = g.name;
  s.opset = g.opset;
  s.node_count = static_cast<int>(g.nodes.size());
  s.parameter_count = g.parameter_count();
  std::map<std::string, int> counts;
  for (const auto& n : g.nodes) {
    ++counts[n.op_type];
    std::vector<graph::InputInfo> ins;
    for (auto i : n.inputs) {
      graph::InputInfo info;
      if (i == graph::kNoValue) info.present = false;
      else info.shape = g.value(i).shape;
      ins.push_back(info);
    }
    std::vector<graph::OutputInfo> outs;
    for (auto o : n.outputs) outs.push_back({graph::DType::f32, o == graph::kNoValue ? graph::Shape{} : g.value(o).shape});
    ModelSummary::Layer layer;
    layer.name = n.name;
    layer.op_type = n.op_type;
    layer.activation = n.activation.kind == graph::Activation::Kind::None ? "" : n.activation.name();
    layer.output_shape = outs.empty() ? std::vector<std::int64_t>{} : outs[0].shape;
    layer.flops = graph::node_flops(n, ins, outs);
    s.flops += layer.flops;
    s.layers.push_back(std::move(layer));
  }
  for (auto& [op, c] : counts) s.ops.push_back({op, c});
  return s;
}

std::vector<std::string> plan_strategies() { return planner::strategy_names(); }

std::vector<std::string> link_presets() {
  auto names = planner::link_preset_names();
  names.insert(names.begin(), "measured");
  return names;
}

namespace {

// The link `measured` stands for until `vkfuse calibrate` has measured it:
// lavapipe's copies on this class of machine (shared/BASELINES.md), with a
// submit + fence wait as latency.
planner::LinkProfile uncalibrated_measured_link() {
  planner::LinkProfile l;
  l.name = "measured (uncalibrated defaults)";
  l.h2d_mbps = 10400;
  l.d2h_mbps = 12600;
  l.h2d_latency_us = 50;
  l.d2h_latency_us = 50;
  l.emulated = false;
  return l;
}

}  // namespace

PlanReport Model::plan(const PlanOptions& options) const {
  const auto& g = impl_->graph;
  planner::DeviceProfile host =
      options.host_profile.empty() ? planner::default_host_profile() : planner::load_device_profile(options.host_profile);
  planner::DeviceProfile accel = options.accel_profile.empty() ? planner::default_lavapipe_profile()
                                                               : planner::load_device_profile(options.accel_profile);
  planner::LinkProfile link = resolve_link(options.link);
  planner::PlanOptions po;
  po.strategy = options.strategy;
  po.k = options.k;
  po.devices_present = false;  // no measured profiles of present devices yet
  planner::Plan plan = planner::make_plan(g, host, accel, link, po);
  plan.model = g.name;

  PlanReport r;
  r.strategy = plan.strategy;
  r.link = plan.link.describe();
  r.predicted_ms = plan.predicted_ms;
  r.predicted_only = plan.predicted_only;
  r.units = static_cast<int>(plan.units.size());
  r.accel_ops = plan.accel_node_count();
  r.host_ops = static_cast<int>(plan.nodes.size()) - r.accel_ops;
  r.transfers = plan.transfers;
  r.bytes_uploaded = plan.bytes_uploaded;
  r.bytes_downloaded = plan.bytes_downloaded;
  r.text = planner::plan_to_text(plan);
  r.json = planner::plan_to_json(plan);
  r.dot = planner::plan_to_dot(plan, g);
  return r;
}

void Model::run(std::span<const InputBuffer> inputs, std::span<const OutputBuffer> outputs) {
  auto& impl = *impl_;
  auto find = [](auto span, const std::string& name) {
    return std::find_if(span.begin(), span.end(), [&](const auto& b) { return b.name == name; });
  };
  for (const auto& b : inputs)
    if (std::none_of(impl.inputs.begin(), impl.inputs.end(), [&](const TensorInfo& t) { return t.name == b.name; }))
      throw Error(ErrorKind::InvalidInput, "the model has no input named '" + b.name + "'");
  std::vector<const float*> in_ptrs;
  for (const auto& info : impl.inputs) {
    auto it = find(inputs, info.name);
    if (it == inputs.end()) throw Error(ErrorKind::InvalidInput, "no data given for input '" + info.name + "'");
    if (static_cast<std::int64_t>(it->data.size()) != info.element_count())
      throw Error(ErrorKind::InvalidInput, "input '" + info.name + "' needs " + std::to_string(info.element_count()) +
                                               " floats (shape " + graph::shape_string(info.shape) + "), got " +
                                               std::to_string(it->data.size()));
    in_ptrs.push_back(it->data.data());
  }
  std::vector<float*> out_ptrs;
  for (const auto& info : impl.outputs) {
    auto it = find(outputs, info.name);
    if (it == outputs.end()) throw Error(ErrorKind::InvalidInput, "no buffer given for output '" + info.name + "'");
    if (static_cast<std::int64_t>(it->data.size()) != info.element_count())
      throw Error(ErrorKind::InvalidInput, "output '" + info.name + "' needs a buffer of " +
                                               std::to_string(info.element_count()) + " floats, got " +
                                               std::to_string(it->data.size()));
    out_ptrs.push_back(it->data.data());
  }

  if (impl.trace) impl.trace->clear();
  const auto start = std::chrono::steady_clock::now();
  impl.executor->run(in_ptrs, out_ptrs);
  impl.timings.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const auto st = impl.executor->stats();
  impl.timings.dispatches = st.dispatches;
  impl.timings.bytes_uploaded = st.bytes_uploaded;
  impl.timings.bytes_downloaded = st.bytes_downloaded;
}

}  // namespace vkfuse
