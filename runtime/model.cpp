// The public API (include/vkfuse/vkfuse.h) on top of graph/ and runtime/.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <utility>

#include "codegen/spirv/lowering.h"
#include "graph/ops.h"
#include "graph/passes.h"
#include "planner/planner.h"
#include "runtime/calibration.h"
#include "runtime/executor.h"
#include "runtime/hetero_executor.h"
#include "runtime/host_executor.h"
#include "runtime/trace.h"
#include "runtime/vulkan/vulkan_executor.h"
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
  const bool host = runtime::host_backend_available(), device = runtime::vulkan_backend_available();
  if (host && device)
    for (auto& p : planner::strategy_names()) s.push_back(p);
  else if (host)
    s.push_back("cpu");
  else if (device)
    s.push_back("gpu");  // the whole graph as one dispatch unit needs no host kernels
  return s;
}

// Hidden: libvkfuse.so exports vkfuse::Model::*, and this is no part of the API.
struct __attribute__((visibility("hidden"))) Model::Impl {
  graph::Graph graph;
  std::vector<TensorInfo> inputs, outputs;
  std::string strategy;
  int threads = 1;
  // One executor per run that may be in flight (LoadOptions::pipeline): a
  // run takes a free one and gives it back. With LoadOptions::trace, each
  // has a trace of its own, restarted by every run.
  std::vector<std::unique_ptr<runtime::Executor>> executors;
  std::vector<std::unique_ptr<runtime::Trace>> traces;
  std::vector<std::size_t> free_slots;
  mutable std::mutex slots_mutex;
  std::condition_variable slot_freed;
  // Runs started by run_async and not yet finished: the model's destructor waits for them.
  int async_runs = 0;
  std::condition_variable async_done;
  double predicted_ms = 0;
  LoadTimings load;  // import_ms is set by the loader before prepare()
  std::vector<std::string> warnings;
  std::string device;

  // Rebuilding executors after a device fault (see ErrorKind), all guarded
  // by slots_mutex: the plan in force and what built its executors.
  planner::Plan plan;
  runtime::ExecutorOptions eo;
  std::shared_ptr<runtime::RunResources> shared;  // the runs in flight share the host's cores and the link
  std::function<planner::Plan()> host_plan;       // the default strategy's fallback; empty otherwise
  std::vector<bool> stale;                        // per slot: rebuild its executor before its next run
  std::uint64_t generation = 0;                   // bumped whenever every slot is made stale
  std::set<const void*> counted_programs;         // device programs whose load phases are in `load`
  // During prepare(): what the background build plans (calibrating the
  // devices first where none is cached) and builds, given its options.
  std::function<planner::Plan(runtime::ExecutorOptions&)> pending;
  bool calibrates_in_background = false;  // `pending` measures the devices first
  std::size_t runs_while_building = 0;    // runs that shared the machine with it

  // LoadOptions::host_while_building: the planned placement's executor for
  // slot 0, built by `builder` while the host answers; slot 0 takes it at
  // its next run if no fault has changed the plan since (generation).
  std::thread builder;
  bool building = false;
  std::condition_variable built;
  std::unique_ptr<runtime::Executor> prebuilt;
  std::uint64_t prebuilt_generation = 0;

  ~Impl() {
    if (builder.joinable()) builder.join();
  }

  runtime::ExecutorOptions options_of(std::size_t slot) const {
    runtime::ExecutorOptions o = eo;
    o.trace = traces.empty() ? nullptr : traces[slot].get();
    return o;
  }
  std::unique_ptr<runtime::Executor> make_executor(const planner::Plan& p, std::size_t slot) const {
    return std::make_unique<runtime::HeteroExecutor>(graph, p, options_of(slot), shared);
  }
  void rebuild(std::size_t slot);
  void build_in_background(std::function<planner::Plan(runtime::ExecutorOptions&)> make_plan,
                           runtime::ExecutorOptions options);
  // Adds an executor's device phases to `load`, each device program once.
  void count_device_phases(const runtime::Executor& e, std::set<const void*>& counted);
  // Runs started by run_async hold this Impl: it must live until they end.
  void wait_for_async_runs() {
    std::unique_lock<std::mutex> lock(slots_mutex);
    async_done.wait(lock, [&] { return async_runs == 0; });
  }
  // Checks the caller's buffers against the model's inputs and outputs and
  // returns them in the model's order.
  std::pair<std::vector<const float*>, std::vector<float*>> buffers(std::span<const InputBuffer> inputs,
                                                                    std::span<const OutputBuffer> outputs) const;
  RunTimings run(std::span<const float* const> in, std::span<float* const> out);
};

namespace {

int resolve_threads(int requested) {
  if (requested < 0) throw Error(ErrorKind::InvalidArgument, "--threads must be 0 (all cores) or positive");
  if (requested > 0) return requested;
  return std::max(1u, std::thread::hardware_concurrency());
}

// The accelerator runs what the GPU lowering has kernels for, on tensors the
// device present can bind (max_tensor_bytes, 0: no device); the planner keeps
// the rest on the host.
planner::AccelSupports gpu_supports(std::uint64_t max_tensor_bytes) {
  return [max_tensor_bytes](const graph::Graph& g, const graph::Node& n) {
    return codegen::spirv::unsupported_reason(g, n, max_tensor_bytes).empty();
  };
}

// What the planner plans with, from the profiles at hand: the link a spec
// names (or the measured one), what-if profiles where files are given, the
// accelerator priced as its fp16 kernels run.
struct PlanRequest {
  std::string strategy, link = "measured", host_profile, accel_profile;
  double k = 1.0;
  bool fp16 = false;
};
struct PlanInputs {
  planner::DeviceProfile host, accel;
  planner::LinkProfile link;
  planner::PlanOptions po;
};
PlanInputs plan_inputs(const runtime::PlanningProfiles& pr, const PlanRequest& r) {
  PlanInputs p;
  p.host = r.host_profile.empty() ? pr.host : planner::load_device_profile(r.host_profile);
  p.accel = r.accel_profile.empty() ? pr.accel : planner::load_device_profile(r.accel_profile);
  if (r.fp16) p.accel = planner::for_fp16(std::move(p.accel));
  p.link = r.link == "measured" ? pr.measured_link : planner::link_from_spec(r.link);
  p.po.strategy = r.strategy;
  p.po.k = r.k;
  p.po.devices_present = pr.measured && r.accel_profile.empty() && r.host_profile.empty();
  p.po.accel_supports = gpu_supports(pr.max_tensor_bytes);
  return p;
}

// "kept on the host: ..." naming each op type the GPU cannot run, with a node
// and the reason; empty when it runs every op.
std::string host_only_ops(const graph::Graph& g, std::uint64_t max_tensor_bytes) {
  std::map<std::string, std::string> first;  // op type -> "node 'x': reason"
  std::map<std::string, int> count;
  for (const auto& n : g.nodes) {
    const std::string why = codegen::spirv::unsupported_reason(g, n, max_tensor_bytes);
    if (why.empty()) continue;
    if (!count[n.op_type]++) first[n.op_type] = "node '" + n.name + "': " + why;
  }
  if (first.empty()) return "";
  std::string s = "kept on the host (the GPU cannot run them):";
  for (const auto& [op, where] : first)
    s += " " + op + " x" + std::to_string(count[op]) + " (" + where + ");";
  s.pop_back();
  return s;
}

// A plan file that puts an op on the accelerator that the GPU cannot run.
void check_placements(const graph::Graph& g, const planner::Plan& plan, std::uint64_t max_tensor_bytes) {
  for (std::size_t i = 0; i < g.nodes.size() && i < plan.nodes.size(); ++i) {
    if (plan.nodes[i].unit < 0) continue;
    const std::string why = codegen::spirv::unsupported_reason(g, g.nodes[i], max_tensor_bytes);
    if (!why.empty())
      throw Error(ErrorKind::InvalidArgument, "the plan puts node '" + g.nodes[i].name + "' (" +
                                                  g.nodes[i].op_type + ") on the accelerator, which cannot run " +
                                                  why + "; move it to the host (\"unit\": null)");
  }
}

void check_strategy(const std::string& s) {
  auto avail = available_strategies();
  if (std::find(avail.begin(), avail.end(), s) != avail.end()) return;
  std::string list;
  for (auto& a : avail) list += (list.empty() ? "" : ", ") + a;
  const std::vector<std::string> planned = planner::strategy_names();
  if (std::find(planned.begin(), planned.end(), s) != planned.end())
    throw Error(ErrorKind::InvalidArgument,
                "strategy '" + s + "' is not implemented in this build yet; available: " + list);
  throw Error(ErrorKind::InvalidArgument, "unknown strategy '" + s + "'; available: " + list);
}

TensorInfo info_of(const graph::Value& v) { return TensorInfo{v.name, v.shape, graph::dtype_name(v.dtype)}; }

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->wait_for_async_runs();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Model::~Model() {
  if (impl_) impl_->wait_for_async_runs();  // (null when moved from)
}

Model Model::load(const std::string& path, const LoadOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const graph::ModelFile file(path);
  try {
    Model m = load_bytes(file.bytes(), options);
    const double read_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() -
                           m.impl_->load.total_ms;
    m.impl_->load.import_ms += read_ms;
    m.impl_->load.total_ms += read_ms;
    return m;
  } catch (const Error& e) {
    throw Error(e.kind(), path + ": " + e.what());
  }
}

Model Model::load_bytes(std::span<const std::uint8_t> onnx_bytes, const LoadOptions& options) {
  check_strategy(options.strategy);
  graph::InputShapeOverrides overrides(options.input_shapes.begin(), options.input_shapes.end());
  auto impl = std::make_unique<Impl>();
  const auto t0 = std::chrono::steady_clock::now();
  impl->graph = graph::import_onnx(onnx_bytes, overrides);
  impl->load.import_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
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
  const auto t0 = std::chrono::steady_clock::now();
  impl->graph = graph::build_zoo_model(zoo_name, batch);
  impl->load.import_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return prepare(std::move(impl), options);
}

std::vector<std::string> Model::builtin_names() { return graph::zoo_names(); }

Model Model::prepare(std::unique_ptr<Impl> impl, const LoadOptions& options) {
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); };
  const auto t_prepare = Clock::now();
  const double imported_ms = impl->load.import_ms;  // before prepare: reading and parsing
  impl->threads = resolve_threads(options.threads);
  impl->strategy = options.strategy;
  impl->device = options.device;
  graph::prepare_graph(impl->graph, impl->threads);
  impl->load.import_ms += ms_since(t_prepare);
  for (auto i : impl->graph.inputs) impl->inputs.push_back(info_of(impl->graph.value(i)));
  for (auto o : impl->graph.outputs) impl->outputs.push_back(info_of(impl->graph.value(o)));
  runtime::ExecutorOptions eo;
  eo.threads = impl->threads;
  eo.device = options.device;
  eo.fp16 = options.fp16;
  if (options.device_timeout_ms < 1)
    throw Error(ErrorKind::InvalidArgument, "device_timeout_ms must be at least 1 (milliseconds)");
  eo.device_timeout_ms = static_cast<std::uint64_t>(options.device_timeout_ms);
  eo.progress = options.progress;
  auto t_phase = Clock::now();
  if (options.pipeline < 1) throw Error(ErrorKind::InvalidArgument, "pipeline must be at least 1 (runs in flight)");
  const auto slots = static_cast<std::size_t>(options.pipeline);
  if (options.trace)
    for (std::size_t i = 0; i < slots; ++i) impl->traces.push_back(std::make_unique<runtime::Trace>());
  impl->eo = eo;
  bool calibrating = false;  // the background build calibrates first (see below)
  std::size_t pending_units = 0;
  if (impl->strategy == "reference" && options.plan.empty()) {
    for (std::size_t i = 0; i < slots; ++i)
      impl->executors.push_back(runtime::make_reference_executor(impl->graph, impl->options_of(i)));
  } else {
    // Measured profiles (calibrating once if missing) where a backend can run
    // the micro-benchmarks; built-in defaults otherwise. Only the cost-aware
    // strategies place ops by cost: the others use cached profiles for their
    // predictions but never make a user wait for a calibration.
    const bool cost_aware = impl->strategy == "fused" || impl->strategy == "per-op" || impl->strategy == "passes" ||
                            impl->strategy == "fuse-all";
    const bool can_calibrate = options.calibrate && cost_aware && runtime::host_backend_available() &&
                               runtime::vulkan_backend_available();
    // The default strategy, answering on the host while it builds, does not
    // make the first result wait for a first calibration either: the host
    // answers meanwhile, and the build calibrates, plans and builds.
    const bool calibrate_in_background = can_calibrate && options.host_while_building &&
                                         options.strategy == "fused" && options.plan.empty() &&
                                         options.accel_profile.empty();
    // A host-only strategy never looks at the Vulkan devices (their driver's
    // load would be most of a small model's).
    const auto uses = impl->strategy == "cpu" && options.plan.empty() ? runtime::Uses::host
                                                                        : runtime::Uses::host_and_accelerator;
    const runtime::PlanningProfiles profiles =
        runtime::planning_profiles(eo, uses, can_calibrate && !calibrate_in_background, options.progress);
    // (max_tensor_bytes: a device is present; without one nothing is measured.)
    calibrating = calibrate_in_background && !profiles.measured && profiles.max_tensor_bytes > 0;
    const PlanRequest request{impl->strategy, options.link, "", options.accel_profile, options.k, options.fp16};
    PlanInputs in = plan_inputs(profiles, request);  // not const: host_plan's copy is mutable
    // The kernels calibration tuned on this device (a what-if profile's are
    // another device's).
    if (options.accel_profile.empty() && profiles.accel.measured) impl->eo.kernel_shape = profiles.accel.kernel_shape;
    // While calibrating, the host plan below (host_plan) is the one in force.
    planner::Plan plan;
    if (!calibrating)
      plan = options.plan.empty()
                 ? planner::make_plan(impl->graph, in.host, in.accel, in.link, in.po)
                 : planner::load_plan(options.plan, planner::CostModel(impl->graph, in.host, in.accel, in.link),
                                      in.po.devices_present);
    if (!options.plan.empty()) check_placements(impl->graph, plan, profiles.max_tensor_bytes);
    if (impl->strategy != "cpu" && options.plan.empty())
      if (std::string kept = host_only_ops(impl->graph, profiles.max_tensor_bytes); !kept.empty())
        impl->warnings.push_back(std::move(kept));
    plan.model = impl->graph.name;
    if (!options.plan.empty()) impl->strategy = plan.strategy;
    impl->load.plan_ms = ms_since(t_phase);
    t_phase = Clock::now();
    impl->shared = std::make_shared<runtime::RunResources>();
    auto make_executors = [&](const planner::Plan& p) {
      impl->executors.clear();
      for (std::size_t i = 0; i < slots; ++i) impl->executors.push_back(impl->make_executor(p, i));
    };
    const bool had_units = !plan.units.empty();
    // The default strategy answers a device that fails (at load, or later
    // at a run: see Impl::rebuild) by running on the host.
    if (options.strategy == "fused" && options.plan.empty() && (had_units || calibrating))
      impl->host_plan = [g = &impl->graph, in]() mutable {
        in.po.strategy = "cpu";
        planner::Plan p = planner::make_plan(*g, in.host, in.accel, in.link, in.po);
        p.model = g->name;
        return p;
      };
    // The default strategy with an accelerator in its plan: the host answers
    // while the plan's executor builds (Impl::build_in_background).
    const bool background = options.host_while_building && impl->host_plan;
    try {
      if (calibrating) {
        impl->calibrates_in_background = true;
        impl->pending = [g = &impl->graph, uses, request](runtime::ExecutorOptions& o) {
          const runtime::PlanningProfiles measured = runtime::planning_profiles(o, uses, true, nullptr);
          const PlanInputs p = plan_inputs(measured, request);
          if (measured.accel.measured) o.kernel_shape = measured.accel.kernel_shape;
          planner::Plan planned = planner::make_plan(*g, p.host, p.accel, p.link, p.po);
          planned.model = g->name;
          return planned;
        };
        plan = impl->host_plan();
      } else if (background) {
        impl->pending = [planned = plan](runtime::ExecutorOptions&) { return planned; };
        pending_units = plan.units.size();
        plan = impl->host_plan();
      }
      make_executors(plan);
    } catch (const Error& e) {
      // No usable accelerator: a default (cost-aware) plan falls back to the
      // host and says so; a strategy that asked for the device fails.
      if (!is_device_error(e.kind()) || !impl->host_plan) throw;
      impl->pending = nullptr;
      impl->warnings.push_back(std::string("no usable Vulkan device (") + e.what() + "); running on the host");
      plan = impl->host_plan();
      impl->host_plan = nullptr;
      impl->strategy = plan.strategy;
      make_executors(plan);
    }
    // A default plan that uses no accelerator because there is none says so
    // (planned against default profiles, it had no reason to try the device).
    if (options.strategy == "fused" && options.plan.empty() && !had_units && !profiles.measured && !calibrating) {
      std::string why;
      try {
        why = runtime::no_vulkan_device_reason();
      } catch (const Error& e) {
        why = e.what();
      }
      if (!why.empty()) impl->warnings.push_back(why + "; running on the host");
    }
    impl->plan = plan;
    impl->predicted_ms = plan.predicted_ms;
  }
  impl->load.executors_ms = ms_since(t_phase);
  // The caller's progress callback is for the load: rebuilds at run time
  // (after a device fault, from any thread) and the background build stay quiet.
  impl->eo.progress = nullptr;
  for (const auto& e : impl->executors) impl->count_device_phases(*e, impl->counted_programs);
  impl->load.total_ms = imported_ms + ms_since(t_prepare);
  for (std::size_t i = 0; i < impl->executors.size(); ++i) impl->free_slots.push_back(i);
  impl->stale.assign(impl->executors.size(), false);
  if (impl->pending) {
    if (options.progress)
      options.progress(calibrating ? "no calibration for these devices yet: answering on the host while they are "
                                     "measured once in the background and the plan is made and built (`vkfuse "
                                     "calibrate` on an idle machine measures them undisturbed)"
                                   : "answering on the host while the accelerator's part of the plan is built (" +
                                         std::to_string(pending_units) + " dispatch units)");
    impl->building = true;
    impl->builder = std::thread(&Impl::build_in_background, impl.get(), std::exchange(impl->pending, nullptr),
                                impl->options_of(0));
  }
  return Model(std::move(impl));
}

void Model::Impl::count_device_phases(const runtime::Executor& e, std::set<const void*>& counted) {
  const auto* hetero = dynamic_cast<const runtime::HeteroExecutor*>(&e);
  if (!hetero || !hetero->device()) return;
  const runtime::vulkan::LoadInfo& li = hetero->device()->load_info();
  if (counted.insert(&hetero->device()->program()).second) {
    load.shader_lowering_ms += li.lower_ms;
    load.shader_compile_ms += li.compile_ms;
    load.pipelines_ms += li.pipelines_ms;
    load.weights_upload_ms += li.upload_ms;
  }
  load.warmup_ms += li.warmup_ms;
  load.shaders = li.shaders;
}

void Model::Impl::build_in_background(std::function<planner::Plan(runtime::ExecutorOptions&)> make_plan,
                                      runtime::ExecutorOptions options) {
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<planner::Plan> planned;
  std::unique_ptr<runtime::Executor> made;
  std::string failure;
  try {
    planned = make_plan(options);
    // A plan on the host alone (a first calibration placed nothing on the
    // accelerator) is what the host's executors already run.
    if (!planned->units.empty()) made = std::make_unique<runtime::HeteroExecutor>(graph, *planned, options, shared);
  } catch (const std::exception& e) {  // nobody to throw to: the host keeps answering, with a warning
    failure = e.what();
  } catch (...) {
    failure = "an unknown exception";
  }
  std::lock_guard<std::mutex> lock(slots_mutex);
  if (planned && failure.empty()) {
    load.background_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    eo.kernel_shape = options.kernel_shape;  // as calibration tuned them, for rebuilds too
    plan = std::move(*planned);
    predicted_ms = plan.predicted_ms;
    if (calibrates_in_background && runs_while_building > 0)
      warnings.push_back("the devices were calibrated while this model answered " +
                         std::to_string(runs_while_building) +
                         " run(s) on the host, so the cached profiles may price them slower than they are; "
                         "`vkfuse calibrate` on an idle machine measures them again");
    if (made) {
      count_device_phases(*made, counted_programs);
      prebuilt = std::move(made);
      stale.assign(stale.size(), true);
      prebuilt_generation = ++generation;
    }
  } else {
    host_plan = nullptr;
    strategy = plan.strategy;  // the host plan in force, as after a fallback at load
    warnings.push_back(std::string(planned ? "the accelerator's part of the plan could not be built ("
                                           : "the devices could not be calibrated and planned for (") +
                       failure + "); running on the host");
  }
  building = false;
  built.notify_all();
}

void Model::Impl::rebuild(std::size_t slot) {
  // The caller holds the slot. Its old executor goes first: it frees the
  // device memory the new one may need.
  std::unique_ptr<runtime::Executor> old;
  {
    std::lock_guard<std::mutex> lock(slots_mutex);
    old = std::move(executors[slot]);
  }
  old.reset();
  // Another slot may switch the plan to the host, or retire the device, while
  // this one builds: a build for an older generation is done again.
  for (;;) {
    planner::Plan p;
    std::uint64_t built_for;
    {
      std::lock_guard<std::mutex> lock(slots_mutex);
      if (prebuilt && prebuilt_generation != generation) prebuilt.reset();  // a fault changed the plan since
      if (prebuilt && slot == 0) {
        executors[slot] = std::move(prebuilt);
        stale[slot] = false;
        return;
      }
      p = plan;
      built_for = generation;
    }
    std::unique_ptr<runtime::Executor> fresh;
    try {
      fresh = make_executor(p, slot);
    } catch (const Error& e) {
      if (!is_device_error(e.kind())) throw;
      std::lock_guard<std::mutex> lock(slots_mutex);
      if (generation != built_for) continue;  // the plan changed meanwhile: try the new one
      if (!host_plan) throw;
      // The default strategy: the host from now on, for every slot.
      plan = host_plan();
      host_plan = nullptr;
      strategy = plan.strategy;
      predicted_ms = plan.predicted_ms;
      warnings.push_back(std::string("the Vulkan device failed and could not be set up again (") + e.what() +
                         "); running on the host from now on");
      stale.assign(stale.size(), true);
      ++generation;
      continue;
    }
    std::lock_guard<std::mutex> lock(slots_mutex);
    if (generation != built_for) continue;
    executors[slot] = std::move(fresh);
    stale[slot] = false;
    return;
  }
}

const std::vector<TensorInfo>& Model::inputs() const { return impl_->inputs; }
const std::vector<TensorInfo>& Model::outputs() const { return impl_->outputs; }
std::string Model::strategy() const {
  std::lock_guard<std::mutex> lock(impl_->slots_mutex);
  return impl_->strategy;
}
std::string Model::backend_description() const {
  std::lock_guard<std::mutex> lock(impl_->slots_mutex);
  // The plan in force: a slot switches to a new one at its next run.
  if (impl_->prebuilt) return impl_->prebuilt->description();
  for (std::size_t i = 0; i < impl_->executors.size(); ++i)
    if (impl_->executors[i] && !impl_->stale[i]) return impl_->executors[i]->description();
  for (const auto& e : impl_->executors)
    if (e) return e->description();
  return "none: its executors failed to rebuild after a device fault (the next run tries again)";
}
double Model::predicted_ms() const {
  std::lock_guard<std::mutex> lock(impl_->slots_mutex);
  return impl_->predicted_ms;
}
std::vector<std::string> Model::warnings() const {
  std::lock_guard<std::mutex> lock(impl_->slots_mutex);
  return impl_->warnings;
}

LoadTimings Model::load_timings() const {
  std::lock_guard<std::mutex> lock(impl_->slots_mutex);
  return impl_->load;
}
bool Model::building() const {
  std::lock_guard<std::mutex> lock(impl_->slots_mutex);
  return impl_->building;
}
void Model::wait_until_built() const {
  std::unique_lock<std::mutex> lock(impl_->slots_mutex);
  impl_->built.wait(lock, [&] { return !impl_->building; });
}

MemoryReport Model::memory() const {
  MemoryReport r;
  std::lock_guard<std::mutex> lock(impl_->slots_mutex);
  // Pipeline slots share their programs: the weights of each count once.
  std::set<const void*> programs;
  for (const auto& e : impl_->executors) {
    if (!e) continue;
    runtime::MemoryUse m = e->memory();
    if (const auto* h = dynamic_cast<const runtime::HeteroExecutor*>(e.get())) {
      if (h->host() && !programs.insert(&h->host()->program()).second) m.host_weight_bytes = 0;
      if (h->device() && !programs.insert(&h->device()->program()).second) m.device_weight_bytes = 0;
    }
    runtime::operator+=(r, m);
  }
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) r.peak_host_rss_bytes = static_cast<std::int64_t>(usage.ru_maxrss) * 1024;
  return r;
}

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
    ModelSummary::Layer layer;
    layer.name = n.name;
    layer.op_type = n.op_type;
    layer.activation = n.activation.kind == graph::Activation::Kind::None ? "" : n.activation.name();
    layer.output_shape = n.outputs.empty() || n.outputs[0] == graph::kNoValue ? std::vector<std::int64_t>{}
                                                                              : g.value(n.outputs[0]).shape;
    layer.flops = graph::node_flops(g, n);
    s.flops += layer.flops;
    s.layers.push_back(std::move(layer));
  }
  for (auto& [op, c] : counts) s.ops.push_back({op, c});
  if (runtime::host_backend_available()) {
    std::tie(s.host_arena_bytes, s.host_unplanned_bytes) = runtime::HostExecutor::activation_memory(g);
    s.host_kernels = runtime::HostExecutor::kernel_target();
  }
  return s;
}

std::vector<std::string> plan_strategies() { return planner::strategy_names(); }

std::vector<std::string> link_presets() {
  auto names = planner::link_preset_names();
  names.insert(names.begin(), "measured");
  return names;
}

PlanReport Model::plan(const PlanOptions& options) const {
  const auto& g = impl_->graph;
  runtime::ExecutorOptions eo;
  eo.device = impl_->device;
  // Cached measurements where there are any; planning never calibrates.
  const runtime::PlanningProfiles profiles = runtime::planning_profiles(
      eo, options.strategy == "cpu" ? runtime::Uses::host : runtime::Uses::host_and_accelerator, false, {});
  const PlanInputs in = plan_inputs(
      profiles, {options.strategy, options.link, options.host_profile, options.accel_profile, options.k, false});
  planner::Plan plan = planner::make_plan(g, in.host, in.accel, in.link, in.po);
  plan.model = g.name;

  PlanReport r;
  r.strategy = plan.strategy;
  r.candidate = plan.candidate;
  r.link = plan.link.describe();
  r.predicted_ms = plan.predicted_ms;
  r.predicted_only = plan.predicted_only;
  r.units = static_cast<int>(plan.units.size());
  for (const auto& u : plan.units) r.kernels += u.kernels;
  r.host_kernels = plan.host_kernels;
  r.host_copies = plan.host_copies;
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

std::string calibrate(const std::string& device, int threads, const std::function<void(const std::string&)>& progress) {
  runtime::ExecutorOptions eo;
  eo.device = device;
  eo.threads = resolve_threads(threads);
  if (!runtime::host_backend_available() || !runtime::vulkan_backend_available())
    throw Error(ErrorKind::Unsupported, "calibration needs the host and Vulkan backends, which this build lacks");
  const std::string dir = runtime::cache_dir();
  const auto accel_id = runtime::accelerator_identity(eo);
  if (!accel_id) throw Error(ErrorKind::Device, "no Vulkan device to calibrate (see `vkfuse devices`)");
  auto host = runtime::calibrate_host(eo, progress);
  auto accel = runtime::calibrate_accelerator(eo, progress);
  auto link = runtime::calibrate_link(eo, progress);
  planner::save_device_profile(host, dir + "/" + planner::profile_cache_file_name(host));
  planner::save_device_profile(accel, dir + "/" + planner::profile_cache_file_name(accel));
  planner::save_link_profile(link, dir + "/link-" + planner::profile_cache_file_name(accel));
  return "{\"host\": " + planner::device_profile_to_json(host) + ", \"accelerator\": " +
         planner::device_profile_to_json(accel) + ", \"link\": " + planner::link_profile_to_json(link) + "}";
}

std::pair<std::vector<const float*>, std::vector<float*>> Model::Impl::buffers(
    std::span<const InputBuffer> in, std::span<const OutputBuffer> out) const {
  auto find = [](auto span, const std::string& name) {
    return std::find_if(span.begin(), span.end(), [&](const auto& b) { return b.name == name; });
  };
  for (const auto& b : in)
    if (std::none_of(inputs.begin(), inputs.end(), [&](const TensorInfo& t) { return t.name == b.name; }))
      throw Error(ErrorKind::InvalidInput, "the model has no input named '" + b.name + "'");
  std::vector<const float*> in_ptrs;
  for (const auto& info : inputs) {
    auto it = find(in, info.name);
    if (it == in.end()) throw Error(ErrorKind::InvalidInput, "no data given for input '" + info.name + "'");
    if (static_cast<std::int64_t>(it->data.size()) != info.element_count())
      throw Error(ErrorKind::InvalidInput, "input '" + info.name + "' needs " + std::to_string(info.element_count()) +
                                               " floats (shape " + graph::shape_string(info.shape) + "), got " +
                                               std::to_string(it->data.size()));
    in_ptrs.push_back(it->data.data());
  }
  std::vector<float*> out_ptrs;
  for (const auto& info : outputs) {
    auto it = find(out, info.name);
    if (it == out.end()) throw Error(ErrorKind::InvalidInput, "no buffer given for output '" + info.name + "'");
    if (static_cast<std::int64_t>(it->data.size()) != info.element_count())
      throw Error(ErrorKind::InvalidInput, "output '" + info.name + "' needs a buffer of " +
                                               std::to_string(info.element_count()) + " floats, got " +
                                               std::to_string(it->data.size()));
    out_ptrs.push_back(it->data.data());
  }
  return {std::move(in_ptrs), std::move(out_ptrs)};
}

RunTimings Model::run(std::span<const InputBuffer> inputs, std::span<const OutputBuffer> outputs) {
  const auto [in, out] = impl_->buffers(inputs, outputs);
  return impl_->run(in, out);
}

struct RunHandle::State {
  std::future<RunTimings> result;
};

RunHandle Model::run_async(std::span<const InputBuffer> inputs, std::span<const OutputBuffer> outputs) {
  auto [in, out] = impl_->buffers(inputs, outputs);
  Impl* impl = impl_.get();
  {
    std::lock_guard<std::mutex> lock(impl->slots_mutex);
    ++impl->async_runs;
  }
  auto finished = [impl] {
    std::lock_guard<std::mutex> lock(impl->slots_mutex);
    if (--impl->async_runs == 0) impl->async_done.notify_all();
  };
  RunHandle h;
  try {
    h.state_ = std::make_unique<RunHandle::State>();
    h.state_->result = std::async(std::launch::async, [impl, finished, in = std::move(in), out = std::move(out)] {
      struct Done {
        decltype(finished) f;
        ~Done() { f(); }
      } done{finished};
      return impl->run(in, out);
    });
  } catch (...) {
    finished();  // no thread was started (std::system_error, std::bad_alloc)
    throw;
  }
  return h;
}

RunTimings Model::Impl::run(std::span<const float* const> in_ptrs, std::span<float* const> out_ptrs) {
  Impl& impl = *this;
  // A free executor: with LoadOptions::pipeline > 1, that many runs may be
  // in flight from as many threads.
  std::size_t slot;
  {
    std::unique_lock<std::mutex> lock(impl.slots_mutex);
    impl.slot_freed.wait(lock, [&] { return !impl.free_slots.empty(); });
    slot = impl.free_slots.back();
    impl.free_slots.pop_back();
    if (impl.building) ++impl.runs_while_building;
  }
  struct GiveBack {
    Impl& impl;
    std::size_t slot;
    ~GiveBack() {
      {
        std::lock_guard<std::mutex> lock(impl.slots_mutex);
        impl.free_slots.push_back(slot);
      }
      impl.slot_freed.notify_one();
    }
  } give_back{impl, slot};
  bool stale;
  {
    std::lock_guard<std::mutex> lock(impl.slots_mutex);
    stale = impl.stale[slot];
  }
  if (stale) impl.rebuild(slot);
  RunTimings t;
  runtime::Executor* held;
  {
    std::lock_guard<std::mutex> lock(impl.slots_mutex);
    held = impl.executors[slot].get();
    t.predicted_ms = impl.predicted_ms;  // a fallback to the host changes it
  }
  runtime::Executor& executor = *held;

  runtime::Trace* trace = impl.traces.empty() ? nullptr : impl.traces[slot].get();
  if (trace) trace->restart();
  const auto start = std::chrono::steady_clock::now();
  try {
    executor.run(in_ptrs, out_ptrs);
  } catch (const Error& e) {
    if (is_device_error(e.kind())) {
      // This slot's device state is suspect: rebuilt at its next run. After a
      // lost device or a timeout the context is retired, so every slot is.
      std::lock_guard<std::mutex> lock(impl.slots_mutex);
      if (e.kind() == ErrorKind::DeviceLost || e.kind() == ErrorKind::DeviceTimeout) {
        impl.stale.assign(impl.stale.size(), true);
        ++impl.generation;
      }
      impl.stale[slot] = true;
    }
    throw;
  }
  t.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const auto st = executor.stats();
  t.dispatches = st.dispatches;
  t.host_kernels = st.host_kernels;
  t.host_copies = st.host_copies;
  t.bytes_uploaded = st.bytes_uploaded;
  t.bytes_downloaded = st.bytes_downloaded;
  if (const auto* hetero = dynamic_cast<const runtime::HeteroExecutor*>(&executor)) {
    using Device = runtime::HeteroExecutor::StepTime::Device;
    for (const auto& st : hetero->step_times())
      t.steps.push_back({st.name,
                         st.device == Device::host          ? "host"
                         : st.device == Device::accelerator ? "accelerator"
                                                            : "link",
                         st.predicted_us / 1e3, st.measured_us / 1e3, st.bytes});
  }
  if (trace) t.trace_json = trace->to_json();
  return t;
}

RunHandle::RunHandle() = default;
RunHandle::RunHandle(RunHandle&&) noexcept = default;
RunHandle& RunHandle::operator=(RunHandle&&) noexcept = default;
RunHandle::~RunHandle() = default;  // a std::async future's destructor waits for the run

RunTimings RunHandle::wait() {
  if (!valid()) throw Error(ErrorKind::InvalidArgument, "RunHandle::wait on a handle with no run (already waited for?)");
  return state_->result.get();
}

bool RunHandle::ready() const {
  return valid() && state_->result.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

bool RunHandle::valid() const { return state_ && state_->result.valid(); }

}  // namespace vkfuse
