// runtime/calibration.h — measuring the device and link profiles the planner
// plans with (`vkfuse calibrate`), and caching them on disk keyed by device
// UUID, driver version and vkfuse version.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "planner/profile.h"
#include "runtime/executor.h"

namespace vkfuse::runtime {

using Progress = std::function<void(const std::string& line)>;

// The cache folder: $VKFUSE_CACHE_DIR, else $XDG_CACHE_HOME/vkfuse, else
// ~/.cache/vkfuse (created on demand).
std::string cache_dir();

// Identity of the host and of the accelerator the Vulkan executor would pick
// for `options.device` (name, kind, uuid, driver, vkfuse version; no
// measurements). The accelerator's is empty when there is no Vulkan device.
planner::DeviceProfile host_identity();
std::optional<planner::DeviceProfile> accelerator_identity(const ExecutorOptions& options);

// The share of the machine's CPU time (all CPUs, 0..1) that other processes
// and the hypervisor (steal time) took since construction: from /proc/stat
// less this process's own CPU time. 0 where /proc/stat cannot be read.
class OtherCpuUse {
 public:
  OtherCpuUse();
  double share() const;

 private:
  struct Sample {
    bool ok = false;
    double wall_s = 0, busy_s = 0, self_s = 0;
    int cpus = 1;
  };
  static Sample sample();
  Sample start_;
};

// Micro-benchmarks per op class (a few sizes each), per-dispatch and
// per-submission overhead, and for the link: copies of several sizes both ways.
planner::DeviceProfile calibrate_host(const ExecutorOptions& options, const Progress& progress);
planner::DeviceProfile calibrate_accelerator(const ExecutorOptions& options, const Progress& progress);
planner::LinkProfile calibrate_link(const ExecutorOptions& options, const Progress& progress);

// What the planner plans with: measured profiles from the cache when they
// match the present devices (calibrating and saving them first when
// `calibrate_if_missing`), else the built-in defaults, labelled as such.
// For a plan on the host alone (`Uses::host`) the Vulkan devices are not
// looked at: loading a Vulkan driver (lavapipe brings LLVM) takes longer
// than loading a small model; the accelerator's and link's are defaults.
struct PlanningProfiles {
  planner::DeviceProfile host, accel;
  planner::LinkProfile measured_link;
  bool measured = false;  // the profiles used (all three, or the host's) measured on the devices present
  // The largest tensor the accelerator present can bind (DeviceInfo); 0:
  // none present or not looked at. What-if profiles are other devices':
  // plans run here.
  std::uint64_t max_tensor_bytes = 0;
};
enum class Uses { host, host_and_accelerator };
PlanningProfiles planning_profiles(const ExecutorOptions& options, Uses uses, bool calibrate_if_missing,
                                   const Progress& progress);

}  // namespace vkfuse::runtime
