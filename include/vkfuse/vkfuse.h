// vkfuse/vkfuse.h — the public C++ API of vkfuse, and the only header an
// embedding program needs.
//
//   vkfuse::Model model = vkfuse::Model::load("resnet18.onnx");
//   std::vector<float> out(model.outputs()[0].element_count());
//   model.run({{model.inputs()[0].name, input}}, {{model.outputs()[0].name, out}});
//
// No protobuf, Halide or Vulkan type appears here. Every call reports failure
// by throwing vkfuse::Error with a message that says what to do.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vkfuse/error.h"

namespace vkfuse {

const char* version();

// A model input or output as the model declares it.
struct TensorInfo {
  std::string name;
  std::vector<std::int64_t> shape;  // concrete after loading
  std::string dtype = "float32";

  std::int64_t element_count() const;
};

// Where the ops run. Only strategies the build supports are accepted;
// `available_strategies()` lists them.
struct LoadOptions {
  // "fused" plans from measured profiles; "reference" runs the naive oracle.
  std::string strategy = "fused";
  int threads = 0;  // 0: one per hardware thread
  std::string device;  // Vulkan device: "" (the best one), an index, a UUID or part of its name (`vkfuse devices`)
  bool fp16 = false;   // 16-bit storage on the device, fp32 accumulation
  // The most a run waits for the device to finish its work; beyond it the
  // run fails with Error(DeviceTimeout) instead of hanging (see ErrorKind).
  std::int64_t device_timeout_ms = 120'000;
  // The host–accelerator link the plan assumes and, when emulated ("local",
  // "edge", "bw=<MB/s>,lat=<us>"), the transfer engine enforces.
  std::string link = "measured";
  double k = 1.0;              // offloading ratio (see PlanOptions)
  std::string accel_profile;   // plan against this device profile JSON instead of the default
  // A plan saved with `vkfuse plan MODEL --json FILE` (or written by hand):
  // its placement is run instead of planning (strategy is then ignored);
  // transfers and predictions are recomputed. A plan that does not fit the
  // model (an unknown or missing node, units that form a cycle, an op the
  // device cannot run) is an Error naming the problem.
  std::string plan;
  // Runs that may be in flight at once, from as many threads calling run():
  // each has its own executors (buffers, arenas, staging; for now weights
  // too), and they share the host's cores and the link, so the host part of
  // one overlaps the device and link part of another.
  int pipeline = 1;
  bool trace = false;          // record a Chrome/Perfetto trace of each run (RunTimings::trace_json)
  // Devices without a cached calibration are measured once on first use
  // (under 30 s) when true and the strategy places ops by cost (fused,
  // passes, fuse-all, per-op); otherwise built-in default profiles are used.
  bool calibrate = true;
  // The default strategy ("fused", no saved plan): when the plan uses the
  // accelerator, load returns once an all-host plan is ready and runs answer
  // on the host while the accelerator's part (shaders, pipelines, weights,
  // warm-up: minutes on some drivers) is built in the background; runs take
  // the planned placement as soon as it is ready (see building()). Where a
  // calibration is missing, load plans on the host alone and the background
  // build measures the devices first (cached as by `vkfuse calibrate`, but
  // taken while runs share the machine), then plans and builds.
  // false: load waits for the planned placement (and any calibration).
  bool host_while_building = true;
  // Progress lines of long steps (calibration), e.g. to print them.
  std::function<void(const std::string&)> progress;
  // Overrides for the declared input shapes, by input name; needed when a file
  // declares symbolic dimensions other than the batch (which defaults to 1).
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> input_shapes;
};

std::vector<std::string> available_strategies();

// What `vkfuse info` shows.
struct OpCount {
  std::string op_type;
  int count = 0;
};
struct ModelSummary {
  std::string name;
  std::int64_t opset = 0;
  int node_count = 0;                 // after canonicalization
  std::vector<OpCount> ops;           // per op type, after canonicalization
  std::int64_t parameter_count = 0;   // float weights
  std::int64_t flops = 0;             // per inference (2 per multiply-add)
  // The host (`cpu` strategy) executor over the whole graph: its activation
  // arena after liveness-based reuse, and what one buffer per tensor would
  // take; 0 when the build has no host backend.
  std::int64_t host_arena_bytes = 0;
  std::int64_t host_unplanned_bytes = 0;
  std::string host_kernels;           // the host kernels' instruction set, e.g. "x86-64-avx512 (multi-target: ...)"
  struct Layer {
    std::string name, op_type, activation;
    std::vector<std::int64_t> output_shape;
    std::int64_t flops = 0;
  };
  std::vector<Layer> layers;
};

// Caller-owned buffers for run(); float32, row-major, shaped as TensorInfo says.
struct InputBuffer {
  std::string name;
  std::span<const float> data;
};
struct OutputBuffer {
  std::string name;
  std::span<float> data;
};

// One step of the plan in force, predicted against measured: a host segment
// (a run of consecutive host ops), a dispatch unit's compute, or a unit's
// uploads or downloads over the link.
struct StepTiming {
  std::string name;    // "host segment 2", "unit 3", "unit 3 upload", "unit 3 download"
  std::string device;  // "host", "accelerator" or "link"
  double predicted_ms = 0;  // from the plan's cost model
  double measured_ms = 0;   // wall time in the last run
  std::int64_t bytes = 0;   // transfers: bytes moved; 0 for compute steps
};

// What one run did, returned by that run (Model::run, RunHandle::wait).
struct RunTimings {
  double total_ms = 0;                // the run's own time: from when it had an executor to its end
  std::int64_t dispatches = 0;        // GPU dispatches
  std::int64_t host_kernels = 0;      // host ops that ran a kernel of their own (not an epilogue of another's)
  std::int64_t host_copies = 0;       // copies of values from blocked channels to planar for planar readers
  std::int64_t bytes_uploaded = 0;    // host → device
  std::int64_t bytes_downloaded = 0;  // device → host
  double predicted_ms = 0;            // the plan's predicted total (0 for "reference")
  // Per plan step, in execution order (empty for "reference"). The predicted
  // steps add up to predicted_ms when the accelerator shares the host's cores
  // (lavapipe); otherwise the plan overlaps some of them.
  std::vector<StepTiming> steps;
  std::string trace_json;  // this run as a Chrome/Perfetto trace ("" unless LoadOptions::trace)
};

// A run started by Model::run_async. Movable; destroying a handle whose run
// is still going waits for it.
class RunHandle {
 public:
  RunHandle();
  RunHandle(RunHandle&&) noexcept;
  RunHandle& operator=(RunHandle&&) noexcept;
  ~RunHandle();

  // Blocks until the run is done; returns its timings or throws its Error.
  // Once per handle (then valid() is false).
  RunTimings wait();
  bool ready() const;  // done: wait() will not block
  bool valid() const;  // holds a run not yet waited for

 private:
  friend class Model;
  struct State;
  std::unique_ptr<State> state_;
};

// Memory a loaded model holds: weights as its kernels read them (repacked, on
// the host and on the device; the run slots of LoadOptions::pipeline share
// them), and summed over the slots, activation arenas and the device's
// staging buffers for inputs and outputs.
struct MemoryReport {
  std::int64_t host_weight_bytes = 0;
  std::int64_t host_activation_bytes = 0;
  std::int64_t device_weight_bytes = 0;
  std::int64_t device_activation_bytes = 0;
  std::int64_t device_staging_bytes = 0;
  std::int64_t peak_host_rss_bytes = 0;  // the whole process's peak resident memory so far
};

// Where a load's time went (`vkfuse run --json`: "load_phases_ms"). The run
// slots (LoadOptions::pipeline) share one device program: its lowering,
// compilation, pipelines and weight upload count once, each slot's warm-up
// is added.
struct LoadTimings {
  double total_ms = 0;
  double import_ms = 0;    // reading and parsing the model, canonicalizing, shapes
  double plan_ms = 0;      // device profiles (a first calibration included) and the plan
  double executors_ms = 0;  // building every run slot's executors, host and device; of it, on the device:
  double shader_lowering_ms = 0;  // GLSL generation
  double shader_compile_ms = 0;   // GLSL → SPIR-V (vkfuse's disk cache hits included)
  double pipelines_ms = 0;        // vkCreateComputePipelines
  double weights_upload_ms = 0;
  double warmup_ms = 0;           // one run of every unit: drivers such as lavapipe compile at the first dispatch
  std::int64_t shaders = 0;       // distinct GPU kernels
  // LoadOptions::host_while_building: how long the planned placement took to
  // build (a first calibration included) after load returned (its device
  // phases are counted above once done); 0 while building and without a
  // background build.
  double background_ms = 0;
};

// How to plan a model across host and accelerator (see `vkfuse plan`).
struct PlanOptions {
  std::string strategy = "fused";  // cpu, gpu, naive, fused, passes, fuse-all, per-op
  // The host–accelerator link: "measured" (the real one), a preset ("local",
  // "edge") or "bw=<MB/s>,lat=<us>".
  std::string link = "measured";
  double k = 1.0;              // offloading ratio: benefit must beat k × transfer cost
  std::string accel_profile;   // a device profile JSON file to plan against (what-if)
  std::string host_profile;    // likewise for the host
};

// A plan, as data: which op runs where, the dispatch units and their
// transfers, and the predicted time. Labelled predicted-only when the
// profiles are not measured ones of devices present here.
struct PlanReport {
  std::string strategy;
  std::string candidate;       // the plan that won (fused: one of its candidates; else the strategy)
  std::string link;            // the link in force, described
  double predicted_ms = 0;
  bool predicted_only = true;
  int host_ops = 0, accel_ops = 0, units = 0, transfers = 0;
  int kernels = 0;             // GPU dispatches per inference, as the Vulkan lowering will run them
  int host_kernels = 0;        // host ops with a kernel of their own, as the host lowering will run them
  int host_copies = 0;         // and its copies of values from blocked channels to planar
  std::int64_t bytes_uploaded = 0, bytes_downloaded = 0;
  std::string text, json, dot;  // the whole plan in three formats
};

std::vector<std::string> plan_strategies();
std::vector<std::string> link_presets();

class Model {
 public:
  // Loads an ONNX file. Throws Error(InvalidModel/Unsupported/Io) with a
  // one-line message on anything it cannot run.
  static Model load(const std::string& path, const LoadOptions& options = {});
  static Model load_bytes(std::span<const std::uint8_t> onnx_bytes, const LoadOptions& options = {});
  // A built-in model with deterministic synthetic weights ("resnet18", "inception_v3").
  static Model builtin(const std::string& zoo_name, const LoadOptions& options = {});
  static std::vector<std::string> builtin_names();

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;
  // The strategy in force: the one loaded with, or "cpu" once a default
  // strategy model fell back to the host (see ErrorKind).
  std::string strategy() const;
  // Where the ops run, in words: the executor and device.
  std::string backend_description() const;
  ModelSummary summary() const;

  // Plans the loaded model; does not change how run() executes.
  PlanReport plan(const PlanOptions& options = {}) const;

  // The plan in force (strategies other than "reference"): predicted time,
  // placements, units. predicted_ms is 0 for "reference".
  double predicted_ms() const;
  // Things the caller should know, e.g. a fallback from the accelerator to the host.
  std::vector<std::string> warnings() const;
  // Whether the planned placement is still being built in the background
  // (LoadOptions::host_while_building); runs meanwhile run on the host.
  bool building() const;
  // Waits until that build has ended (at once when there is none); then
  // runs use the planned placement, or the host if it could not be built
  // (warnings() says why). Destroying the model waits for it too.
  void wait_until_built() const;

  // Runs one inference. Every input and output must be given, by name, with
  // exactly element_count() floats; otherwise Error(InvalidInput). Up to
  // LoadOptions::pipeline threads may call it at once (more wait for a free
  // executor); with the default of 1, calls from several threads take turns.
  // Returns what this run did (time, transfers, per-step timings, trace).
  RunTimings run(std::span<const InputBuffer> inputs, std::span<const OutputBuffer> outputs);
  // Starts a run and returns at once. The inputs are checked here (Error
  // InvalidInput is thrown by this call); the caller's buffers must stay
  // valid, and the inputs unchanged, until the handle's wait() returns. Up
  // to LoadOptions::pipeline runs proceed at once, the rest queue.
  // Destroying (or assigning to) the model waits for its runs still going;
  // their handles stay valid after it.
  RunHandle run_async(std::span<const InputBuffer> inputs, std::span<const OutputBuffer> outputs);
  MemoryReport memory() const;
  LoadTimings load_timings() const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  // Canonicalizes impl's graph and builds its executor.
  static Model prepare(std::unique_ptr<Impl> impl, const LoadOptions& options);
  std::unique_ptr<Impl> impl_;
};

// Vulkan devices visible to this process (empty when there is no loader or ICD).
struct DeviceInfo {
  int index = 0;
  std::string name;
  std::string type;    // "discrete-gpu", "integrated-gpu", "cpu", "virtual-gpu", "other"
  std::string driver;  // driver name and version
  std::string api_version;
  std::string uuid;  // hex; keys the calibration cache
  std::uint64_t device_local_bytes = 0;
  // The largest tensor a kernel can bind (maxStorageBufferRange, or less
  // where VKFUSE_DEVICE_LIMITS caps it): ops on larger ones stay on the host.
  std::uint64_t max_tensor_bytes = 0;
  std::uint32_t subgroup_size = 0;
  bool fp16 = false;  // 16-bit storage and shaderFloat16
};
// Throws Error(Device) only on a loader failure other than "no device".
std::vector<DeviceInfo> list_devices();

// Measures the host, the accelerator (`device`: "" for the best, an index, a UUID
// or part of its name) and the link between them, and stores the profiles in the cache
// folder ($VKFUSE_CACHE_DIR, else ~/.cache/vkfuse). Returns the profiles as
// JSON text: {"host": ..., "accelerator": ..., "link": ...}.
std::string calibrate(const std::string& device, int threads,
                      const std::function<void(const std::string&)>& progress = {});

}  // namespace vkfuse
