// Whole zoo models on the Vulkan executor against the reference executor
// (fp32: relative L2 <= 1e-4), with the dispatch count and transfers checked.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "tests/vulkan/vulkan_test_util.h"

using vkfuse::testing::compare_with_reference;
using vkfuse::testing::VulkanTest;
namespace g = vkfuse::graph;

namespace {
class VulkanModels : public VulkanTest {};
}  // namespace

TEST_F(VulkanModels, ResNet18MatchesReference) {
  VKFUSE_REQUIRE_VULKAN();
  g::Graph graph = g::build_zoo_model("resnet18");
  g::prepare_graph(graph);
  auto r = compare_with_reference(std::move(graph), 1e-4, false, 3, false);
  // 20 convolutions (8 with their residual Add fused in), 1 max pool, 1 global pool, 1 gemm.
  EXPECT_LE(r.stats.dispatches, 24);
  EXPECT_EQ(r.stats.bytes_uploaded, 3 * 224 * 224 * 4);
  EXPECT_EQ(r.stats.bytes_downloaded, 1000 * 4);
  std::printf("resnet18: %lld dispatches, %lld B up, %lld B down, rel L2 %.3g\n",
              static_cast<long long>(r.stats.dispatches), static_cast<long long>(r.stats.bytes_uploaded),
              static_cast<long long>(r.stats.bytes_downloaded), r.errors[0]);
}

TEST_F(VulkanModels, InceptionV3MatchesReference) {
  VKFUSE_REQUIRE_VULKAN();
  g::Graph graph = g::build_zoo_model("inception_v3");
  g::prepare_graph(graph);
  auto r = compare_with_reference(std::move(graph), 1e-4, false, 4, false);
  std::printf("inception_v3: %lld dispatches, rel L2 %.3g\n", static_cast<long long>(r.stats.dispatches), r.errors[0]);
}
