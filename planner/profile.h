// planner/profile.h — what the planner knows of devices and links: data, not code.
//
//   DeviceProfile  achieved throughput (GFLOP/s, a small table over op size) and
//                  effective memory bandwidth (GB/s) per op class, per-dispatch and
//                  per-submission overhead, and whether the device runs on the
//                  host's own cores (lavapipe does: no parallel speed-up then).
//   LinkProfile    host→device and device→host bandwidth (MB/s) and latency (µs).
//
// Both load from and save to JSON; malformed JSON is a vkfuse::Error naming the
// field. Built-in defaults exist for this machine's host, for lavapipe and per GPU type, so that
// planning works before `vkfuse calibrate`; they are labelled not measured.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vkfuse::planner {

// The op classes a profile distinguishes. Data movement (Concat, Transpose,
// Pad, ...) is costed as elementwise; views (Flatten, Reshape, ...) cost nothing.
enum class OpClass : std::uint8_t { direct_conv, conv1x1_gemm, depthwise, gemm, pooling, elementwise };
inline constexpr std::size_t kOpClassCount = 6;
inline constexpr std::array<OpClass, kOpClassCount> kAllOpClasses = {OpClass::direct_conv, OpClass::conv1x1_gemm,
                                                                     OpClass::depthwise,   OpClass::gemm,
                                                                     OpClass::pooling,     OpClass::elementwise};

const char* op_class_name(OpClass c);
std::optional<OpClass> parse_op_class(std::string_view name);

// The shape of an op beyond its size: what makes two ops of equal FLOPs run
// at different rates (a 1x1 conv on a 7x7 map against one on a 56x56 map, a
// stride-2 conv, a 7x7 stem over 3 channels). All zero: unknown.
struct OpGeometry {
  double pixels = 0;    // output plane, H×W
  double kernel = 0;    // kernel area, kh×kw (pooling: its window)
  double stride = 0;    // the larger of the strides
  double channels = 0;  // input channels per group (pooling: channels)
  // Run in blocked channels (planner/host_layout.h): the host's kernels for
  // mobile layers between others of their kind, not the planar ones.
  bool blocked = false;
  bool known() const { return pixels > 0 && kernel > 0 && stride > 0 && channels > 0; }
};

// Achieved throughput of one op class at one op size (and, when measured on an
// op of known shape, that shape).
struct ThroughputPoint {
  ThroughputPoint(double flops_ = 0, double gflops_ = 0, OpGeometry shape_ = {})
      : flops(flops_), gflops(gflops_), shape(shape_) {}
  double flops = 0;   // size of the op, in FLOPs
  double gflops = 0;  // achieved GFLOP/s at that size
  OpGeometry shape;   // of the measured op; unknown for hand-written tables
};

struct OpClassProfile {
  // Sorted by flops. Looked up as follows: for an op of known shape, when
  // points of known shape exist, from the nearest ones in log space over
  // (flops, pixels, kernel area, stride, channels) — measured layers shaped
  // like the op — among the points of its layout (blocked or planar; a
  // blocked op of a profile without blocked points among the planar ones);
  // otherwise interpolated linearly in log(flops) over the planar points,
  // clamped at both ends.
  std::vector<ThroughputPoint> throughput;
  double bandwidth_gbs = 1;  // effective memory bandwidth, GB/s (1e9 B/s)
};

// Kernel parameters that calibration chose on the device by timing a few
// of each (issue 17's per-device tuning); the Vulkan lowering uses them in
// place of the device type's defaults, so the profile's throughput tables
// price the kernels that run. 0 (-1 for conv_fill): the device's default.
struct KernelShape {
  int conv_ocb = 0;              // a spatial convolution's register block: output channels
  int conv_opx = 0;              // ... and output columns per invocation
  int pointwise_ocb = 0;         // the same for 1x1 convolutions (GEMMs over the plane)
  int pointwise_opx = 0;
  std::int64_t conv_fill = -1;   // invocations a layer should launch before its input channels split (0: never)
  // 1x1 convolutions as GEMMs tiled through shared memory (pointwise_tiled),
  // in place of the register-blocked kernel.
  bool pointwise_tiled = false;
  // Tuned with a GPU's kernel shapes (a GPU, or VKFUSE_DEVICE_LIMITS'
  // gpu_kernels=1): applied only where the executor uses the same regime.
  bool gpu_kernels = false;
  bool tuned() const {
    return conv_ocb > 0 || conv_opx > 0 || pointwise_ocb > 0 || pointwise_opx > 0 || conv_fill >= 0 ||
           pointwise_tiled;
  }
  bool operator==(const KernelShape&) const = default;
};
// "conv block 8x4, 1x1 block 16x4, 1x1 tiled, conv fill 32768", "the device's defaults"
std::string describe(const KernelShape& s);

struct DeviceProfile {
  std::string name;
  std::string kind = "host";  // "host" or "vulkan"
  std::string uuid;           // device UUID (hex) — the calibration cache key
  std::string driver;         // driver version string
  std::string device_type;    // as `vkfuse devices` names it ("discrete-gpu", "cpu", ...); "" for the host
  std::string vkfuse_version;
  bool measured = false;           // false: built-in or hand-written defaults
  bool shares_host_cores = false;  // true: host and device work cannot overlap
  double dispatch_us = 0;          // per kernel launch (host: per op call)
  double submit_us = 0;            // per submission (one per dispatch unit)
  // Measured time of a synthetic multi-layer network over the sum of its
  // ops' single-op predictions: what running ops in sequence costs beyond
  // running each alone and hot (weights and activations no longer in cache,
  // thread-pool wake-ups). Every op's time is scaled by it. 1: unknown.
  double sequence_factor = 1;
  // Accelerators: a network's kernels with fp16 weights (`--fp16`) over the
  // same in fp32, measured; a model loaded with fp16 is planned with its
  // accelerator times scaled by it (for_fp16). 1: unknown or no fp16.
  double fp16_factor = 1;
  // The share of the machine's CPU time that other processes (and the
  // hypervisor) took while this profile was measured, 0..1; above
  // kBusyCalibrationShare its timings are likely too slow.
  double others_cpu_share = 0;
  KernelShape kernel_shape;  // accelerators: the tuned kernel parameters
  std::array<OpClassProfile, kOpClassCount> classes;

  OpClassProfile& op_class(OpClass c) { return classes[static_cast<std::size_t>(c)]; }
  const OpClassProfile& op_class(OpClass c) const { return classes[static_cast<std::size_t>(c)]; }
  // Achieved GFLOP/s of class c on an op of `flops` FLOPs (interpolated).
  double throughput_gflops(OpClass c, double flops, const OpGeometry& shape = {}) const;
  double bandwidth_gbs(OpClass c) const { return op_class(c).bandwidth_gbs; }
};

// `p` as a model with fp16 weights sees it: its throughputs and bandwidths
// divided by p.fp16_factor (the cost model's accelerator times scaled by it).
DeviceProfile for_fp16(DeviceProfile p);

// A calibration during which other processes took more of the CPUs than this
// is reported as disturbed (a core kept busy elsewhere made ResNet-18's host
// profile predict 36 ms for a 6.2 ms inference).
inline constexpr double kBusyCalibrationShare = 0.2;

// Built-in defaults (measured = false).
//   default_host_profile():     2-core Zen 4 host running Halide kernels on 2
//                               threads (docs: /work/shared/BASELINES.md).
//   default_lavapipe_profile(): Mesa lavapipe on that host: ≈7 GFLOP/s convs,
//                               ≈4 GB/s, ≈50 µs per submission, shares the cores.
//   default_accelerator_profile(type): by the Vulkan device type as
//                               `vkfuse devices` names it: "discrete-gpu" and
//                               "integrated-gpu" get conservative GPU numbers
//                               (today's kernels leave most of a GPU idle),
//                               anything else lavapipe's.
DeviceProfile default_host_profile();
DeviceProfile default_lavapipe_profile();
DeviceProfile default_accelerator_profile(std::string_view device_type);

// Throws vkfuse::Error(InvalidArgument) naming the missing or ill-typed field,
// e.g. "device profile: missing field 'op_classes.depthwise.bandwidth_gbs'".
DeviceProfile device_profile_from_json(std::string_view json_text);
std::string device_profile_to_json(const DeviceProfile& p);  // pretty, 2-space indent
// File variants: Error(Io) when the file cannot be read or written.
DeviceProfile load_device_profile(const std::string& path);
void save_device_profile(const DeviceProfile& p, const std::string& path);
// The calibration cache's file name for a device profile, from its key: the
// device UUID, driver version and vkfuse version, e.g.
// "vulkan-0011...eeff-mesa-22.3.6-vkfuse-0.1.0.json" (characters outside
// [A-Za-z0-9._-] become '_'). A profile whose key differs is stale.
std::string profile_cache_file_name(const DeviceProfile& p);
bool same_cache_key(const DeviceProfile& a, const DeviceProfile& b);

// Checks invariants (positive throughputs and bandwidths, sorted tables, known
// kind); throws Error(InvalidArgument) naming the profile and the field.
void validate(const DeviceProfile& p);

enum class Direction : std::uint8_t { host_to_device, device_to_host };

struct LinkProfile {
  std::string name;
  double h2d_mbps = 10000;     // host → device, MB/s (1e6 B/s)
  double d2h_mbps = 10000;     // device → host, MB/s
  double h2d_latency_us = 10;  // per transfer
  double d2h_latency_us = 10;
  bool emulated = true;  // false: measured on the real link

  // Predicted time of one transfer of `bytes` bytes: latency + bytes / bandwidth.
  double transfer_us(Direction d, double bytes) const;
  std::string describe() const;  // "edge: 40 MB/s up, 40 MB/s down, 1000 us latency (emulated)"
};

// Presets, modelled on the thesis' environments:
//   local  10 GB/s both ways, 10 µs latency: a fast local link (PCIe/shared memory).
//   edge   40 MB/s both ways, 1 ms latency: a bandwidth-constrained edge link
//          (USB 2.0 / Wi-Fi class, ≈320 Mbit/s) between a host and its accelerator.
// Custom: "bw=<MB/s>,lat=<us>" (both directions), optionally "up=<MB/s>",
// "down=<MB/s>" instead of bw. "measured" is resolved by the runtime, not here:
// link_from_spec rejects it with a message saying so.
LinkProfile local_link();
LinkProfile edge_link();
// The measured link's stand-in before calibration, by Vulkan device type: a
// discrete GPU's PCIe link; a device that shares the host's memory copies at
// memcpy speed.
LinkProfile default_link_profile(std::string_view device_type);
std::vector<std::string> link_preset_names();       // {"local", "edge"}
LinkProfile link_from_spec(std::string_view spec);  // Error(InvalidArgument) on a bad spec

LinkProfile link_profile_from_json(std::string_view json_text);
std::string link_profile_to_json(const LinkProfile& l);
// Profiles vkfuse writes carry a checksum of their contents, verified by the
// *_from_json readers (a mismatch is an error; a file without one, such as a
// hand-written what-if profile, is read as it is). Whether a profile's JSON
// carries one: cached profiles without are from an older vkfuse.
bool carries_checksum(std::string_view json_text);
LinkProfile load_link_profile(const std::string& path);
void save_link_profile(const LinkProfile& l, const std::string& path);

}  // namespace vkfuse::planner
