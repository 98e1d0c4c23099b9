// The `gpu` strategy: the whole graph on one Vulkan device. See vulkan_executor.h.
#include "runtime/vulkan/vulkan_executor.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "codegen/spirv/compiler.h"
#include "codegen/spirv/lowering.h"
#include "graph/ops.h"
#include "runtime/vulkan/context.h"

namespace vkfuse::runtime {

namespace vulkan {

namespace {
// The warm-up's allowance for a driver that compiles each pipeline at its
// first dispatch, per pipeline, beyond the device timeout.
constexpr std::uint64_t kWarmupMsPerPipeline = 10'000;
// How long a submission may take (LoadOptions::device_timeout_ms, or the default).
std::uint64_t device_timeout(const ExecutorOptions& options) {
  return options.device_timeout_ms ? options.device_timeout_ms : Context::kDefaultWaitMs;
}

using codegen::spirv::Kernel;
using codegen::spirv::Program;
using codegen::spirv::Slot;
using graph::ValueId;

constexpr std::int64_t kAlign = 64;  // floats (256 bytes): arena and weight sub-allocations
constexpr int kSlots = 8;

void check(VkResult r, const char* what) {
  if (r != VK_SUCCESS)
    throw Error(error_kind_of(r), std::string(what) + " failed (VkResult " + std::to_string(static_cast<int>(r)) + ")");
}

std::int64_t align_up(std::int64_t v, std::int64_t a) { return (v + a - 1) / a * a; }

// IEEE binary16 of a float, rounded to nearest even (overflow to infinity).
std::uint16_t to_half(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t mant = x & 0x7fffffu;
  const int exp = static_cast<int>((x >> 23) & 0xff);
  if (exp == 0xff) return static_cast<std::uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const int e = exp - 127 + 15;
  if (e >= 0x1f) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<std::uint16_t>(sign);
    const std::uint32_t m = mant | 0x800000u;
    const int shift = 14 - e;
    std::uint32_t h = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  std::uint32_t h = (static_cast<std::uint32_t>(e) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: still correct
  return static_cast<std::uint16_t>(sign | h);
}

// Floats of weight-buffer space a kernel's weights occupy.
std::int64_t weight_slots(const Kernel& k) {
  const auto n = static_cast<std::int64_t>(k.weights.size());
  return k.fp16_weights ? (n + 1) / 2 : n;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Liveness-based placement: roots that are alive at the same time never
// overlap. Greedy by size, first fit. Returns the arena size in floats.
struct Interval {
  std::int64_t first = 0, last = -1, size = 0, offset = -1;
};

std::int64_t place(std::vector<Interval>& items) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < items.size(); ++i)
    if (items[i].size > 0) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return items[a].size > items[b].size; });
  std::vector<std::size_t> placed;
  std::int64_t total = 0;
  for (std::size_t i : order) {
    Interval& it = items[i];
    std::vector<std::pair<std::int64_t, std::int64_t>> busy;  // [begin, end) in floats
    for (std::size_t j : placed) {
      const Interval& o = items[j];
      if (o.first <= it.last && it.first <= o.last) busy.emplace_back(o.offset, o.offset + o.size);
    }
    std::sort(busy.begin(), busy.end());
    std::int64_t at = 0;
    for (auto [b, e] : busy) {
      if (at + it.size <= b) break;
      at = std::max(at, align_up(e, kAlign));
    }
    it.offset = at;
    total = std::max(total, at + it.size);
    placed.push_back(i);
  }
  return total;
}

}  // namespace

// The loaded part of a graph on the device: its kernels, memory plan, the
// weights on the device, the pipelines and each unit's dispatches. The
// executors of a model's pipeline slots share it; each has its own arena,
// staging buffers, descriptor sets and command buffers.
struct DeviceProgram {
  std::shared_ptr<Context> ctx;
  Program program;

  struct IO {
    std::int64_t offset = 0, count = 0;  // arena floats; offset -1: a constant output
    std::int64_t staging = 0;            // staging offset, floats
    std::vector<float> constant_data;    // an output that is a constant
  };
  std::vector<IO> inputs, outputs;
  std::int64_t arena_floats = 0, staged_in = 0, staged_out = 0;
  std::vector<std::pair<std::int64_t, std::vector<float>>> arena_constants;  // arena offset, data

  struct Unit {
    std::vector<std::size_t> inputs, outputs;  // indices into inputs / outputs
    std::size_t first_dispatch = 0, end_dispatch = 0;
  };
  std::vector<Unit> units;
  std::int64_t barriers = 0;  // recorded between dispatches (all units)

  std::vector<Buffer> weight_blocks;
  std::vector<VkBufferView> weight_views, half_views;  // per block: RGBA32F and RGBA16F (or the RGBA32F again)
  std::vector<VkBufferView> views;                     // all of them, once
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout pipeline_layout = VK_NULL_HANDLE;
  std::map<std::string, VkPipeline> pipelines;  // by source hash
  std::vector<VkShaderModule> modules;

  // What a kernel binds (one descriptor set each, in every executor): its
  // weight block, and for each operand slot the start (floats) of the
  // window of the arena that slot k's ARENA(k) is. Windowed (an arena larger
  // than one storage buffer can address, or VKFUSE_DEVICE_LIMITS'
  // arena_windows=1), each window holds its operand's allocation and spans
  // window_floats or up to the arena's end; otherwise every slot is the
  // whole arena and there is one binding per weight block.
  struct Binding {
    std::size_t block = 0;
    std::array<std::int64_t, kSlots> base{};
    bool operator==(const Binding&) const = default;
  };
  std::vector<Binding> bindings;
  bool windowed = false;
  std::int64_t window_floats = 0;

  struct Dispatch {
    VkPipeline pipeline = VK_NULL_HANDLE;
    std::size_t binding = 0;  // index into bindings
    std::uint32_t push[kSlots + codegen::spirv::kDimWords] = {};  // o0..o7, then the sizes d[]
    std::uint32_t gx = 1, gy = 1;
    // Arena ranges [begin, end) in floats that it reads and writes: a
    // barrier goes before it only where it depends on an earlier dispatch.
    std::vector<std::pair<std::int64_t, std::int64_t>> reads, writes;
    bool barrier_before = false;
  };
  std::vector<Dispatch> dispatches;
  LoadInfo load;        // what loading it took (the executors add their own part)
  ExecutorStats stats;  // per run

  ~DeviceProgram() {
    // The executors that used it are gone and have waited for their work,
    // unless the device hung: then it is all left to the driver.
    if (!ctx || ctx->hung()) return;
    VkDevice d = ctx->device();
    for (auto& [h, p] : pipelines) vkDestroyPipeline(d, p, nullptr);
    for (VkShaderModule m : modules) vkDestroyShaderModule(d, m, nullptr);
    for (VkBufferView v : views) vkDestroyBufferView(d, v, nullptr);
    if (pipeline_layout) vkDestroyPipelineLayout(d, pipeline_layout, nullptr);
    if (set_layout) vkDestroyDescriptorSetLayout(d, set_layout, nullptr);
    for (Buffer& b : weight_blocks) ctx->destroy_buffer(b);
  }
  void place_barriers();
};

// One executor's state over a shared DeviceProgram.
struct VulkanExecutor::Impl {
  std::shared_ptr<const DeviceProgram> prog;
  std::shared_ptr<Context> ctx;
  ExecutorOptions options;  // the on_transfer hook

  // Up to three submissions each: its uploads (staging → arena, on the
  // transfer queue), its dispatches (compute queue), its downloads (arena →
  // staging, transfer queue), chained by semaphores. The fence signals when
  // the unit's last submission is done. The next unit's dispatches wait for
  // this unit's downloads (the arena ranges they read may be reused).
  struct Unit {
    const DeviceProgram::Unit* plan = nullptr;
    VkCommandBuffer upload_cmd = VK_NULL_HANDLE, cmd = VK_NULL_HANDLE, download_cmd = VK_NULL_HANDLE;
    VkSemaphore uploaded = VK_NULL_HANDLE, computed = VK_NULL_HANDLE, downloaded = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    bool in_flight = false;
  };
  std::vector<Unit> units;
  std::vector<float*> pending_outputs;  // whole-graph start() → finish()

  Buffer arena, staging_in, staging_out;
  // The arena is host-mapped: inputs are written into it without staging
  // copies; outputs are read from it only where the host reads it cached
  // (not through a discrete GPU's write-combined BAR).
  bool mapped_in = false, mapped_out = false;
  VkBufferView arena_view = VK_NULL_HANDLE;
  VkDescriptorPool descriptor_pool = VK_NULL_HANDLE;
  std::vector<VkDescriptorSet> sets;  // one per DeviceProgram::bindings entry
  VkCommandPool pool = VK_NULL_HANDLE, transfer_pool = VK_NULL_HANDLE;

  ~Impl() {
    // Never free what the device may still use: a hung device keeps it all;
    // otherwise the queues are drained first (not vkDeviceWaitIdle, which
    // would race with other executors' submissions to the same queues).
    if (!ctx || ctx->hung()) return;
    VkDevice d = ctx->device();
    ctx->wait_idle();
    for (Unit& u : units) {
      if (u.fence) vkDestroyFence(d, u.fence, nullptr);
      for (VkSemaphore sem : {u.uploaded, u.computed, u.downloaded})
        if (sem) vkDestroySemaphore(d, sem, nullptr);
    }
    if (pool) vkDestroyCommandPool(d, pool, nullptr);
    if (transfer_pool) vkDestroyCommandPool(d, transfer_pool, nullptr);
    if (descriptor_pool) vkDestroyDescriptorPool(d, descriptor_pool, nullptr);
    if (arena_view) vkDestroyBufferView(d, arena_view, nullptr);
    ctx->destroy_buffer(arena);
    ctx->destroy_buffer(staging_in);
    ctx->destroy_buffer(staging_out);
  }

  // The three parts of a unit, each into an open command buffer; with
  // `timestamps`, one after each dispatch.
  bool has_uploads(const Unit& u) const;
  bool has_downloads(const Unit& u) const;
  void record_uploads(VkCommandBuffer c, const Unit& u);
  void record_dispatches(VkCommandBuffer c, const Unit& u, VkQueryPool timestamps, int repeats = 1);
  void record_downloads(VkCommandBuffer c, const Unit& u);
  void upload_unit(std::size_t u, std::span<const float* const> in);
  void submit_unit(std::size_t u);
  void finish_unit(std::size_t u, std::span<float* const> out);
};

void DeviceProgram::place_barriers() {
  using Range = std::pair<std::int64_t, std::int64_t>;
  std::vector<Range> written, read;  // since the last barrier
  auto overlaps = [](const std::vector<Range>& a, const std::vector<Range>& b) {
    for (const Range& x : a)
      for (const Range& y : b)
        if (x.first < y.second && y.first < x.second) return true;
    return false;
  };
  // Synchronization validation checks a descriptor's whole range (here the
  // whole arena), not what a shader reads: independent dispatches without a
  // barrier between them would be reported as hazards. Under it, a barrier
  // goes before every dispatch, and the layer checks the rest (staging
  // copies, host access, one submission against the next).
  const bool every_dispatch = sync_validation_requested();
  barriers = 0;
  for (const Unit& u : units) {
    written.clear();  // each unit begins with a full barrier
    read.clear();
    for (std::size_t i = u.first_dispatch; i < u.end_dispatch; ++i) {
      Dispatch& d = dispatches[i];
      d.barrier_before = every_dispatch || overlaps(d.reads, written) || overlaps(d.writes, written) ||
                         overlaps(d.writes, read);
      if (d.barrier_before) {
        ++barriers;
        written.clear();
        read.clear();
      }
      written.insert(written.end(), d.writes.begin(), d.writes.end());
      read.insert(read.end(), d.reads.begin(), d.reads.end());
    }
  }
}

namespace {

void begin(VkCommandBuffer c) {
  VkCommandBufferBeginInfo info{};
  info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  check(vkBeginCommandBuffer(c, &info), "vkBeginCommandBuffer");
}

// Says `line` through `progress` once, if the step it spans (its lifetime)
// lasts more than two seconds.
class LateProgressLine {
 public:
  LateProgressLine(const std::function<void(const std::string&)>& progress, std::string line) {
    if (!progress) return;
    thread_ = std::thread([this, &progress, line = std::move(line)] {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::seconds(2), [&] { return done_; })) progress(line);
    });
  }
  ~LateProgressLine() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  LateProgressLine(const LateProgressLine&) = delete;
  LateProgressLine& operator=(const LateProgressLine&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

void memory_barrier(VkCommandBuffer c, VkPipelineStageFlags src, VkAccessFlags src_access, VkPipelineStageFlags dst,
                    VkAccessFlags dst_access) {
  VkMemoryBarrier mb{};
  mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  mb.srcAccessMask = src_access;
  mb.dstAccessMask = dst_access;
  vkCmdPipelineBarrier(c, src, dst, 0, 1, &mb, 0, nullptr, 0, nullptr);
}

}  // namespace

bool VulkanExecutor::Impl::has_uploads(const Unit& u) const {
  if (mapped_in) return false;
  for (std::size_t i : u.plan->inputs)
    if (prog->inputs[i].count) return true;
  return false;
}

bool VulkanExecutor::Impl::has_downloads(const Unit& u) const {
  if (mapped_out) return false;
  for (std::size_t j : u.plan->outputs)
    if (prog->outputs[j].count && prog->outputs[j].offset >= 0) return true;
  return false;
}

void VulkanExecutor::Impl::record_uploads(VkCommandBuffer c, const Unit& u) {
  std::vector<VkBufferCopy> regions;
  for (std::size_t i : u.plan->inputs) {
    const DeviceProgram::IO& io = prog->inputs[i];
    if (io.count) regions.push_back({static_cast<VkDeviceSize>(io.staging * 4), static_cast<VkDeviceSize>(io.offset * 4),
                                     static_cast<VkDeviceSize>(io.count * 4)});
  }
  if (!regions.empty())
    vkCmdCopyBuffer(c, staging_in.buffer, arena.buffer, static_cast<std::uint32_t>(regions.size()), regions.data());
  memory_barrier(c, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT);
}

void VulkanExecutor::Impl::record_dispatches(VkCommandBuffer c, const Unit& u, VkQueryPool timestamps,
                                             int repeats) {
  // Earlier submissions (earlier units, the previous run, uploads) wrote and
  // read the arena: order this unit's work after theirs.
  memory_barrier(c, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                     VK_ACCESS_TRANSFER_WRITE_BIT);
  VkPipeline bound = VK_NULL_HANDLE;
  std::size_t bound_set = SIZE_MAX;
  const VkPipelineLayout pipeline_layout = prog->pipeline_layout;
  const auto after_last_dispatch = [c] {
    memory_barrier(c, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
  };
  for (std::size_t i = u.plan->first_dispatch; i < u.plan->end_dispatch; ++i) {
    const DeviceProgram::Dispatch& d = prog->dispatches[i];
    if (d.barrier_before) after_last_dispatch();
    if (d.pipeline != bound) {
      vkCmdBindPipeline(c, VK_PIPELINE_BIND_POINT_COMPUTE, d.pipeline);
      bound = d.pipeline;
    }
    if (d.binding != bound_set) {
      vkCmdBindDescriptorSets(c, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline_layout, 0, 1, &sets[d.binding], 0, nullptr);
      bound_set = d.binding;
    }
    vkCmdPushConstants(c, pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof d.push, d.push);
    vkCmdDispatch(c, d.gx, d.gy, 1);
    for (int r = 1; r < repeats; ++r) {  // profiling: the same kernel again, after the last one
      after_last_dispatch();
      vkCmdDispatch(c, d.gx, d.gy, 1);
    }
    if (timestamps)
      vkCmdWriteTimestamp(c, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, timestamps, static_cast<std::uint32_t>(i + 1));
  }
  // Before the downloads (a copy) or, with mapped I/O, the host's reads.
  memory_barrier(c, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                 VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                 VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_HOST_READ_BIT);
}

void VulkanExecutor::Impl::record_downloads(VkCommandBuffer c, const Unit& u) {
  std::vector<VkBufferCopy> regions;
  for (std::size_t j : u.plan->outputs) {
    const DeviceProgram::IO& io = prog->outputs[j];
    if (io.count && io.offset >= 0)
      regions.push_back({static_cast<VkDeviceSize>(io.offset * 4), static_cast<VkDeviceSize>(io.staging * 4),
                         static_cast<VkDeviceSize>(io.count * 4)});
  }
  if (!regions.empty())
    vkCmdCopyBuffer(c, arena.buffer, staging_out.buffer, static_cast<std::uint32_t>(regions.size()), regions.data());
  memory_barrier(c, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_HOST_BIT,
                 VK_ACCESS_HOST_READ_BIT);
}

std::shared_ptr<const DeviceProgram> VulkanExecutor::load(const graph::Graph& graph, const ExecutorOptions& options,
                                                          std::span<const int> unit_of) {
  auto loaded = std::make_shared<DeviceProgram>();
  DeviceProgram& m = *loaded;
  LoadInfo& load_ = m.load;
  ExecutorStats& stats_ = m.stats;
  // Units: consecutive runs of nodes (each unit's nodes contiguous, in
  // execution order); none given: the whole graph is one unit.
  int unit_count = 0;
  const std::vector<int> node_unit = contiguous_groups(unit_of, graph.nodes.size(), "VulkanExecutor units", unit_count);
  m.units.resize(static_cast<std::size_t>(unit_count));
  m.ctx = Context::acquire(options.device);
  Context& ctx = *m.ctx;
  VkDevice dev = ctx.device();
  const VkPhysicalDeviceLimits& limits = ctx.properties().limits;

  // ---- lower the graph to kernels
  auto t0 = std::chrono::steady_clock::now();
  codegen::spirv::DeviceCaps caps;
  bool rgba16_texel = false;
  {
    // 64 invocations (or one subgroup if larger), within the device's limits.
    // VKFUSE_WORKGROUP=N (a power of two) is a tuning knob, as
    // VKFUSE_CONV_BLOCK is for the convolution's register block: the
    // real-GPU check times a few of each (tools/gpu-check.sh).
    std::uint32_t wg = std::max<std::uint32_t>(64, ctx.subgroup_size());
    if (const char* e = std::getenv("VKFUSE_WORKGROUP"); e && *e) {
      const unsigned long n = std::strtoul(e, nullptr, 10);
      if (n >= 1 && n <= 1024 && (n & (n - 1)) == 0) wg = static_cast<std::uint32_t>(n);
    }
    wg = std::min({wg, limits.maxComputeWorkGroupInvocations, limits.maxComputeWorkGroupSize[0]});
    caps.workgroup_size = wg;
    caps.max_groups_x = std::min<std::uint32_t>(limits.maxComputeWorkGroupCount[0], 65535);
    caps.subgroup_size = ctx.subgroup_size();
    const bool gpu = ctx.properties().deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU || ctx.imposed_limits().gpu_kernels;
    load_.gpu_kernels = gpu;
    caps.row_groups = (wg & (wg - 1)) == 0 && gpu;
    caps.subgroup_fold = caps.row_groups && ctx.subgroup_arithmetic();
    caps.shared_memory_bytes = limits.maxComputeSharedMemorySize;
    if (gpu) {
      // A GPU's convolution shape (codegen::spirv::DeviceCaps): 8x4 register
      // blocks (4x4 over 9 taps), and layers under 32768 output tiles split
      // over input channels (about a quarter of an H200's resident threads;
      // VKFUSE_CONV_FILL=N is the tuning knob, 0 to never split).
      caps.conv_ocb = 8;
      caps.conv_ocb_wide = 4;
      caps.conv_opx = 4;
      caps.conv_fill_invocations = caps.row_groups ? 32768 : 0;
    }
    // What calibration tuned on this device, where it tuned the kernels this
    // executor uses (a CPU device's shapes are not a GPU's); before the
    // knobs, which are for experiments and win.
    if (const planner::KernelShape& tuned = options.kernel_shape; tuned.gpu_kernels == gpu) {
      if (tuned.conv_ocb > 0) caps.conv_ocb = static_cast<std::uint32_t>(tuned.conv_ocb);
      if (tuned.conv_opx > 0) caps.conv_opx = static_cast<std::uint32_t>(tuned.conv_opx);
      if (tuned.pointwise_ocb > 0) caps.pointwise_ocb = static_cast<std::uint32_t>(tuned.pointwise_ocb);
      if (tuned.pointwise_opx > 0) caps.pointwise_opx = static_cast<std::uint32_t>(tuned.pointwise_opx);
      if (tuned.conv_fill >= 0 && caps.row_groups) caps.conv_fill_invocations = tuned.conv_fill;
      caps.pointwise_tiled = tuned.pointwise_tiled;
      if (tuned.tuned()) load_.tuned_kernels = planner::describe(tuned);
    }
    if (const char* e = std::getenv("VKFUSE_CONV_TILED"); e && *e) caps.pointwise_tiled = std::string(e) == "1";
    if (const char* e = std::getenv("VKFUSE_CONV_FILL"); e && *e && caps.row_groups)
      caps.conv_fill_invocations = std::max(0L, std::strtol(e, nullptr, 10));
    VkFormatProperties r32{}, rgba32{}, rgba16{};
    vkGetPhysicalDeviceFormatProperties(ctx.physical_device(), VK_FORMAT_R16G16B16A16_SFLOAT, &rgba16);
    rgba16_texel = rgba16.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT;
    caps.fp16 = options.fp16 && ctx.supports_fp16_storage() && rgba16_texel;
    vkGetPhysicalDeviceFormatProperties(ctx.physical_device(), VK_FORMAT_R32_SFLOAT, &r32);
    vkGetPhysicalDeviceFormatProperties(ctx.physical_device(), VK_FORMAT_R32G32B32A32_SFLOAT, &rgba32);
    const char* env = std::getenv("VKFUSE_TEXEL_LOADS");
    const bool texel_off = env && std::string(env) == "0";
    caps.texel_arena = (r32.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) && !texel_off;
    caps.texel_weights = (rgba32.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) && !texel_off;
  }
  for (ValueId v : graph.inputs)
    if (graph.value(v).dtype != graph::DType::f32)
      throw Error(ErrorKind::Unsupported, "input '" + graph.value(v).name + "' is not float32");
  for (ValueId v : graph.outputs)
    if (graph.value(v).dtype != graph::DType::f32)
      throw Error(ErrorKind::Unsupported, "output '" + graph.value(v).name + "' is not float32");
  m.program = codegen::spirv::lower_graph(graph, caps, node_unit);
  const Program& prog = m.program;  // (re-lowered below with fewer texel loads, in place)
  load_.lower_ms = ms_since(t0);
  load_.fused_adds = prog.fused_adds;
  for (const Kernel& k : prog.kernels) load_.subgroup_folds += k.subgroup_fold ? 1 : 0;
  load_.aliased_concat_inputs = prog.aliased_concat_inputs;

  // ---- arena planning: one interval per root value
  const std::size_t nv = graph.values.size();
  const auto K = static_cast<std::int64_t>(prog.kernels.size());
  std::vector<Interval> roots(nv);
  auto touch = [&](ValueId v, std::int64_t at) {
    Interval& r = roots[static_cast<std::size_t>(prog.root[static_cast<std::size_t>(v)])];
    if (r.last < r.first) {
      r.first = r.last = at;
    } else {
      r.first = std::min(r.first, at);
      r.last = std::max(r.last, at);
    }
  };
  for (ValueId v : prog.arena_constants) {
    touch(v, -1);
    touch(v, K);
  }
  for (ValueId v : graph.inputs) touch(v, -1);
  for (std::int64_t i = 0; i < K; ++i)
    for (const Slot& s : prog.kernels[static_cast<std::size_t>(i)].slots)
      if (s.kind != Slot::Kind::Weights) touch(s.value, i);
  for (ValueId v : graph.outputs)
    if (!graph.is_constant(v)) touch(v, K);
  for (std::size_t v = 0; v < nv; ++v)
    if (roots[v].last >= roots[v].first && roots[v].size == 0)
      roots[v].size = align_up(std::max<std::int64_t>(1, graph::element_count(graph.values[v].shape)), 4);
  const std::int64_t arena_floats = align_up(std::max<std::int64_t>(place(roots), kAlign), kAlign);
  // An arena beyond maxStorageBufferRange is bound to kernels in windows,
  // one per operand (see below), which the texel views are not.
  const auto storage_floats = static_cast<std::int64_t>(limits.maxStorageBufferRange / 4);
  m.windowed = arena_floats > storage_floats || ctx.imposed_limits().arena_windows;
  // Texel views reach maxTexelBufferElements texels: the arena as R32F, a
  // weight block as RGBA32F and RGBA16F (2 floats a texel). Beyond that,
  // plain storage-buffer loads, for the arena and the weights apart (a
  // windowed arena keeps the weights' texel loads, and so fp16 weights).
  const std::int64_t texel_reach = static_cast<std::int64_t>(limits.maxTexelBufferElements);
  {
    const bool arena_fits = arena_floats <= texel_reach && !m.windowed;
    bool weights_fit = true;
    for (const Kernel& k : prog.kernels) weights_fit = weights_fit && weight_slots(k) <= 2 * texel_reach;
    if ((caps.texel_arena && !arena_fits) || (caps.texel_weights && !weights_fit)) {
      caps.texel_arena = caps.texel_arena && arena_fits;
      caps.texel_weights = caps.texel_weights && weights_fit;
      m.program = codegen::spirv::lower_graph(graph, caps, node_unit);
    }
  }
  if (arena_floats > static_cast<std::int64_t>(UINT32_MAX))
    throw Error(ErrorKind::Unsupported, "the activation arena is too large for 32-bit offsets");
  std::vector<std::int64_t> offset(nv, -1);  // arena element offset of each value (-1: none)
  for (std::size_t v = 0; v < nv; ++v) {
    const Interval& r = roots[static_cast<std::size_t>(prog.root[v])];
    if (r.offset >= 0) offset[v] = r.offset + prog.root_offset[v];
  }
  load_.arena_bytes = arena_floats * 4;
  m.arena_floats = arena_floats;

  // ---- weights: sub-allocated from blocks of at most maxStorageBufferRange
  t0 = std::chrono::steady_clock::now();
  std::int64_t block_cap =
      std::min<std::int64_t>(static_cast<std::int64_t>(limits.maxStorageBufferRange) / 4, std::int64_t{64} << 20);
  if (caps.texel_weights) block_cap = std::min(block_cap, 2 * texel_reach);
  std::vector<std::int64_t> block_of(static_cast<std::size_t>(K), 0), weight_offset(static_cast<std::size_t>(K), 0);
  std::vector<std::int64_t> block_size{0};
  for (std::int64_t i = 0; i < K; ++i) {
    const std::int64_t n = weight_slots(prog.kernels[static_cast<std::size_t>(i)]);
    if (n == 0) continue;
    if (n > block_cap)
      throw Error(ErrorKind::Unsupported, "kernel '" + prog.kernels[static_cast<std::size_t>(i)].nodes +
                                              "' has more weights than one storage buffer can address");
    if (align_up(block_size.back(), kAlign) + n > block_cap) block_size.push_back(0);
    const std::int64_t at = align_up(block_size.back(), kAlign);
    block_of[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(block_size.size() - 1);
    weight_offset[static_cast<std::size_t>(i)] = at;
    block_size.back() = at + n;
  }
  for (std::int64_t size : block_size) {
    m.weight_blocks.push_back(
        ctx.create_buffer(static_cast<VkDeviceSize>(align_up(std::max<std::int64_t>(size, kAlign), kAlign) * 4),
                          VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT,
                          Placement::Device, "weight block " + std::to_string(m.weight_blocks.size())));
    load_.weight_bytes += size * 4;
  }
  for (std::size_t b = 0; b < block_size.size(); ++b) {
    // Upload a whole block at once (one staging transfer where needed).
    std::vector<float> host(static_cast<std::size_t>(block_size[b]));
    for (std::int64_t i = 0; i < K; ++i) {
      const Kernel& k = prog.kernels[static_cast<std::size_t>(i)];
      if (k.weights.empty() || block_of[static_cast<std::size_t>(i)] != static_cast<std::int64_t>(b)) continue;
      float* dst = host.data() + weight_offset[static_cast<std::size_t>(i)];
      if (k.fp16_weights) {
        std::vector<std::uint16_t> halves(static_cast<std::size_t>(weight_slots(k) * 2), 0);
        for (std::size_t j = 0; j < k.weights.size(); ++j) halves[j] = to_half(k.weights[j]);
        std::memcpy(dst, halves.data(), halves.size() * 2);
      } else {
        std::copy(k.weights.begin(), k.weights.end(), dst);
      }
    }
    ctx.upload(m.weight_blocks[b], 0, host.data(), host.size() * 4);
  }

  // ---- arena, I/O
  load_.texel_arena = caps.texel_arena;
  load_.texel_weights = caps.texel_weights;
  for (ValueId v : prog.arena_constants) {
    const graph::Tensor& t = *graph.value(v).constant;
    m.arena_constants.emplace_back(offset[static_cast<std::size_t>(v)], std::vector<float>(t.f32(), t.f32() + t.numel()));
  }
  // Each input is uploaded by the first unit that reads it (never, when no
  // node reads it); each output is downloaded by the unit that produces it.
  std::vector<int> first_reader(nv, -1), producer_unit(nv, unit_count - 1);
  for (std::size_t i = graph.nodes.size(); i-- > 0;) {
    for (ValueId v : graph.nodes[i].inputs)
      if (v != graph::kNoValue) first_reader[static_cast<std::size_t>(v)] = node_unit[i];
    for (ValueId v : graph.nodes[i].outputs)
      if (v != graph::kNoValue) producer_unit[static_cast<std::size_t>(v)] = node_unit[i];
  }
  std::int64_t staged_in = 0, staged_out = 0;
  for (ValueId v : graph.inputs) {
    DeviceProgram::IO io;
    io.count = graph::element_count(graph.value(v).shape);
    io.offset = offset[static_cast<std::size_t>(v)];
    io.staging = staged_in;
    staged_in = align_up(staged_in + io.count, kAlign);
    if (const int u = first_reader[static_cast<std::size_t>(v)]; u >= 0) {
      m.units[static_cast<std::size_t>(u)].inputs.push_back(m.inputs.size());
      stats_.bytes_uploaded += io.count * 4;
    }
    m.inputs.push_back(io);
  }
  for (ValueId v : graph.outputs) {
    DeviceProgram::IO io;
    io.count = graph::element_count(graph.value(v).shape);
    if (graph.is_constant(v)) {
      const graph::Tensor& t = *graph.value(v).constant;
      io.constant_data.assign(t.f32(), t.f32() + io.count);
      io.offset = -1;
    } else {
      io.offset = offset[static_cast<std::size_t>(v)];
      io.staging = staged_out;
      staged_out = align_up(staged_out + io.count, kAlign);
      stats_.bytes_downloaded += io.count * 4;
    }
    m.units[static_cast<std::size_t>(producer_unit[static_cast<std::size_t>(v)])].outputs.push_back(m.outputs.size());
    m.outputs.push_back(std::move(io));
  }
  m.staged_in = staged_in;
  m.staged_out = staged_out;
  load_.upload_ms = ms_since(t0);

  // ---- texel views: each weight block as RGBA32F and RGBA16F (the arena's: per executor)
  // (Views exist even without texel loads: the descriptor layout has them.)
  auto make_view = [&](const Buffer& b, VkFormat format, VkDeviceSize texel_bytes) {
    VkBufferViewCreateInfo vi{};
    vi.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO;
    vi.buffer = b.buffer;
    vi.format = format;
    vi.offset = 0;
    vi.range = std::min<VkDeviceSize>(b.size / texel_bytes, limits.maxTexelBufferElements) * texel_bytes;
    VkBufferView view;
    ctx.check(vkCreateBufferView(dev, &vi, nullptr, &view), "vkCreateBufferView");
    m.views.push_back(view);
    return view;
  };
  for (const Buffer& b : m.weight_blocks) {
    m.weight_views.push_back(make_view(b, VK_FORMAT_R32G32B32A32_SFLOAT, 16));
    m.half_views.push_back(rgba16_texel ? make_view(b, VK_FORMAT_R16G16B16A16_SFLOAT, 8) : m.weight_views.back());
  }

  // ---- the descriptor set layout: binding 0 the arena once per operand slot,
  // binding 1 one weight block, bindings 2, 3 and 4 their texel views (R32F,
  // RGBA32F, RGBA16F)
  VkDescriptorSetLayoutBinding bindings[5] = {};
  for (std::uint32_t i = 0; i < 5; ++i) {
    bindings[i].binding = i;
    bindings[i].descriptorType = i < 2 ? VK_DESCRIPTOR_TYPE_STORAGE_BUFFER : VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
    bindings[i].descriptorCount = i == 0 ? kSlots : 1;
    bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo sl{};
  sl.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
  sl.bindingCount = 5;
  sl.pBindings = bindings;
  ctx.check(vkCreateDescriptorSetLayout(dev, &sl, nullptr, &m.set_layout), "vkCreateDescriptorSetLayout");
  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(DeviceProgram::Dispatch::push)};
  VkPipelineLayoutCreateInfo pl{};
  pl.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
  pl.setLayoutCount = 1;
  pl.pSetLayouts = &m.set_layout;
  pl.pushConstantRangeCount = 1;
  pl.pPushConstantRanges = &range;
  ctx.check(vkCreatePipelineLayout(dev, &pl, nullptr, &m.pipeline_layout), "vkCreatePipelineLayout");
  // ---- shaders and pipelines, one per distinct source
  codegen::spirv::CompileOptions copts;
  copts.cache_dir = ctx.cache_dir();
  // spirv-opt's performance passes are opt-in: on lavapipe they made kernels
  // no faster (interleaved runs differ either way within the noise) and cost
  // most of a cold load (ResNet-18: 19 s against 11 s, 2.4 GiB peak memory
  // against 0.36); drivers optimize SPIR-V themselves.
  if (const char* e = std::getenv("VKFUSE_SPIRV_OPT"); e && std::string(e) == "1") copts.optimize = true;
  // Each distinct source once, compiled to SPIR-V and then made a pipeline on
  // several threads: drivers that compile at pipeline creation (NVIDIA's) take
  // seconds per conv kernel, and vkCreateComputePipelines may run concurrently
  // on one device and pipeline cache. glslang's own step stays serial (see
  // compile_compute); validation and the disk cache do not.
  std::vector<std::size_t> distinct;  // kernel index of each distinct source, in first-use order
  std::vector<std::string> kernel_hash(static_cast<std::size_t>(K));
  {
    std::map<std::string, std::size_t> seen;
    for (std::size_t i = 0; i < kernel_hash.size(); ++i) {
      kernel_hash[i] = codegen::spirv::source_hash(prog.kernels[i].source);
      if (seen.emplace(kernel_hash[i], distinct.size()).second) distinct.push_back(i);
    }
  }
  const int workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto dump = std::getenv("VKFUSE_DUMP_SHADERS");  // debugging aid
  std::vector<std::vector<std::uint32_t>> spirv(distinct.size());
  auto tc = std::chrono::steady_clock::now();
  graph::parallel_for(workers, static_cast<std::int64_t>(distinct.size()), [&](std::int64_t s) {
    const Kernel& k = prog.kernels[distinct[static_cast<std::size_t>(s)]];
    if (dump && *dump)
      std::ofstream(std::string(dump) + "/" + k.variant + "-" + kernel_hash[distinct[static_cast<std::size_t>(s)]] +
                    ".comp")
          << k.source;
    spirv[static_cast<std::size_t>(s)] = codegen::spirv::compile_compute(k.source, copts);
  });
  const double compile_ms = ms_since(tc);
  tc = std::chrono::steady_clock::now();
  m.modules.assign(distinct.size(), VK_NULL_HANDLE);
  std::vector<VkPipeline> made(distinct.size(), VK_NULL_HANDLE);
  std::vector<double> made_ms(distinct.size(), 0);
  try {
    const LateProgressLine note(options.progress, "creating " + std::to_string(distinct.size()) +
                                                      " GPU pipelines on " + std::to_string(workers) +
                                                      " threads: the driver compiles each (its cache keeps them "
                                                      "for the next load)");
    graph::parallel_for(workers, static_cast<std::int64_t>(distinct.size()), [&](std::int64_t s) {
      const auto at = static_cast<std::size_t>(s);
      const auto start = std::chrono::steady_clock::now();
      VkShaderModuleCreateInfo smi{};
      smi.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
      smi.codeSize = spirv[at].size() * 4;
      smi.pCode = spirv[at].data();
      ctx.check(vkCreateShaderModule(dev, &smi, nullptr, &m.modules[at]), "vkCreateShaderModule");
      VkComputePipelineCreateInfo cpi{};
      cpi.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
      cpi.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
      cpi.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
      cpi.stage.module = m.modules[at];
      cpi.stage.pName = "main";
      cpi.layout = m.pipeline_layout;
      ctx.check(vkCreateComputePipelines(dev, ctx.pipeline_cache(), 1, &cpi, nullptr, &made[at]),
                "vkCreateComputePipelines");
      made_ms[at] = ms_since(start);
    });
  } catch (...) {
    // What was made is the loaded program's to destroy.
    for (std::size_t s = 0; s < made.size(); ++s)
      if (made[s]) m.pipelines.emplace(kernel_hash[distinct[s]], made[s]);
    throw;
  }
  for (std::size_t s = 0; s < made.size(); ++s) m.pipelines.emplace(kernel_hash[distinct[s]], made[s]);
  const double pipeline_ms = ms_since(tc);
  // Which kernels the driver's compiler found hardest (NVIDIA's took seconds per conv kernel).
  for (std::size_t s = 0; s < made_ms.size(); ++s) load_.pipeline_ms.emplace_back(prog.kernels[distinct[s]].variant, made_ms[s]);
  std::stable_sort(load_.pipeline_ms.begin(), load_.pipeline_ms.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (options.progress && pipeline_ms > 2000 && !load_.pipeline_ms.empty()) {
    char line[256];
    std::snprintf(line, sizeof line, "GPU pipelines ready after %.1f s on %d threads (slowest: %s, %.1f s)",
                  pipeline_ms / 1e3, workers, load_.pipeline_ms.front().first.c_str(),
                  load_.pipeline_ms.front().second / 1e3);
    options.progress(line);
  }
  // Windowed, each operand slot of a kernel sees the arena from the start of
  // the operand's allocation (a view or an in-place Concat input may be
  // reached with strides across it), aligned as the device asks: 256 bytes
  // at most, which the allocations keep. Offsets are relative to it.
  const std::int64_t window_align =
      std::max<std::int64_t>(kAlign, static_cast<std::int64_t>(limits.minStorageBufferOffsetAlignment / 4));
  m.window_floats = storage_floats / window_align * window_align;
  const auto binding_of = [&](const Kernel& k, std::size_t block) {
    DeviceProgram::Binding b;
    b.block = block;
    if (!m.windowed) return b;
    for (std::size_t s = 0; s < k.slots.size(); ++s) {
      const Slot& slot = k.slots[s];
      if (slot.kind == Slot::Kind::Weights) continue;
      const Interval& r = roots[static_cast<std::size_t>(prog.root[static_cast<std::size_t>(slot.value)])];
      b.base[s] = r.offset / window_align * window_align;
      if (r.offset + r.size - b.base[s] > m.window_floats) {
        char sizes[256];
        std::snprintf(sizes, sizeof sizes, "%.1f MiB, more than one storage buffer of '%s' can address (%.1f MiB)",
                      static_cast<double>(r.size) * 4 / 1048576.0, ctx.name().c_str(),
                      static_cast<double>(limits.maxStorageBufferRange) / 1048576.0);
        throw Error(ErrorKind::Unsupported, "'" + graph.value(slot.value).name + "' (an operand of kernel '" +
                                                k.nodes + "') needs " + sizes + "; run its op on the host");
      }
    }
    return b;
  };
  std::vector<int> dispatch_unit;  // per dispatch
  for (std::int64_t i = 0; i < K; ++i) {
    const Kernel& k = prog.kernels[static_cast<std::size_t>(i)];
    DeviceProgram::Dispatch d;
    const auto it = m.pipelines.find(kernel_hash[static_cast<std::size_t>(i)]);
    d.pipeline = it->second;
    const DeviceProgram::Binding binding = binding_of(k, static_cast<std::size_t>(block_of[static_cast<std::size_t>(i)]));
    const auto known = std::find(m.bindings.begin(), m.bindings.end(), binding);
    d.binding = static_cast<std::size_t>(known - m.bindings.begin());
    if (known == m.bindings.end()) m.bindings.push_back(binding);
    d.gx = k.groups_x;
    d.gy = k.groups_y;
    if (k.slots.size() > kSlots) throw Error(ErrorKind::Internal, "kernel with more than 8 operands");
    for (std::size_t s = 0; s < k.slots.size(); ++s) {
      const Slot& slot = k.slots[s];
      const std::int64_t v = slot.kind == Slot::Kind::Weights ? weight_offset[static_cast<std::size_t>(i)]
                                                              : offset[static_cast<std::size_t>(slot.value)];
      if (v < 0) throw Error(ErrorKind::Internal, "kernel '" + k.nodes + "' reads a value with no storage");
      d.push[s] = static_cast<std::uint32_t>(slot.kind == Slot::Kind::Weights ? v : v - binding.base[s]);
    }
    std::copy(k.dims.begin(), k.dims.end(), d.push + kSlots);
    if (k.invocations <= 0) continue;
    for (const Slot& slot : k.slots) {
      if (slot.kind == Slot::Kind::Weights) continue;
      const std::int64_t at = offset[static_cast<std::size_t>(slot.value)];
      (slot.kind == Slot::Kind::Output ? d.writes : d.reads)
          .emplace_back(at, at + std::max<std::int64_t>(1, graph::element_count(graph.value(slot.value).shape)));
    }
    m.dispatches.push_back(d);
    dispatch_unit.push_back(k.node >= 0 ? node_unit[static_cast<std::size_t>(k.node)] : 0);
  }
  // Kernels come in node order, so each unit's dispatches are contiguous (a
  // unit of views alone has none).
  if (!std::is_sorted(dispatch_unit.begin(), dispatch_unit.end()))
    throw Error(ErrorKind::Internal, "GPU kernels out of unit order");
  for (std::size_t u = 0; u < m.units.size(); ++u) {
    const int id = static_cast<int>(u);
    m.units[u].first_dispatch = static_cast<std::size_t>(
        std::lower_bound(dispatch_unit.begin(), dispatch_unit.end(), id) - dispatch_unit.begin());
    m.units[u].end_dispatch = static_cast<std::size_t>(
        std::upper_bound(dispatch_unit.begin(), dispatch_unit.end(), id) - dispatch_unit.begin());
  }
  m.place_barriers();
  load_.barriers = m.barriers;
  load_.arena_windows = m.windowed;
  load_.compile_ms = compile_ms;
  load_.pipelines_ms = pipeline_ms;
  load_.shaders = static_cast<std::int64_t>(m.pipelines.size());
  stats_.dispatches = static_cast<std::int64_t>(m.dispatches.size());

  return loaded;
}

VulkanExecutor::VulkanExecutor(const graph::Graph& graph, const ExecutorOptions& options, std::span<const int> unit_of)
    : VulkanExecutor(load(graph, options, unit_of), options) {}

VulkanExecutor::VulkanExecutor(std::shared_ptr<const DeviceProgram> program, const ExecutorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.prog = std::move(program);
  const DeviceProgram& prog = *m.prog;
  m.options = options;
  m.ctx = prog.ctx;
  Context& ctx = *m.ctx;
  VkDevice dev = ctx.device();
  const VkPhysicalDeviceLimits& limits = ctx.properties().limits;
  load_ = prog.load;
  stats_ = prog.stats;
  m.units.resize(prog.units.size());
  for (std::size_t u = 0; u < m.units.size(); ++u) m.units[u].plan = &prog.units[u];

  // ---- arena (constants in place), staging
  auto t0 = std::chrono::steady_clock::now();
  m.arena = ctx.create_buffer(static_cast<VkDeviceSize>(prog.arena_floats * 4),
                              VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT,
                              Placement::DeviceMappable, "the activation arena");
  m.mapped_in = m.arena.mapped != nullptr;
  m.mapped_out = m.mapped_in && m.arena.host_cached;
  load_.mapped_inputs = m.mapped_in;
  load_.mapped_outputs = m.mapped_out;
  for (const auto& [offset, data] : prog.arena_constants)
    ctx.upload(m.arena, static_cast<VkDeviceSize>(offset * 4), data.data(), data.size() * 4);
  if (!m.mapped_in)
    m.staging_in = ctx.create_buffer(static_cast<VkDeviceSize>(std::max<std::int64_t>(prog.staged_in, 1) * 4),
                                     VK_BUFFER_USAGE_TRANSFER_SRC_BIT, Placement::Staging, "the input staging buffer");
  if (!m.mapped_out)
    m.staging_out = ctx.create_buffer(static_cast<VkDeviceSize>(std::max<std::int64_t>(prog.staged_out, 1) * 4),
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT, Placement::Staging, "the output staging buffer");
  load_.staging_bytes = static_cast<std::int64_t>(m.staging_in.size + m.staging_out.size);
  load_.upload_ms += ms_since(t0);
  {
    VkBufferViewCreateInfo vi{};
    vi.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO;
    vi.buffer = m.arena.buffer;
    vi.format = VK_FORMAT_R32_SFLOAT;
    vi.range = std::min<VkDeviceSize>(m.arena.size / 4, limits.maxTexelBufferElements) * 4;
    ctx.check(vkCreateBufferView(dev, &vi, nullptr, &m.arena_view), "vkCreateBufferView");
  }

  // ---- descriptor sets: each binding that a kernel makes (DeviceProgram::Binding)
  const auto nsets = static_cast<std::uint32_t>(std::max<std::size_t>(prog.bindings.size(), 1));
  VkDescriptorPoolSize ps[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, (kSlots + 1) * nsets},
                                {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, 3 * nsets}};
  VkDescriptorPoolCreateInfo dp{};
  dp.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
  dp.maxSets = nsets;
  dp.poolSizeCount = 2;
  dp.pPoolSizes = ps;
  ctx.check(vkCreateDescriptorPool(dev, &dp, nullptr, &m.descriptor_pool), "vkCreateDescriptorPool");
  m.sets.resize(nsets);
  std::vector<VkDescriptorSetLayout> layouts(nsets, prog.set_layout);
  VkDescriptorSetAllocateInfo da{};
  da.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
  da.descriptorPool = m.descriptor_pool;
  da.descriptorSetCount = nsets;
  da.pSetLayouts = layouts.data();
  ctx.check(vkAllocateDescriptorSets(dev, &da, m.sets.data()), "vkAllocateDescriptorSets");
  for (std::uint32_t s = 0; s < nsets; ++s) {
    const DeviceProgram::Binding b = s < prog.bindings.size() ? prog.bindings[s] : DeviceProgram::Binding{};
    VkDescriptorBufferInfo slots[kSlots];
    for (int k = 0; k < kSlots; ++k) {
      const auto base = static_cast<VkDeviceSize>(b.base[static_cast<std::size_t>(k)]) * 4;
      slots[k] = {m.arena.buffer, base,
                  prog.windowed ? std::min<VkDeviceSize>(static_cast<VkDeviceSize>(prog.window_floats) * 4, m.arena.size - base)
                                : m.arena.size};
    }
    const VkDescriptorBufferInfo weights{prog.weight_blocks[b.block].buffer, 0, prog.weight_blocks[b.block].size};
    const VkBufferView views[3] = {m.arena_view, prog.weight_views[b.block], prog.half_views[b.block]};
    VkWriteDescriptorSet w[5] = {};
    for (std::uint32_t i = 0; i < 5; ++i) {
      w[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
      w[i].dstSet = m.sets[s];
      w[i].dstBinding = i;
      w[i].descriptorCount = i == 0 ? kSlots : 1;
      if (i < 2) {
        w[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        w[i].pBufferInfo = i == 0 ? slots : &weights;
      } else {
        w[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
        w[i].pTexelBufferView = &views[i - 2];
      }
    }
    vkUpdateDescriptorSets(dev, 5, w, 0, nullptr);
  }

  // ---- each unit's command buffers, recorded once
  auto make_pool = [&](Queue q) {
    VkCommandPoolCreateInfo cp{};
    cp.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    cp.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    cp.queueFamilyIndex = ctx.queue_family(q);
    VkCommandPool pool;
    ctx.check(vkCreateCommandPool(dev, &cp, nullptr, &pool), "vkCreateCommandPool");
    return pool;
  };
  m.pool = make_pool(Queue::compute);
  m.transfer_pool = make_pool(Queue::transfer);
  auto command_buffer = [&](VkCommandPool pool) {
    VkCommandBufferAllocateInfo ca{};
    ca.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    ca.commandPool = pool;
    ca.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ca.commandBufferCount = 1;
    VkCommandBuffer c;
    ctx.check(vkAllocateCommandBuffers(dev, &ca, &c), "vkAllocateCommandBuffers");
    begin(c);
    return c;
  };
  auto semaphore = [&] {
    VkSemaphoreCreateInfo si{};
    si.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO;
    VkSemaphore sem;
    ctx.check(vkCreateSemaphore(dev, &si, nullptr, &sem), "vkCreateSemaphore");
    return sem;
  };
  VkFenceCreateInfo fi{};
  fi.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  for (std::size_t i = 0; i < m.units.size(); ++i) {
    Impl::Unit& u = m.units[i];
    ctx.check(vkCreateFence(dev, &fi, nullptr, &u.fence), "vkCreateFence");
    if (m.has_uploads(u)) {
      u.upload_cmd = command_buffer(m.transfer_pool);
      m.record_uploads(u.upload_cmd, u);
      ctx.check(vkEndCommandBuffer(u.upload_cmd), "vkEndCommandBuffer");
      u.uploaded = semaphore();
    }
    u.cmd = command_buffer(m.pool);
    m.record_dispatches(u.cmd, u, VK_NULL_HANDLE);
    ctx.check(vkEndCommandBuffer(u.cmd), "vkEndCommandBuffer");
    if (m.has_downloads(u)) {
      u.download_cmd = command_buffer(m.transfer_pool);
      m.record_downloads(u.download_cmd, u);
      ctx.check(vkEndCommandBuffer(u.download_cmd), "vkEndCommandBuffer");
      u.computed = semaphore();
      if (i + 1 < m.units.size()) u.downloaded = semaphore();
    }
  }

  // ---- warm-up: drivers like lavapipe compile each pipeline at first dispatch
  t0 = std::chrono::steady_clock::now();
  if (m.mapped_in) {
    for (const DeviceProgram::IO& io : prog.inputs)
      std::memset(static_cast<float*>(m.arena.mapped) + io.offset, 0, static_cast<std::size_t>(io.count) * 4);
  } else {
    std::memset(m.staging_in.mapped, 0, m.staging_in.size);
  }
  {
    // A warm-up that takes more than a moment (lavapipe with a cold shader
    // cache: seconds) says so rather than leaving the user waiting.
    const LateProgressLine note(options.progress, "warming up " + std::to_string(prog.pipelines.size()) +
                                                      " GPU kernels: the driver compiles each at its first dispatch "
                                                      "(its cache keeps them for the next load)");
    // The wait allows the device timeout plus the compiles: lavapipe takes
    // about a second a pipeline on a cold cache, more on a busy machine, so
    // DenseNet-121's 669 kernels outlast any fixed timeout.
    const std::uint64_t warmup_timeout = device_timeout(options) + kWarmupMsPerPipeline * prog.pipelines.size();
    for (std::size_t u = 0; u < m.units.size(); ++u) {
      m.submit_unit(u);
      m.units[u].in_flight = false;
      ctx.wait_and_reset(m.units[u].fence, warmup_timeout);
    }
  }
  load_.warmup_ms = ms_since(t0);
  if (options.progress && load_.warmup_ms > 2000) {
    char line[64];
    std::snprintf(line, sizeof line, "GPU kernels ready after %.1f s of warm-up", load_.warmup_ms / 1e3);
    options.progress(line);
  }
  ctx.save_pipeline_cache();
}

VulkanExecutor::~VulkanExecutor() {
  // Never free what a submission still uses.
  if (!impl_) return;
  if (!impl_->ctx || impl_->ctx->hung()) return;
  for (Impl::Unit& u : impl_->units) {
    if (!u.in_flight) continue;
    try {
      impl_->ctx->wait_and_reset(u.fence);
    } catch (const Error&) {
      // A lost device: nothing left to wait for; a timeout: ~Impl leaves it all.
    }
  }
}

void VulkanExecutor::Impl::upload_unit(std::size_t index, std::span<const float* const> in) {
  // One copy per value, each reported on its own: the link (emulated or
  // not) carries and the cost model charges them per value.
  for (std::size_t i : units[index].plan->inputs) {
    const DeviceProgram::IO& io = prog->inputs[i];
    // An empty tensor's buffer may be null (an empty vector's data()).
    if (io.count == 0) continue;
    const auto t0 = std::chrono::steady_clock::now();
    float* dst = mapped_in ? static_cast<float*>(arena.mapped) + io.offset
                           : static_cast<float*>(staging_in.mapped) + io.staging;
    std::memcpy(dst, in[i], static_cast<std::size_t>(io.count) * 4);
    if (options.on_transfer) options.on_transfer(TransferDirection::upload, io.count * 4, ms_since(t0) * 1e3);
  }
}

void VulkanExecutor::Impl::submit_unit(std::size_t index) {
  Unit& u = units[index];
  if (u.in_flight) throw Error(ErrorKind::Internal, "VulkanExecutor: unit submitted while it is in flight");
  // Units are submitted in order (one run after another), so the previous
  // unit's downloads are the last use of arena ranges this one may reuse.
  std::vector<VkSemaphore> waits;
  if (u.upload_cmd) {
    ctx->submit(Queue::transfer, u.upload_cmd, {}, u.uploaded, VK_NULL_HANDLE);
    waits.push_back(u.uploaded);
  }
  if (index > 0 && units[index - 1].downloaded) waits.push_back(units[index - 1].downloaded);
  ctx->submit(Queue::compute, u.cmd, waits, u.computed, u.download_cmd ? VK_NULL_HANDLE : u.fence);
  if (u.download_cmd) {
    const VkSemaphore computed[] = {u.computed};
    ctx->submit(Queue::transfer, u.download_cmd, computed, u.downloaded, u.fence);
  }
  u.in_flight = true;
}

void VulkanExecutor::Impl::finish_unit(std::size_t index, std::span<float* const> out) {
  Unit& u = units[index];
  if (!u.in_flight) return;
  u.in_flight = false;
  ctx->wait_and_reset(u.fence, device_timeout(options));
  for (std::size_t j : u.plan->outputs) {
    const DeviceProgram::IO& io = prog->outputs[j];
    if (io.offset < 0) {
      std::copy(io.constant_data.begin(), io.constant_data.end(), out[j]);
      continue;
    }
    if (io.count == 0) continue;
    const auto t0 = std::chrono::steady_clock::now();
    const float* src = mapped_out ? static_cast<const float*>(arena.mapped) + io.offset
                                  : static_cast<const float*>(staging_out.mapped) + io.staging;
    std::memcpy(out[j], src, static_cast<std::size_t>(io.count) * 4);
    if (options.on_transfer) options.on_transfer(TransferDirection::download, io.count * 4, ms_since(t0) * 1e3);
  }
}

void VulkanExecutor::run(std::span<const float* const> inputs, std::span<float* const> outputs) {
  start(inputs, outputs);
  finish();
}

void VulkanExecutor::start(std::span<const float* const> inputs, std::span<float* const> outputs) {
  Impl& m = *impl_;
  if (inputs.size() != m.prog->inputs.size() || outputs.size() != m.prog->outputs.size())
    throw Error(ErrorKind::InvalidInput, "expected " + std::to_string(m.prog->inputs.size()) + " input(s) and " +
                                             std::to_string(m.prog->outputs.size()) + " output(s)");
  if (!m.pending_outputs.empty()) throw Error(ErrorKind::Internal, "VulkanExecutor::start while a run is in flight");
  // Units run in order on one queue, so all can be submitted at once; a
  // unit's outputs are copied out once it is done.
  for (std::size_t u = 0; u < m.units.size(); ++u) {
    m.upload_unit(u, inputs);
    m.submit_unit(u);
  }
  m.pending_outputs.assign(outputs.begin(), outputs.end());
}

void VulkanExecutor::finish() {
  Impl& m = *impl_;
  if (m.pending_outputs.empty() && !m.prog->outputs.empty()) return;
  const std::vector<float*> out = std::move(m.pending_outputs);
  m.pending_outputs.clear();
  for (std::size_t u = 0; u < m.units.size(); ++u) m.finish_unit(u, out);
}

int VulkanExecutor::unit_count() const { return static_cast<int>(impl_->units.size()); }

void VulkanExecutor::check_unit(int unit) const {
  if (unit < 0 || unit >= unit_count()) throw Error(ErrorKind::Internal, "VulkanExecutor: no unit " + std::to_string(unit));
}

void VulkanExecutor::upload_unit(int unit, std::span<const float* const> inputs) {
  check_unit(unit);
  impl_->upload_unit(static_cast<std::size_t>(unit), inputs);
}

void VulkanExecutor::submit_unit(int unit) {
  check_unit(unit);
  impl_->submit_unit(static_cast<std::size_t>(unit));
}

void VulkanExecutor::finish_unit(int unit, std::span<float* const> outputs) {
  check_unit(unit);
  impl_->finish_unit(static_cast<std::size_t>(unit), outputs);
}

std::string VulkanExecutor::description() const {
  const std::string queue = impl_->ctx->separate_transfer_queue() ? " on a transfer queue" : "";
  const std::string io = impl_->mapped_out  ? "mapped I/O"
                         : impl_->mapped_in ? "mapped inputs, staged outputs" + queue
                                            : "staged I/O" + queue;
  return "gpu: " + impl_->ctx->name() + ", " + std::to_string(stats_.dispatches) + " dispatches, " +
         std::to_string(load_.shaders) + " shaders, " + io +
         (load_.tuned_kernels.empty() ? "" : ", kernels as tuned by calibration (" + load_.tuned_kernels + ")");
}

const DeviceProgram& VulkanExecutor::program() const { return *impl_->prog; }

bool VulkanExecutor::usable(const DeviceProgram& program) { return program.ctx && !program.ctx->retired(); }

std::vector<KernelInfo> VulkanExecutor::kernels() const {
  std::vector<KernelInfo> out;
  for (const Kernel& k : impl_->prog->program.kernels)
    if (k.invocations > 0) out.push_back(KernelInfo{k.variant, k.nodes, k.flops, 0});
  return out;
}

std::vector<KernelInfo> VulkanExecutor::profile(int iterations, int repeats) {
  repeats = std::max(1, repeats);
  Impl& m = *impl_;
  std::vector<KernelInfo> out = kernels();
  std::uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(m.ctx->physical_device(), &nq, nullptr);
  std::vector<VkQueueFamilyProperties> fam(nq);
  vkGetPhysicalDeviceQueueFamilyProperties(m.ctx->physical_device(), &nq, fam.data());
  if (fam[m.ctx->queue_family()].timestampValidBits == 0 || m.prog->dispatches.empty()) return {};
  VkDevice dev = m.ctx->device();
  // Slots: 0 the start, i + 1 after dispatch i, then one per unit after its
  // uploads (a unit's first kernel is timed from there: a staged copy over
  // the link is the link's time, not the kernel's).
  const std::size_t nd = m.prog->dispatches.size();
  const auto count = static_cast<std::uint32_t>(nd + 1 + m.units.size());
  VkQueryPoolCreateInfo qi{};
  qi.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO;
  qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
  qi.queryCount = count;
  VkQueryPool qp;
  m.ctx->check(vkCreateQueryPool(dev, &qi, nullptr, &qp), "vkCreateQueryPool");
  VkCommandBufferAllocateInfo ca{};
  ca.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  ca.commandPool = m.pool;
  ca.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  ca.commandBufferCount = 1;
  VkCommandBuffer c;
  m.ctx->check(vkAllocateCommandBuffers(dev, &ca, &c), "vkAllocateCommandBuffers");
  // Every unit in one command buffer on the compute queue (which can copy
  // too), timed after each dispatch.
  begin(c);
  vkCmdResetQueryPool(c, qp, 0, count);
  vkCmdWriteTimestamp(c, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, qp, 0);
  std::vector<std::size_t> start_slot(nd);
  for (std::size_t i = 0; i < nd; ++i) start_slot[i] = i;
  for (std::size_t ui = 0; ui < m.units.size(); ++ui) {
    const Impl::Unit& u = m.units[ui];
    // (Written whether or not there are uploads: every slot is read back.)
    const auto slot = static_cast<std::uint32_t>(nd + 1 + ui);
    if (m.has_uploads(u)) {
      m.record_uploads(c, u);
      if (u.plan->first_dispatch < u.plan->end_dispatch) start_slot[u.plan->first_dispatch] = slot;
    }
    vkCmdWriteTimestamp(c, VK_PIPELINE_STAGE_TRANSFER_BIT, qp, slot);
    m.record_dispatches(c, u, qp, repeats);
    if (m.has_downloads(u)) m.record_downloads(c, u);
  }
  m.ctx->check(vkEndCommandBuffer(c), "vkEndCommandBuffer");
  const double period_ms = static_cast<double>(m.ctx->properties().limits.timestampPeriod) * 1e-6;
  std::vector<std::vector<double>> samples(out.size());
  for (int it = 0; it < std::max(1, iterations); ++it) {
    m.ctx->submit_and_wait(c, m.units[0].fence);
    std::vector<std::uint64_t> ts(count);
    m.ctx->check(vkGetQueryPoolResults(dev, qp, 0, count, ts.size() * 8, ts.data(), 8,
                                VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
          "vkGetQueryPoolResults");
    for (std::size_t i = 0; i < out.size(); ++i) {
      const std::uint64_t from = ts[start_slot[i]], to = ts[i + 1];
      samples[i].push_back(to > from ? static_cast<double>(to - from) * period_ms / repeats : 0.0);
    }
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto& s = samples[i];
    std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(s.size() / 2), s.end());
    out[i].ms = s[s.size() / 2];
  }
  vkFreeCommandBuffers(dev, m.pool, 1, &c);
  vkDestroyQueryPool(dev, qp, nullptr);
  return out;
}

}  // namespace vulkan

std::unique_ptr<Executor> make_vulkan_executor(const graph::Graph& graph, const ExecutorOptions& options) {
  return std::make_unique<vulkan::VulkanExecutor>(graph, options);
}

}  // namespace vkfuse::runtime
