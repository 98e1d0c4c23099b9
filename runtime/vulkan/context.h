// runtime/vulkan/context.h — one Vulkan device and its queues, shared by the
// executors of a process that ask for the same device, on the process's one
// Vulkan instance.
//
// Verbs: create_buffer (device, device-mappable, staging), upload (direct
// into mapped memory or through a staging buffer), submit (to the compute or
// the transfer queue, with semaphores), submit_and_wait. The
// VkPipelineCache lives here and is persisted on disk, in the cache folder
// ($VKFUSE_CACHE_DIR, else $XDG_CACHE_HOME/vkfuse, else ~/.cache/vkfuse).
// With VKFUSE_VALIDATION=1 the instance enables VK_LAYER_KHRONOS_validation
// and a debug messenger that prints and counts every validation error;
// VKFUSE_VALIDATION=sync adds synchronization validation.
//
// Memory follows the device: device-local memory is mapped for direct
// access only where the device shares the host's memory (one heap that is
// both device-local and host-visible: integrated GPUs, lavapipe) or where a
// host-visible window of device memory (a discrete GPU's BAR, sized by
// VK_EXT_memory_budget where present) holds the buffer; otherwise buffers
// are device-local and every transfer goes through host staging buffers.
// VKFUSE_DEVICE_LIMITS narrows a device to a discrete GPU's limits, so that
// those paths run (and are tested) on lavapipe: see DeviceLimits.
#pragma once

#include "runtime/vulkan/loader.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "vkfuse/vkfuse.h"

namespace vkfuse::runtime::vulkan {

struct Buffer {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkDeviceSize size = 0;
  void* mapped = nullptr;  // non-null when host-visible and coherent: direct access
  bool host_cached = false;  // mapped memory the host reads at full speed (not a write-combined BAR)
  VkDeviceSize window_bytes = 0;  // taken from the host-visible window of device memory
};

// Limits imposed on top of the device's own (VKFUSE_DEVICE_LIMITS), to take
// on any device the paths a discrete GPU takes. The variable is a comma-
// separated list of key=value and the preset `discrete` (=
// host_visible_mib=256,texel_elements=65536,mapped_io=0,gpu_kernels=1):
//   host_visible_mib=N  device memory is host-visible only through an N MiB
//                       window (a discrete GPU's BAR without resizable BAR),
//                       which the host reads uncached: outputs are staged
//   texel_elements=N    maxTexelBufferElements at most N (the spec's
//                       minimum is 65536; older mobile GPUs are near it)
//   mapped_io=0         never map device-local memory: weights, inputs and
//                       outputs go through staging buffers and copies
//   gpu_kernels=1       the kernel shapes a GPU gets, on any device
//   subgroup_ops=0      no subgroup arithmetic (a device without it folds
//                       rows through shared memory alone)
//   storage_range_mib=N maxStorageBufferRange at most N MiB (the spec's
//                       minimum is 128): an arena larger than it is bound
//                       in windows, one per kernel operand; the kernels'
//                       weights are split at 128 MiB whatever the cap
//   arena_windows=1     kernel operands bound in windows even where the
//                       arena fits one storage buffer: the path a model
//                       with more activations takes, for every kernel
struct DeviceLimits {
  std::uint64_t host_visible_window = 0;  // bytes; 0: the device's own
  std::uint32_t max_texel_elements = 0;   // 0: the device's own
  std::uint64_t storage_range = 0;        // bytes; 0: the device's own
  bool arena_windows = false;
  bool mapped_io = true;
  // The kernel shapes a GPU gets (one workgroup per row of a reduction),
  // whatever the device; unset: a GPU gets them, a CPU device does not.
  bool gpu_kernels = false;
  bool subgroup_ops = true;  // false: as if the device had no subgroup arithmetic

  // Throws Error(InvalidArgument) naming the variable for a malformed value.
  static DeviceLimits parse(const std::string& spec);
  static DeviceLimits from_env();
  // The device's limits with these caps applied: what every reader of the
  // limits (the executor, the planner's device list) must see.
  void apply(VkPhysicalDeviceLimits& limits) const;
  bool any() const {
    return host_visible_window || max_texel_elements || storage_range || arena_windows || !mapped_io || gpu_kernels ||
           !subgroup_ops;
  }
  std::string describe() const;
};

// Compute runs on the compute queue; staging copies on the transfer queue,
// which is a separate transfer-only queue where the device has one (a
// discrete GPU's copy engines) and the compute queue otherwise.
enum class Queue { compute, transfer };

enum class Placement {
  Device,          // device-local; mapped as well where the device-local memory is host-visible
  DeviceMappable,  // prefer device-local and host-visible (UMA, lavapipe); else device-local
  Staging,         // host-visible, coherent: the host side of transfers
};

class Context {
 public:
  // The context for a device selector (see select_device), created on first
  // use and shared, one per physical device, while any executor holds it.
  // With "" a device that fails to initialise is skipped, with a note on
  // stderr, for the next best. Throws Error(Device) when there is no Vulkan
  // device or none initialises, Error(InvalidArgument) for a selector that
  // matches no device.
  static std::shared_ptr<Context> acquire(const std::string& selector);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  VkDevice device() const { return device_; }
  VkInstance instance() const { return instance_; }
  VkPhysicalDevice physical_device() const { return physical_; }
  const VkPhysicalDeviceProperties& properties() const { return props_; }
  std::uint32_t subgroup_size() const { return subgroup_size_; }
  // Subgroup arithmetic (subgroupAdd, ...) in compute shaders (Vulkan 1.1's
  // VkPhysicalDeviceSubgroupProperties; off under subgroup_ops=0).
  bool subgroup_arithmetic() const { return subgroup_arithmetic_; }
  std::uint32_t queue_family() const { return queue_family_; }
  std::uint32_t queue_family(Queue q) const { return q == Queue::transfer ? transfer_family_ : queue_family_; }
  bool separate_transfer_queue() const { return transfer_queue_ != queue_; }
  bool supports_fp16_storage() const { return fp16_storage_; }
  const std::string& name() const { return name_; }
  VkPipelineCache pipeline_cache() const { return pipeline_cache_; }
  const std::string& cache_dir() const { return cache_dir_; }
  const std::string& pipeline_cache_file() const { return cache_file_; }  // "" without a cache folder
  const DeviceLimits& imposed_limits() const { return imposed_; }
  // Whether device-local memory is the host's own (mapped I/O is free).
  bool unified_memory() const { return unified_; }

  // `what` names the contents in an out-of-memory error ("the activation
  // arena", "weights of kernel conv1").
  Buffer create_buffer(VkDeviceSize size, VkBufferUsageFlags usage, Placement placement, const std::string& what);
  void destroy_buffer(Buffer& b);
  // Copies bytes into dst at offset: a memcpy when dst is mapped, otherwise
  // through a temporary staging buffer and a transfer on the queue, which a
  // barrier orders before any later shader or transfer access.
  void upload(const Buffer& dst, VkDeviceSize offset, const void* data, VkDeviceSize size);
  // Records a one-shot command buffer with `record`, submits it and waits.
  void submit_and_wait(const std::function<void(VkCommandBuffer)>& record);
  // Submits a prerecorded command buffer and waits on `fence` (then resets it).
  void submit_and_wait(VkCommandBuffer cmd, VkFence fence);
  // The same in two halves: submit signalling `fence`, and later wait on it
  // (then reset it), so that the host can work in between.
  void submit(VkCommandBuffer cmd, VkFence fence);
  // Submits to `queue` after `waits` (binary semaphores, waited by all
  // commands), signalling `signal` and `fence` (either may be null).
  void submit(Queue queue, VkCommandBuffer cmd, std::span<const VkSemaphore> waits, VkSemaphore signal,
              VkFence fence);
  // Waits at most `timeout_ms` for `fence`, then resets it. Throws
  // Error(DeviceTimeout) when it does not signal in time, Error(DeviceLost)
  // for a lost device.
  void wait_and_reset(VkFence fence, std::uint64_t timeout_ms = kDefaultWaitMs);
  void save_pipeline_cache();

  // The most a wait blocks unless told otherwise: long enough for a driver
  // that compiles pipelines at their first dispatch (lavapipe) under a
  // sanitizer, short enough that a hung device is an error, not a hang.
  static constexpr std::uint64_t kDefaultWaitMs = 120'000;

  // Throws the error kind a failed call's result stands for (DeviceLost,
  // OutOfDeviceMemory, DeviceTimeout, else Device), naming the call. A lost
  // device or a timeout retires the context.
  void check(VkResult r, const char* what);
  // A retired context is not handed out again: the next acquire() of its
  // device creates a new one, while executors still holding this one finish
  // with it (destroying objects is valid on a lost device).
  bool retired() const { return retired_.load(); }
  // Retired by a timeout: the device may still be running work on any of
  // its objects, which are then left to it (leaked) rather than waited for
  // without end or destroyed under it.
  bool hung() const { return hung_.load(); }
  // Waits until the queues have finished all work submitted to them (under
  // the queue lock, as Vulkan requires); false when the device is lost.
  bool wait_idle();

 private:
  Context() = default;
  void init(int index);
  std::uint32_t memory_type(std::uint32_t bits, VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred,
                            VkMemoryPropertyFlags avoided, bool& found) const;
  bool window_holds(VkDeviceSize bytes, std::uint32_t heap) const;

  VkInstance instance_ = VK_NULL_HANDLE;  // the process's (process_instance), not the context's
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE, transfer_queue_ = VK_NULL_HANDLE;
  std::uint32_t queue_family_ = 0, transfer_family_ = 0;
  VkCommandPool pool_ = VK_NULL_HANDLE;  // for one-shot uploads
  VkFence fence_ = VK_NULL_HANDLE;
  VkPipelineCache pipeline_cache_ = VK_NULL_HANDLE;
  VkPhysicalDeviceProperties props_{};
  VkPhysicalDeviceMemoryProperties mem_{};
  DeviceLimits imposed_;
  bool unified_ = false;
  bool memory_budget_ = false;  // VK_EXT_memory_budget
  std::atomic<std::uint64_t> window_used_{0};
  std::uint32_t subgroup_size_ = 1;
  bool subgroup_arithmetic_ = false;
  bool fp16_storage_ = false;
  std::string name_;
  std::string cache_dir_;
  std::string cache_file_;
  std::mutex queue_mutex_;
  std::atomic<bool> retired_{false}, hung_{false};
};

// The process's Vulkan instance for a layer setting (validation, with
// synchronization validation), made at its first use and never destroyed;
// list_devices() and every context use it. With the last instance of a
// process gone the loader unloads the driver, and a driver loaded again into
// the same process may find no device: on an NVIDIA H200 every context after
// a few came and went said "no Vulkan device found". VK_NULL_HANDLE with
// `result` set when vkCreateInstance fails (tried again at the next call);
// throws Error(Device) when validation is asked for and its layer is missing.
VkInstance process_instance(bool validation, bool sync_validation, VkResult* result);

// Fault injection, for tests: the next `skip` calls at `site` run as usual,
// then `times` calls (-1: every one until clear_faults()) return `result`
// without calling the driver. A skipped wait leaves the work running; the
// executors' teardown waits for it.
enum class FaultSite { allocate, submit, wait };
// The error kind a failed call's result stands for (see Context::check).
ErrorKind error_kind_of(VkResult r);
void inject_fault(FaultSite site, VkResult result, int skip = 0, int times = 1);
void clear_faults();

// Device selection, the same for executors, calibration and the CLI: ""
// picks the best device of Vulkan 1.1 or later (discrete, then integrated,
// virtual, CPU); a number below 10^8 is an index as `vkfuse devices` lists
// it; otherwise a device UUID (32 hex digits), else a case-insensitive part of
// the name. Returns the index; throws Error(InvalidArgument) for a selector
// that matches nothing, Error(Device) when there is no device.
int select_device(const std::vector<DeviceInfo>& devices, const std::string& selector);
// Usable devices (Vulkan 1.1+) in the order "" tries them.
std::vector<int> device_preference(const std::vector<DeviceInfo>& devices);

// Validation errors reported by the debug messenger since the process
// started (always 0 without VKFUSE_VALIDATION=1).
std::int64_t validation_error_count();
// Whether VKFUSE_VALIDATION is set to 1 or sync (the layer will be requested).
bool validation_requested();
// Whether VKFUSE_VALIDATION=sync (synchronization validation as well).
bool sync_validation_requested();
// The folder for vkfuse's on-disk caches (may not exist yet).
std::string default_cache_dir();

}  // namespace vkfuse::runtime::vulkan
