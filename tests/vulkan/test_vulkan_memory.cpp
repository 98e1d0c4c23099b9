// Device memory that follows the device, and the limits of a discrete GPU
// imposed on lavapipe (VKFUSE_DEVICE_LIMITS): which path a load takes
// (mapped or staged I/O, texel or storage-buffer loads), and that each path
// computes what the reference does. Barriers go only where a dispatch
// depends on an earlier one.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "tests/vulkan/vulkan_test_util.h"

using vkfuse::testing::compare_with_reference;
using vkfuse::testing::GraphBuilder;
using vkfuse::testing::ScopedLimits;
using vkfuse::testing::VulkanTest;
using vkfuse::runtime::vulkan::DeviceLimits;
namespace g = vkfuse::graph;
using I64 = std::vector<std::int64_t>;

namespace {

constexpr double kTol = 1e-4;

// x [1, C, H, W] → 3x3 conv with M outputs → Relu.
g::Graph conv_graph(std::int64_t C, std::int64_t M, std::int64_t HW, unsigned seed) {
  GraphBuilder b(seed);
  auto x = b.input("x", {1, C, HW, HW});
  auto y = b.node("Conv", {x, b.random_constant("w", {M, C, 3, 3}, 0.1f), b.random_constant("b", {M})},
                  [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); });
  b.output(b.node("Relu", {y}));
  return std::move(b.graph);
}

class VulkanMemory : public VulkanTest {};

}  // namespace

TEST(DeviceLimits, ParsesPresetsAndPairs) {
  const DeviceLimits none = DeviceLimits::parse("");
  EXPECT_FALSE(none.any());
  const DeviceLimits d = DeviceLimits::parse("discrete");
  EXPECT_EQ(d.host_visible_window, 256ull << 20);
  EXPECT_EQ(d.max_texel_elements, 65536u);
  EXPECT_FALSE(d.mapped_io);
  EXPECT_TRUE(d.gpu_kernels);
  EXPECT_EQ(d.describe(), "host_visible_mib=256,texel_elements=65536,mapped_io=0,gpu_kernels=1");
  const DeviceLimits dw = DeviceLimits::parse("discrete,arena_windows=1");  // the preset within a list
  EXPECT_EQ(dw.describe(), "host_visible_mib=256,texel_elements=65536,arena_windows=1,mapped_io=0,gpu_kernels=1");
  const DeviceLimits s = DeviceLimits::parse("gpu_kernels=1,subgroup_ops=0");
  EXPECT_FALSE(s.subgroup_ops);
  EXPECT_TRUE(s.any());
  EXPECT_EQ(s.describe(), "gpu_kernels=1,subgroup_ops=0");
  const DeviceLimits p = DeviceLimits::parse("texel_elements=1000,mapped_io=1");
  EXPECT_EQ(p.max_texel_elements, 1000u);
  EXPECT_TRUE(p.mapped_io);
  EXPECT_EQ(p.host_visible_window, 0u);
  const DeviceLimits r = DeviceLimits::parse("storage_range_mib=64,arena_windows=1");
  EXPECT_EQ(r.storage_range, 64ull << 20);
  EXPECT_TRUE(r.arena_windows);
  EXPECT_EQ(r.describe(), "storage_range_mib=64,arena_windows=1");
}

TEST(DeviceLimits, MalformedValuesNameTheVariable) {
  for (const char* bad : {"mapped_io", "texel_elements=abc", "host_visible_mib=0", "mapped_io=2", "bar=1",
                          "texel_elements=-5", "gpu_kernels=2", "subgroup_ops=3",
                          "storage_range_mib=0", "storage_range_mib=4096", "arena_windows=2"}) {
    try {
      DeviceLimits::parse(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const vkfuse::Error& e) {
      EXPECT_EQ(e.kind(), vkfuse::ErrorKind::InvalidArgument) << bad;
      EXPECT_NE(std::string(e.what()).find("VKFUSE_DEVICE_LIMITS"), std::string::npos) << e.what();
    }
  }
}

// The discrete preset: nothing mapped, so inputs, outputs and weights go
// through staging buffers; the arena's texel view too small for these
// activations (storage-buffer loads), the weights' large enough. Unlimited,
// a unified-memory device (lavapipe) maps the arena.
TEST_F(VulkanMemory, DiscreteLimitsStageEveryTransfer) {
  VKFUSE_REQUIRE_VULKAN();
  if (DeviceLimits::from_env().any()) GTEST_SKIP() << "VKFUSE_DEVICE_LIMITS is set for the whole run";
  {
    ScopedLimits limits("discrete");
    const auto r = compare_with_reference(conv_graph(16, 32, 40, 1), kTol);
    EXPECT_FALSE(r.load.mapped_inputs);
    EXPECT_FALSE(r.load.mapped_outputs);
    EXPECT_FALSE(r.load.texel_arena);
    if (!std::getenv("VKFUSE_TEXEL_LOADS")) {
      EXPECT_TRUE(r.load.texel_weights);
    }
  }
  const auto r = compare_with_reference(conv_graph(16, 32, 40, 1), kTol);
  const auto ctx = vkfuse::runtime::vulkan::Context::acquire("");
  if (ctx->unified_memory()) {
    EXPECT_TRUE(r.load.mapped_inputs);  // (a discrete GPU may map it through its BAR, or not)
    // Outputs straight from it too where the host reads it cached (lavapipe;
    // an integrated GPU without cached device memory stages them).
    if (ctx->properties().deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU) {
      EXPECT_TRUE(r.load.mapped_outputs);
    }
  }
}

// A BAR window: an arena that fits is mapped, one that does not is staged.
// Outputs are read back through staging even from a mapped arena: the host
// reads a BAR uncached, over the bus.
TEST_F(VulkanMemory, HostVisibleWindowHoldsSmallArenasOnly) {
  VKFUSE_REQUIRE_VULKAN();
  if (DeviceLimits::from_env().any()) GTEST_SKIP() << "VKFUSE_DEVICE_LIMITS is set for the whole run";
  ScopedLimits limits("host_visible_mib=1");
  const auto ctx = vkfuse::runtime::vulkan::Context::acquire("");
  EXPECT_FALSE(ctx->unified_memory());
  const auto small = compare_with_reference(conv_graph(4, 8, 16, 2), kTol);  // ~12 KiB of activations
  EXPECT_LT(small.load.arena_bytes, 1 << 20);
  EXPECT_TRUE(small.load.mapped_inputs);
  EXPECT_FALSE(small.load.mapped_outputs);
  const auto large = compare_with_reference(conv_graph(32, 64, 64, 3), kTol);  // 1.5 MiB
  EXPECT_GT(large.load.arena_bytes, 1 << 20);
  EXPECT_FALSE(large.load.mapped_inputs);
  EXPECT_FALSE(large.load.mapped_outputs);
}

// Texel views reach maxTexelBufferElements: kernels read activations
// through them only when the arena fits, weights only when every kernel's
// weights fit, each apart from the other.
TEST_F(VulkanMemory, TexelLoadsOnlyWithinTheTexelLimit) {
  VKFUSE_REQUIRE_VULKAN();
  if (DeviceLimits::from_env().any()) GTEST_SKIP() << "VKFUSE_DEVICE_LIMITS is set for the whole run";
  if (std::getenv("VKFUSE_TEXEL_LOADS")) GTEST_SKIP() << "VKFUSE_TEXEL_LOADS is set";
  ScopedLimits limits("texel_elements=65536");
  const auto fits = compare_with_reference(conv_graph(8, 16, 24, 4), kTol);  // 13.8k floats, 1.2k weights
  EXPECT_TRUE(fits.load.texel_arena);
  EXPECT_TRUE(fits.load.texel_weights);
  const auto big_arena = compare_with_reference(conv_graph(8, 16, 72, 5), kTol);  // 124k floats
  EXPECT_FALSE(big_arena.load.texel_arena);
  EXPECT_TRUE(big_arena.load.texel_weights);
  const auto big_weights = compare_with_reference(conv_graph(64, 256, 8, 6), kTol);  // 147k weights
  EXPECT_LT(big_weights.load.arena_bytes / 4, 65536);
  EXPECT_TRUE(big_weights.load.texel_arena);
  EXPECT_FALSE(big_weights.load.texel_weights);
}

// An arena larger than one storage buffer can address (here capped at 1 MiB)
// is bound to each kernel operand as a window of it that holds the operand;
// the kernels' offsets are relative to their windows. 1.5 MiB of activations
// in two graphs: a chain of convolutions whose every output is kept (a graph
// output), and six convolutions of one small input, whose input and outputs
// lie further apart than one window (largest first, the input is placed
// last). A tensor larger than a window is refused with an error naming it
// and saying where to run its op.
TEST_F(VulkanMemory, ArenasBeyondOneStorageBufferAreBoundInWindows) {
  VKFUSE_REQUIRE_VULKAN();
  if (DeviceLimits::from_env().any()) GTEST_SKIP() << "VKFUSE_DEVICE_LIMITS is set for the whole run";
  const char* const weights[] = {"w0", "w1", "w2", "w3", "w4", "w5"};
  const auto chain = [&] {
    GraphBuilder b(21);
    auto y = b.input("x", {1, 4, 128, 128});  // 256 KiB per tensor
    for (const char* w : weights) {
      y = b.node("Conv", {y, b.random_constant(w, {4, 4, 3, 3}, 0.3f)},
                 [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); });
      b.output(y);
    }
    return std::move(b.graph);
  };
  const auto fan_out = [&] {
    GraphBuilder b(23);
    auto x = b.input("x", {1, 1, 128, 128});  // 64 KiB in, 256 KiB out of each
    for (const char* w : weights)
      b.output(b.node("Conv", {x, b.random_constant(w, {4, 1, 3, 3}, 0.3f)},
                      [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); }));
    return std::move(b.graph);
  };
  // Also with the limits of a discrete GPU (staged I/O, a GPU's kernels).
  for (const char* spec : {"storage_range_mib=1",
                           "discrete,storage_range_mib=1"}) {
    SCOPED_TRACE(spec);
    ScopedLimits limits(spec);
    for (const auto& make : {std::function<g::Graph()>(chain), std::function<g::Graph()>(fan_out)}) {
      const auto r = compare_with_reference(make(), kTol);
      EXPECT_GT(r.load.arena_bytes, 1 << 20);
      EXPECT_TRUE(r.load.arena_windows);
      EXPECT_FALSE(r.load.texel_arena);  // the arena's texel view is not windowed
      if (!std::getenv("VKFUSE_TEXEL_LOADS")) {
        EXPECT_TRUE(r.load.texel_weights);  // the weights' still serve
      }
      EXPECT_EQ(r.stats.dispatches, 6);
    }
  }
  {
    ScopedLimits limits("storage_range_mib=1");
    GraphBuilder b(22);
    b.output(b.node("Relu", {b.input("x", {1, 12, 200, 200})}));  // 1.8 MiB
    g::Graph graph = std::move(b.graph);
    g::prepare_graph(graph);
    try {
      vkfuse::runtime::vulkan::VulkanExecutor gpu(graph, {});
      ADD_FAILURE() << "a kernel with a 1.8 MiB operand loaded";
    } catch (const vkfuse::Error& e) {
      EXPECT_EQ(e.kind(), vkfuse::ErrorKind::Unsupported);
      const std::string what = e.what();
      EXPECT_NE(what.find("an operand of kernel 'Relu_0'"), std::string::npos) << what;
      EXPECT_NE(what.find("1.8 MiB, more than one storage buffer"), std::string::npos) << what;
      EXPECT_NE(what.find("run its op on the host"), std::string::npos) << what;
    }
  }
  // Unlimited, every operand binds the whole arena; arena_windows=1 takes
  // the windowed path all the same (CI's discrete mode runs every kernel so).
  EXPECT_FALSE(compare_with_reference(fan_out(), kTol).load.arena_windows);
  ScopedLimits limits("arena_windows=1");
  EXPECT_TRUE(compare_with_reference(fan_out(), kTol).load.arena_windows);
}

// Two dispatches that read the input and write their own outputs need no
// barrier between them; the Add that reads both needs one. (Under
// VKFUSE_VALIDATION=sync every dispatch gets one: the layer checks whole
// descriptor ranges.)
TEST_F(VulkanMemory, BarriersOnlyWhereADispatchDependsOnAnEarlierOne) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(9);
  auto x = b.input("x", {1, 8, 12, 12});
  auto relu = b.node("Relu", {x});
  auto sig = b.node("Sigmoid", {x});
  b.output(b.node("Add", {relu, sig}));
  const auto r = compare_with_reference(std::move(b.graph), kTol);
  ASSERT_EQ(r.stats.dispatches, 3);
  EXPECT_EQ(r.load.barriers, vkfuse::runtime::vulkan::sync_validation_requested() ? 3 : 1);
}

// Synchronization validation is on and reports hazards (so that a run with
// none means something): two copies into one buffer without a barrier
// between them are a write-after-write hazard.
TEST(VulkanSyncValidation, MessengerCountsHazards) {
  VKFUSE_REQUIRE_VULKAN();
  if (!vkfuse::runtime::vulkan::sync_validation_requested()) GTEST_SKIP() << "VKFUSE_VALIDATION is not sync";
  namespace vk = vkfuse::runtime::vulkan;
  auto ctx = vk::Context::acquire("");
  vk::Buffer src = ctx->create_buffer(4096, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, vk::Placement::Staging, "test source");
  vk::Buffer dst = ctx->create_buffer(4096, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, vk::Placement::Device, "test target");
  const auto before = vk::validation_error_count();
  std::fprintf(stderr, "(the next validation error is expected)\n");
  ctx->submit_and_wait([&](VkCommandBuffer cmd) {
    const VkBufferCopy region{0, 0, 4096};
    vkfuse::vkCmdCopyBuffer(cmd, src.buffer, dst.buffer, 1, &region);
    vkfuse::vkCmdCopyBuffer(cmd, src.buffer, dst.buffer, 1, &region);
  });
  EXPECT_GT(vk::validation_error_count(), before);
  ctx->destroy_buffer(src);
  ctx->destroy_buffer(dst);
}

// One rule picks a device for executors, calibration and the CLI.
TEST(DeviceSelection, IndexUuidOrNameTheSameEverywhere) {
  namespace vk = vkfuse::runtime::vulkan;
  auto dev = [](int index, const char* name, const char* type, const char* api, const char* uuid) {
    vkfuse::DeviceInfo d;
    d.index = index;
    d.name = name;
    d.type = type;
    d.api_version = api;
    d.uuid = uuid;
    return d;
  };
  const std::vector<vkfuse::DeviceInfo> devices = {
      dev(0, "llvmpipe (LLVM 15.0.6, 256 bits)", "cpu", "1.3.230", "6d657361"),
      dev(1, "Old GPU 2", "discrete-gpu", "1.0.61", "aa"),
      dev(2, "NVIDIA H200", "discrete-gpu", "1.3.277", "0123456789abcdef0123456789abcdef"),
      dev(3, "Intel(R) Graphics", "integrated-gpu", "1.3.255", "ff")};
  EXPECT_EQ(vk::select_device(devices, ""), 2);  // discrete first; Vulkan 1.0 is not usable
  EXPECT_EQ(vk::device_preference(devices), (std::vector<int>{2, 3, 0}));
  EXPECT_EQ(vk::select_device(devices, "2"), 2);  // an index, not the "2" in "Old GPU 2"
  EXPECT_EQ(vk::select_device(devices, "0123456789ABCDEF0123456789ABCDEF"), 2);
  EXPECT_EQ(vk::select_device(devices, "h200"), 2);
  EXPECT_EQ(vk::select_device(devices, "llvmpipe"), 0);
  for (const char* bad : {"4", "radeon"}) {
    try {
      vk::select_device(devices, bad);
      ADD_FAILURE() << bad << " matched";
    } catch (const vkfuse::Error& e) {
      EXPECT_EQ(e.kind(), vkfuse::ErrorKind::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("vkfuse devices"), std::string::npos) << e.what();
    }
  }
  try {
    vk::select_device({}, "");
    ADD_FAILURE() << "no devices, yet one was chosen";
  } catch (const vkfuse::Error& e) {
    EXPECT_EQ(e.kind(), vkfuse::ErrorKind::Device);
  }
}

// One context per physical device, however it is named.
TEST(DeviceSelection, OneContextPerDevice) {
  VKFUSE_REQUIRE_VULKAN();
  namespace vk = vkfuse::runtime::vulkan;
  const auto devices = vkfuse::list_devices();
  const int best = vk::select_device(devices, "");
  const auto a = vk::Context::acquire("");
  const auto b = vk::Context::acquire(std::to_string(best));
  const auto c = vk::Context::acquire(devices[static_cast<std::size_t>(best)].uuid);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a.get(), c.get());
  EXPECT_EQ(a->name(), devices[static_cast<std::size_t>(best)].name);
}

// Contexts come and go (each executor's end drops the last reference to its
// device's context) while the process keeps its one Vulkan instance: on an
// NVIDIA H200 the device vanished from the process ("no Vulkan device found")
// after a few contexts had each made and destroyed an instance of their own.
TEST(DeviceSelection, ContextsComeAndGoOnOneInstance) {
  VKFUSE_REQUIRE_VULKAN();
  namespace vk = vkfuse::runtime::vulkan;
  VkInstance first = VK_NULL_HANDLE;
  for (int i = 0; i < 50; ++i) {
    ASSERT_FALSE(vkfuse::list_devices().empty()) << "round " << i;
    {
      const auto ctx = vk::Context::acquire("");
      if (i == 0) first = ctx->instance();
      EXPECT_EQ(ctx->instance(), first) << "round " << i;
      if (i % 10 == 9) compare_with_reference(conv_graph(4, 8, 6, static_cast<unsigned>(i)), kTol);
    }
    // The context is gone (nothing else here holds it); its instance is not.
    std::uint32_t n = 0;
    ASSERT_EQ(vkfuse::vkEnumeratePhysicalDevices(first, &n, nullptr), VK_SUCCESS) << "round " << i;
    EXPECT_GT(n, 0u) << "round " << i;
  }
  if (!vk::validation_requested()) {
    EXPECT_EQ(vk::process_instance(false, false, nullptr), first);
  }
}
