// Every op family and every fused kernel of the Vulkan backend against the
// reference kernels (graph/ops), on random shapes and attributes: odd sizes,
// strides 1/2, dilations, asymmetric pads, groups and depthwise, ceil_mode,
// count_include_pad, broadcasting. fp32: relative L2 <= 1e-4.
// Run under the Khronos validation layer with VKFUSE_VALIDATION=1 (the ctest
// entry vulkan.validation does): any validation error fails the test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "codegen/spirv/compiler.h"
#include "codegen/spirv/lowering.h"
#include "graph/passes.h"
#include "runtime/vulkan/context.h"
#include "tests/vulkan/vulkan_test_util.h"

using vkfuse::testing::compare_with_reference;
using vkfuse::testing::GraphBuilder;
using vkfuse::testing::VulkanTest;
namespace g = vkfuse::graph;
using I64 = std::vector<std::int64_t>;

namespace {

constexpr double kTol = 1e-4;

class VulkanOps : public VulkanTest {};

std::int64_t rnd(std::mt19937& r, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(r);
}

// The kernel regime this device runs: a GPU's kernel shapes, or a CPU
// device's unless VKFUSE_DEVICE_LIMITS imposes a GPU's (CI's discrete mode).
bool runs_gpu_kernels() {
  const auto devices = vkfuse::list_devices();
  return (!devices.empty() && devices[0].type != "cpu") || vkfuse::runtime::vulkan::DeviceLimits::from_env().gpu_kernels;
}

}  // namespace

TEST_F(VulkanOps, ConvRandom2D) {
  VKFUSE_REQUIRE_VULKAN();
  std::mt19937 r(42);
  for (int trial = 0; trial < 24; ++trial) {
    const std::int64_t N = rnd(r, 1, 2), KH = rnd(r, 1, 5), KW = rnd(r, 1, 5);
    const std::int64_t SH = rnd(r, 1, 2), SW = rnd(r, 1, 2), DH = rnd(r, 1, 2), DW = rnd(r, 1, 2);
    std::int64_t groups = 1;
    const int kind = trial % 4;  // 0, 1: dense; 2: grouped; 3: depthwise
    std::int64_t C = rnd(r, 1, 13), M = rnd(r, 1, 19);
    if (kind == 2) {
      groups = rnd(r, 2, 3);
      C = groups * rnd(r, 1, 5);
      M = groups * rnd(r, 1, 6);
    } else if (kind == 3) {
      C = M = groups = rnd(r, 2, 17);
    }
    const I64 pads = {rnd(r, 0, 2), rnd(r, 0, 2), rnd(r, 0, 2), rnd(r, 0, 2)};
    const std::int64_t H = (KH - 1) * DH + 1 + rnd(r, 0, 9), W = (KW - 1) * DW + 1 + rnd(r, 0, 13);
    const bool bias = rnd(r, 0, 1) == 1;
    SCOPED_TRACE("trial " + std::to_string(trial) + ": N" + std::to_string(N) + " C" + std::to_string(C) + " M" +
                 std::to_string(M) + " " + std::to_string(H) + "x" + std::to_string(W) + " k" + std::to_string(KH) +
                 "x" + std::to_string(KW) + " s" + std::to_string(SH) + std::to_string(SW) + " d" +
                 std::to_string(DH) + std::to_string(DW) + " g" + std::to_string(groups));
    GraphBuilder b(static_cast<unsigned>(trial));
    auto x = b.input("x", {N, C, H, W});
    auto w = b.random_constant("w", {M, C / groups, KH, KW});
    std::vector<g::ValueId> ins = {x, w};
    if (bias) ins.push_back(b.random_constant("b", {M}));
    auto y = b.node("Conv", ins, [&](g::Attributes& a) {
      a.set("strides", I64{SH, SW});
      a.set("dilations", I64{DH, DW});
      a.set("pads", pads);
      a.set("group", groups);
    });
    b.output(y);
    compare_with_reference(std::move(b.graph), kTol);
  }
}

TEST_F(VulkanOps, Conv1DAnd3DAndAutoPad) {
  VKFUSE_REQUIRE_VULKAN();
  {
    GraphBuilder b(1);
    auto x = b.input("x", {2, 5, 23});
    auto y = b.node("Conv", {x, b.random_constant("w", {7, 5, 3}), b.random_constant("b", {7})},
                    [](g::Attributes& a) { a.set("strides", I64{2}); a.set("pads", I64{1, 2}); });
    b.output(y);
    compare_with_reference(std::move(b.graph), kTol);
  }
  {
    GraphBuilder b(2);
    auto x = b.input("x", {1, 3, 5, 6, 7});
    auto y = b.node("Conv", {x, b.random_constant("w", {4, 3, 2, 3, 3})},
                    [](g::Attributes& a) { a.set("pads", I64{1, 0, 1, 0, 1, 2}); a.set("strides", I64{1, 2, 1}); });
    b.output(y);
    compare_with_reference(std::move(b.graph), kTol);
  }
  for (const char* mode : {"SAME_UPPER", "SAME_LOWER", "VALID"}) {
    GraphBuilder b(3);
    auto x = b.input("x", {1, 4, 10, 11});
    auto y = b.node("Conv", {x, b.random_constant("w", {6, 4, 4, 3})}, [&](g::Attributes& a) {
      a.set("auto_pad", std::string(mode));
      a.set("strides", I64{2, 2});
    });
    b.output(y);
    compare_with_reference(std::move(b.graph), kTol);
  }
}

TEST_F(VulkanOps, PointwiseConvIsOneKernel) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(5);
  auto x = b.input("x", {1, 37, 9, 13});
  auto y = b.node("Conv", {x, b.random_constant("w", {70, 37, 1, 1}), b.random_constant("b", {70})});
  b.output(y);
  auto res = compare_with_reference(std::move(b.graph), kTol);
  ASSERT_EQ(res.kernels.size(), 1u);
  EXPECT_NE(res.kernels[0].variant.find("conv1x1"), std::string::npos) << res.kernels[0].variant;
}

// Conv -> BatchNormalization -> Add(residual) -> Relu: BN folds into the
// conv, the Add and its Relu join the conv's epilogue: one dispatch.
TEST_F(VulkanOps, ConvBatchNormResidualReluIsOneDispatch) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(6);
  auto x = b.input("x", {1, 8, 11, 9});
  auto res = b.input("res", {1, 12, 11, 9});
  auto c = b.node("Conv", {x, b.random_constant("w", {12, 8, 3, 3}), b.random_constant("b", {12})},
                  [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); });
  auto bn = b.node("BatchNormalization", {c, b.positive_constant("s", {12}), b.random_constant("bb", {12}),
                                          b.random_constant("m", {12}), b.positive_constant("v", {12})});
  auto add = b.node("Add", {res, bn});
  auto y = b.node("Relu", {add});
  b.output(y);
  auto r = compare_with_reference(std::move(b.graph), kTol);
  EXPECT_EQ(r.stats.dispatches, 1);
  ASSERT_EQ(r.kernels.size(), 1u);
  EXPECT_NE(r.kernels[0].variant.find("_res_Relu"), std::string::npos) << r.kernels[0].variant;
}

// A squeeze-and-excitation block as timm and torchvision export it:
// x -> GlobalAveragePool -> 1x1 Conv -> Relu -> 1x1 Conv -> HardSigmoid ->
// Mul(x, gate) -> Conv. The Mul runs in the last Conv's kernel, which scales
// each input channel as it loads it; the gated tensor is never written.
// Either operand order, a grouped 3x3 (padding: the gate must not touch the
// zeros), a residual Add with it, batch 2; a gated tensor that is also a graph
// output keeps its own Mul kernel.
TEST_F(VulkanOps, SqueezeExcitationGateRunsInTheNextConv) {
  VKFUSE_REQUIRE_VULKAN();
  struct Case {
    std::int64_t n, groups, k;
    bool gate_first, residual, gated_output;
  };
  for (const Case& c : {Case{1, 1, 1, false, false, false}, Case{2, 1, 1, true, true, false},
                        Case{1, 4, 3, false, false, false}, Case{2, 16, 3, true, true, false},
                        Case{1, 1, 1, false, false, true}}) {
    SCOPED_TRACE("N" + std::to_string(c.n) + " group " + std::to_string(c.groups) + " k" + std::to_string(c.k) +
                 (c.gate_first ? " gate first" : "") + (c.residual ? " residual" : "") +
                 (c.gated_output ? " gated output" : ""));
    GraphBuilder b(11);
    const std::int64_t C = 16, M = c.groups == 16 ? 16 : 24;
    auto in = b.input("x", {c.n, C, 9, 7});
    auto x = b.node("Relu", {b.node("Conv", {in, b.random_constant("dw", {C, 1, 3, 3})}, [](g::Attributes& a) {
      a.set("pads", I64{1, 1, 1, 1});
      a.set("group", std::int64_t{16});
    })});
    auto pooled = b.node("GlobalAveragePool", {x});
    auto h = b.node("Relu", {b.node("Conv", {pooled, b.random_constant("w1", {4, C, 1, 1}), b.random_constant("b1", {4})})});
    auto gate = b.node("HardSigmoid", {b.node("Conv", {h, b.random_constant("w2", {C, 4, 1, 1}), b.random_constant("b2", {C})})});
    auto gated = c.gate_first ? b.node("Mul", {gate, x}) : b.node("Mul", {x, gate});
    auto y = b.node("Conv", {gated, b.random_constant("w3", {M, C / c.groups, c.k, c.k}), b.random_constant("b3", {M})},
                    [&](g::Attributes& a) {
                      a.set("pads", I64{c.k / 2, c.k / 2, c.k / 2, c.k / 2});
                      a.set("group", c.groups);
                    });
    if (c.residual) y = b.node("Add", {y, b.input("r", {c.n, M, 9, 7})});
    b.output(y);
    if (c.gated_output) b.output(gated);
    auto r = compare_with_reference(std::move(b.graph), kTol);
    // dw conv, pool, two 1x1 convs, the gated conv (+ the Mul when it is an output)
    EXPECT_EQ(r.stats.dispatches, c.gated_output ? 6 : 5);
    const bool gated_kernel = std::any_of(r.kernels.begin(), r.kernels.end(), [](const auto& k) {
      return k.variant.find("_gated") != std::string::npos;
    });
    EXPECT_EQ(gated_kernel, !c.gated_output);
  }
}

TEST_F(VulkanOps, ConvActivationsFused) {
  VKFUSE_REQUIRE_VULKAN();
  const std::vector<std::string> acts = {"Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Clip"};
  for (const auto& act : acts) {
    SCOPED_TRACE(act);
    GraphBuilder b(7);
    auto x = b.input("x", {1, 6, 8, 8});
    auto c = b.node("Conv", {x, b.random_constant("w", {16, 3, 3, 3}), b.random_constant("b", {16})},
                    [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); a.set("group", std::int64_t{2}); });
    auto y = b.node(act, {c}, [&](g::Attributes& a) {
      if (act == "LeakyRelu") a.set("alpha", 0.1f);
      if (act == "Clip") { a.set("min", -0.5f); a.set("max", 0.75f); }
    });
    b.output(y);
    auto r = compare_with_reference(std::move(b.graph), kTol);
    EXPECT_EQ(r.stats.dispatches, 1);
  }
}

TEST_F(VulkanOps, PoolRandom) {
  VKFUSE_REQUIRE_VULKAN();
  std::mt19937 r(9);
  for (int trial = 0; trial < 24; ++trial) {
    const bool is_max = trial % 2 == 0;
    const std::int64_t KH = rnd(r, 1, 4), KW = rnd(r, 1, 4), SH = rnd(r, 1, 3), SW = rnd(r, 1, 3);
    const I64 pads = {rnd(r, 0, KH - 1), rnd(r, 0, KW - 1), rnd(r, 0, KH - 1), rnd(r, 0, KW - 1)};
    const std::int64_t ceil_mode = rnd(r, 0, 1), cip = rnd(r, 0, 1);
    const std::int64_t dil = is_max ? rnd(r, 1, 2) : 1;
    const std::int64_t H = (KH - 1) * dil + 1 + rnd(r, 0, 9), W = (KW - 1) * dil + 1 + rnd(r, 0, 9);
    SCOPED_TRACE("trial " + std::to_string(trial));
    GraphBuilder b(static_cast<unsigned>(trial));
    auto x = b.input("x", {rnd(r, 1, 2), rnd(r, 1, 5), H, W});
    auto y = b.node(is_max ? "MaxPool" : "AveragePool", {x}, [&](g::Attributes& a) {
      a.set("kernel_shape", I64{KH, KW});
      a.set("strides", I64{SH, SW});
      a.set("pads", pads);
      a.set("ceil_mode", ceil_mode);
      if (is_max) a.set("dilations", I64{dil, dil});
      else a.set("count_include_pad", cip);
    });
    b.output(y);
    compare_with_reference(std::move(b.graph), kTol);
  }
}

TEST_F(VulkanOps, GlobalAveragePoolAnd1DPool) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(10);
  auto x = b.input("x", {2, 5, 7, 9});
  b.output(b.node("GlobalAveragePool", {x}));
  auto x1 = b.input("x1", {1, 3, 17});
  b.output(b.node("MaxPool", {x1}, [](g::Attributes& a) {
    a.set("kernel_shape", I64{3});
    a.set("strides", I64{2});
    a.set("pads", I64{1, 1});
  }));
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, GemmVariants) {
  VKFUSE_REQUIRE_VULKAN();
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int cshape = 0; cshape < 5; ++cshape)
        for (int bconst = 0; bconst < 2; ++bconst) {
          SCOPED_TRACE("ta" + std::to_string(ta) + " tb" + std::to_string(tb) + " c" + std::to_string(cshape) +
                       " bconst" + std::to_string(bconst));
          const std::int64_t M = 3, K = 37, N = 11;
          GraphBuilder b(static_cast<unsigned>(ta * 100 + tb * 10 + cshape));
          auto a = b.input("a", ta ? g::Shape{K, M} : g::Shape{M, K});
          const g::Shape bs = tb ? g::Shape{N, K} : g::Shape{K, N};
          auto bv = bconst ? b.random_constant("b", bs) : b.input("b", bs);
          std::vector<g::ValueId> ins = {a, bv};
          const std::vector<g::Shape> cs = {{}, {N}, {1, N}, {M, 1}, {M, N}};
          if (cshape > 0) ins.push_back(b.random_constant("c", cs[static_cast<std::size_t>(cshape)]));
          auto y = b.node("Gemm", ins, [&](g::Attributes& at) {
            at.set("transA", std::int64_t{ta});
            at.set("transB", std::int64_t{tb});
            at.set("alpha", 0.75f);
            at.set("beta", 1.5f);
          });
          b.output(b.node("Relu", {y}));
          compare_with_reference(std::move(b.graph), kTol);
        }
}

TEST_F(VulkanOps, MatMulBroadcast) {
  VKFUSE_REQUIRE_VULKAN();
  const std::vector<std::pair<g::Shape, g::Shape>> cases = {
      {{5, 7}, {7, 3}}, {{2, 1, 5, 7}, {3, 7, 4}}, {{7}, {7, 3}}, {{4, 7}, {7}}, {{2, 3, 4, 5}, {5, 6}}};
  for (const auto& [as, bs] : cases) {
    GraphBuilder b(11);
    auto a = b.input("a", as);
    auto bb = b.input("b", bs);
    b.output(b.node("MatMul", {a, bb}));
    compare_with_reference(std::move(b.graph), kTol);
  }
}

TEST_F(VulkanOps, BinaryBroadcast) {
  VKFUSE_REQUIRE_VULKAN();
  const std::vector<std::pair<g::Shape, g::Shape>> cases = {
      {{2, 3, 4, 5}, {2, 3, 4, 5}}, {{2, 3, 4, 5}, {3, 1, 1}}, {{1, 3, 1, 5}, {2, 1, 4, 1}}, {{4, 5}, {}}, {{7}, {3, 1}}};
  int i = 0;
  for (const char* op : {"Add", "Sub", "Mul", "Div"})
    for (const auto& [as, bs] : cases) {
      SCOPED_TRACE(std::string(op) + " case " + std::to_string(i++));
      GraphBuilder b(12);
      auto a = b.input("a", as);
      auto c = std::string(op) == "Div" ? b.positive_constant("c", bs) : b.random_constant("c", bs);
      b.output(b.node(op, {a, c}));
      b.output(b.node(op, {c, a}));
      compare_with_reference(std::move(b.graph), kTol);
    }
}

TEST_F(VulkanOps, UnaryActivations) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(13);
  auto x = b.input("x", {2, 3, 5, 7});
  b.output(b.node("Relu", {x}));
  b.output(b.node("LeakyRelu", {x}, [](g::Attributes& a) { a.set("alpha", 0.2f); }));
  b.output(b.node("Sigmoid", {x}));
  b.output(b.node("HardSigmoid", {x}, [](g::Attributes& a) { a.set("alpha", 0.3f); a.set("beta", 0.4f); }));
  b.output(b.node("HardSwish", {x}));
  b.output(b.node("Clip", {x, b.graph.add_constant("lo", g::Tensor::scalar_f32(-0.3f)),
                           b.graph.add_constant("hi", g::Tensor::scalar_f32(0.6f))}));
  b.output(b.node("Clip", {x}, [](g::Attributes& a) { a.set("max", 0.1f); }));
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, StandaloneBatchNormAndSoftmax) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(14);
  auto x = b.input("x", {2, 6, 5, 3});
  auto bn = b.node("BatchNormalization", {x, b.positive_constant("s", {6}), b.random_constant("bb", {6}),
                                          b.random_constant("m", {6}), b.positive_constant("v", {6})},
                   [](g::Attributes& a) { a.set("epsilon", 1e-3f); });
  b.output(b.node("Relu", {bn}));
  b.output(b.node("Softmax", {x}, [](g::Attributes& a) { a.set("axis", std::int64_t{1}); }));
  b.output(b.node("Softmax", {x}));
  compare_with_reference(std::move(b.graph), kTol);
  GraphBuilder b11(15);
  b11.graph.opset = 11;
  auto x11 = b11.input("x", {3, 4, 5});
  b11.output(b11.node("Softmax", {x11}));
  compare_with_reference(std::move(b11.graph), kTol);
}

TEST_F(VulkanOps, ConcatInPlaceAndCopied) {
  VKFUSE_REQUIRE_VULKAN();
  {  // axis 1, batch 1: producers write into the output's channel ranges
    GraphBuilder b(16);
    auto x = b.input("x", {1, 4, 9, 9});
    auto c1 = b.node("Conv", {x, b.random_constant("w1", {5, 4, 1, 1})});
    auto c2 = b.node("Conv", {x, b.random_constant("w2", {3, 4, 3, 3})}, [](g::Attributes& a) {
      a.set("pads", I64{1, 1, 1, 1});
    });
    auto p = b.node("MaxPool", {x}, [](g::Attributes& a) {
      a.set("kernel_shape", I64{3, 3});
      a.set("pads", I64{1, 1, 1, 1});
    });
    auto cat = b.node("Concat", {c1, c2, p, x}, [](g::Attributes& a) { a.set("axis", std::int64_t{1}); });
    auto cat2 = b.node("Concat", {cat, b.node("Relu", {c1})}, [](g::Attributes& a) { a.set("axis", std::int64_t{1}); });
    b.output(cat2);
    b.output(c1);
    auto r = compare_with_reference(std::move(b.graph), kTol);
    // Only the graph input x needs a copy kernel.
    EXPECT_EQ(r.stats.dispatches, 5);
  }
  {  // batch 2 and other axes: copies
    GraphBuilder b(17);
    auto x = b.input("x", {2, 3, 4, 5});
    auto y = b.input("y", {2, 3, 2, 5});
    auto rx = b.node("Relu", {x});
    b.output(b.node("Concat", {rx, x}, [](g::Attributes& a) { a.set("axis", std::int64_t{1}); }));
    b.output(b.node("Concat", {x, y, x}, [](g::Attributes& a) { a.set("axis", std::int64_t{-2}); }));
    b.output(b.node("Concat", {x, b.random_constant("k", {1, 3, 4, 5})}, [](g::Attributes& a) { a.set("axis", std::int64_t{0}); }));
    compare_with_reference(std::move(b.graph), kTol);
  }
}

TEST_F(VulkanOps, DataMovement) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(18);
  auto x = b.input("x", {2, 3, 4, 5});
  b.output(b.node("Transpose", {x}, [](g::Attributes& a) { a.set("perm", I64{0, 2, 3, 1}); }));
  b.output(b.node("Transpose", {x}));
  for (const char* mode : {"constant", "reflect", "edge"}) {
    b.output(b.node("Pad", {x, b.ints("pads", {0, 1, 2, 3, 0, 2, 1, 3}), b.graph.add_constant("v", g::Tensor::scalar_f32(1.5f))},
                    [&](g::Attributes& a) { a.set("mode", std::string(mode)); }));
  }
  b.output(b.node("Pad", {x, b.ints("crop", {0, 0, -1, 1, 0, -1, 0, -2})}));
  b.output(b.node("Gather", {x, b.graph.add_constant("i", g::Tensor::from_i64({2, 2}, {2, -1, 0, 0}))},
                  [](g::Attributes& a) { a.set("axis", std::int64_t{2}); }));
  b.output(b.node("Gather", {x, b.graph.add_constant("j", g::Tensor::from_i64({}, {1}))}));
  auto f = b.node("Flatten", {x}, [](g::Attributes& a) { a.set("axis", std::int64_t{2}); });
  b.output(b.node("Relu", {f}));
  auto rs = b.node("Reshape", {b.node("Sigmoid", {x}), b.ints("shape", {6, -1})});
  b.output(b.node("Unsqueeze", {rs, b.ints("axes", {0})}));
  b.output(b.node("Squeeze", {b.node("Unsqueeze", {x, b.ints("ax", {1})}), b.ints("ax2", {1})}));
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, UnaryMath) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(19);
  auto x = b.input("x", {2, 3, 5, 7});
  auto pos = b.node("Abs", {x});
  for (const char* op : {"Sqrt", "Log", "Reciprocal"}) b.output(b.node(op, {pos}));
  for (const char* op : {"Exp", "Erf", "Tanh", "Softplus", "Softsign", "Neg", "Ceil", "Floor", "Elu", "Selu"})
    b.output(b.node(op, {x}));
  b.output(b.node("Elu", {x}, [](g::Attributes& a) { a.set("alpha", 0.5f); }));
  // GELU as timm exports it: x * 0.5 * (1 + erf(x / sqrt(2))).
  auto e = b.node("Erf", {b.node("Div", {x, b.graph.add_constant("r2", g::Tensor::scalar_f32(1.4142135f))})});
  auto one = b.node("Add", {e, b.graph.add_constant("one", g::Tensor::scalar_f32(1.f))});
  b.output(b.node("Mul", {b.node("Mul", {x, one}), b.graph.add_constant("half", g::Tensor::scalar_f32(0.5f))}));
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, BinaryMathAndVariadic) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(20);
  auto x = b.input("x", {2, 3, 4, 5});
  auto y = b.input("y", {3, 1, 5});
  for (const char* op : {"Max", "Min", "Mean", "Sum"}) {
    b.output(b.node(op, {x, y}));
    b.output(b.node(op, {y}));
  }
  // Three to seven inputs, broadcast (one kernel each).
  auto z = b.input("z", {4, 1});
  for (const char* op : {"Max", "Min", "Mean", "Sum"}) {
    b.output(b.node(op, {y, x, z}));
    b.output(b.node(op, {x, y, z, x, y, z, x}));
  }
  b.output(b.node("PRelu", {x, b.random_constant("slope", {3, 1, 1})}));
  // Pow: a float exponent tensor, and the constant scalars LayerNorm exports
  // (int64 too), on negative bases.
  b.output(b.node("Pow", {b.node("Abs", {x}), y}));
  b.output(b.node("Pow", {x, b.graph.add_constant("two", g::Tensor::scalar_f32(2.f))}));
  b.output(b.node("Pow", {x, b.graph.add_constant("three", g::Tensor::from_i64({}, {3}))}));
  b.output(b.node("Pow", {b.node("Abs", {x}), b.graph.add_constant("half", g::Tensor::scalar_f32(0.5f))}));
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, Reductions) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(21);
  auto x = b.input("x", {2, 3, 4, 5});
  const std::vector<std::pair<I64, std::int64_t>> shapes = {
      {{2, 3}, 1}, {{-1}, 1}, {{1}, 0}, {{0, 1}, 1}, {{1, 2, 3}, 0}, {{}, 1}};
  for (const char* op : {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceSumSquare"})
    for (const auto& [axes, keep] : shapes) {
      const I64 ax = axes;
      const std::int64_t kd = keep;
      if (std::string(op) == "ReduceSum") {  // opset 13: axes are input 1
        b.output(ax.empty() ? b.node(op, {x}, [&](g::Attributes& a) { a.set("keepdims", kd); })
                            : b.node(op, {x, b.ints("axes", ax)}, [&](g::Attributes& a) { a.set("keepdims", kd); }));
      } else {
        b.output(b.node(op, {x}, [&](g::Attributes& a) {
          if (!ax.empty()) a.set("axes", ax);
          a.set("keepdims", kd);
        }));
      }
    }
  b.output(b.node("ReduceLogSum", {b.node("Abs", {x})}, [](g::Attributes& a) { a.set("axes", I64{3}); }));
  // LogSumExp of large values (exp overflows float32 past 88) and of all axes.
  auto big = b.node("Mul", {x, b.graph.add_constant("hundred", g::Tensor::from_f32({}, {100.f}))});
  b.output(b.node("ReduceLogSumExp", {big}, [](g::Attributes& a) { a.set("axes", I64{2, 3}); }));
  b.output(b.node("ReduceLogSumExp", {x}, [](g::Attributes& a) { a.set("keepdims", std::int64_t{0}); }));
  // Only a size-1 axis: still L2's |x|.
  auto y = b.input("y", {3, 1, 4});
  b.output(b.node("ReduceL2", {y}, [](g::Attributes& a) { a.set("axes", I64{1}); }));
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, SliceSplitExpandTileDepthSpace) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(22);
  auto x = b.input("x", {2, 8, 6, 5});
  b.output(b.node("Slice", {x, b.ints("s0", {1, 0}), b.ints("e0", {7, 100}), b.ints("a0", {1, 3}), b.ints("p0", {2, 2})}));
  b.output(b.node("Slice", {x, b.ints("s1", {-1, 4}), b.ints("e1", {-100, 0}), b.ints("a1", {2, 1}), b.ints("p1", {-2, -1})}));
  b.output(b.node("Slice", {x, b.ints("s2", {0}), b.ints("e2", {1})}));
  {  // Split into 3 + 5 channels
    g::Node n;
    n.op_type = "Split";
    n.name = "split";
    n.inputs = {x, b.ints("parts", {3, 5})};
    n.attrs.set("axis", std::int64_t{1});
    n.outputs = {b.graph.add_value("split_a"), b.graph.add_value("split_b")};
    b.graph.nodes.push_back(n);
    b.output(b.node("Relu", {n.outputs[0]}));
    b.output(n.outputs[1]);
  }
  auto c = b.input("c", {3, 1, 5});
  b.output(b.node("Expand", {c, b.ints("shape", {2, 1, 4, 1})}));
  b.output(b.node("Tile", {c, b.ints("reps", {2, 3, 1})}));
  for (const char* mode : {"DCR", "CRD"})
    b.output(b.node("DepthToSpace", {x}, [&](g::Attributes& a) {
      a.set("blocksize", std::int64_t{2});
      a.set("mode", std::string(mode));
    }));
  b.output(b.node("SpaceToDepth", {b.input("z", {2, 3, 6, 4})},
                  [](g::Attributes& a) { a.set("blocksize", std::int64_t{2}); }));
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, LayerNormalization) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(25);
  auto x = b.input("x", {2, 7, 6, 40});
  b.output(b.node("LayerNormalization", {x, b.random_constant("g", {40}), b.random_constant("bb", {40})},
                  [](g::Attributes& a) { a.set("epsilon", 1e-6f); }));
  b.output(b.node("LayerNormalization", {x, b.random_constant("g2", {6, 40})}, [](g::Attributes& a) {
    a.set("axis", std::int64_t{2});
  }));
  compare_with_reference(std::move(b.graph), kTol);
}

// LayerNormalization's optional Mean and InvStdDev outputs (the second alone too).
TEST_F(VulkanOps, LayerNormalizationStatistics) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(26);
  auto x = b.input("x", {3, 5, 12});
  b.output(b.node("LayerNormalization", {x, b.random_constant("g", {12})}));
  for (int stats : {2, 1}) {
    auto& n = b.graph.nodes.back();
    const g::ValueId mean = b.graph.add_value(n.name + "_mean"), inv = b.graph.add_value(n.name + "_invstd");
    n.outputs.push_back(stats == 2 ? mean : g::kNoValue);
    n.outputs.push_back(inv);
    if (stats == 2) b.output(mean);
    b.output(inv);
    if (stats == 2)
      b.output(b.node("LayerNormalization", {x, b.random_constant("g2", {5, 12})},
                      [](g::Attributes& a) { a.set("axis", std::int64_t{-2}); }));
  }
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, InstanceNormalizationAndLrn) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(27);
  auto x = b.input("x", {2, 6, 7, 9});
  b.output(b.node("InstanceNormalization", {x, b.random_constant("s", {6}), b.random_constant("c", {6})},
                  [](g::Attributes& a) { a.set("epsilon", 1e-3f); }));
  auto z = b.input("z", {1, 3, 17});  // 1-D spatial
  b.output(b.node("InstanceNormalization", {z, b.random_constant("s3", {3}), b.random_constant("c3", {3})}));
  for (std::int64_t size : {1, 2, 3, 5, 8})  // even sizes reach one channel further up than down
    b.output(b.node("LRN", {x}, [&](g::Attributes& a) {
      a.set("size", size);
      a.set("alpha", 0.01f * static_cast<float>(size));
      a.set("beta", 0.6f);
      a.set("bias", 2.f);
    }));
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, ConvTransposeRandom) {
  VKFUSE_REQUIRE_VULKAN();
  std::mt19937 r(28);
  for (int trial = 0; trial < 16; ++trial) {
    const std::int64_t groups = trial % 4 == 3 ? rnd(r, 2, 3) : 1;
    const std::int64_t C = groups * rnd(r, 1, 4), MG = rnd(r, 1, 5);
    const std::int64_t KH = rnd(r, 1, 4), KW = rnd(r, 1, 4), SH = rnd(r, 1, 3), SW = rnd(r, 1, 3);
    const std::int64_t DH = rnd(r, 1, 2), DW = rnd(r, 1, 2);
    const std::int64_t H = rnd(r, 2, 7), W = rnd(r, 2, 9);
    const I64 out_pad = {rnd(r, 0, std::max(SH, DH) - 1), rnd(r, 0, std::max(SW, DW) - 1)};
    const I64 pads = {rnd(r, 0, KH / 2), rnd(r, 0, KW / 2), rnd(r, 0, KH / 2), rnd(r, 0, KW / 2)};
    SCOPED_TRACE("trial " + std::to_string(trial));
    GraphBuilder b(static_cast<unsigned>(100 + trial));
    auto x = b.input("x", {rnd(r, 1, 2), C, H, W});
    std::vector<g::ValueId> ins = {x, b.random_constant("w", {C, MG, KH, KW})};
    if (trial % 2 == 0) ins.push_back(b.random_constant("b", {MG * groups}));
    b.output(b.node("ConvTranspose", ins, [&](g::Attributes& a) {
      a.set("strides", I64{SH, SW});
      a.set("dilations", I64{DH, DW});
      a.set("group", groups);
      if (trial % 5 == 4) {
        // output_shape past the full scatter: negative pads.
        a.set("output_shape", I64{SH * (H - 1) + (KH - 1) * DH + 1 + 2, SW * (W - 1) + (KW - 1) * DW + 1 + 1});
      } else {
        a.set("pads", pads);
        a.set("output_padding", out_pad);
      }
    }));
    compare_with_reference(std::move(b.graph), kTol);
  }
  // 1-D and 3-D.
  GraphBuilder b(29);
  b.output(b.node("ConvTranspose", {b.input("x1", {1, 3, 8}), b.random_constant("w1", {3, 2, 3})},
                  [](g::Attributes& a) { a.set("strides", I64{2}); }));
  b.output(b.node("ConvTranspose", {b.input("x3", {1, 2, 3, 4, 3}), b.random_constant("w3", {2, 3, 2, 3, 2}),
                                    b.random_constant("b3", {3})},
                  [](g::Attributes& a) { a.set("strides", I64{2, 1, 2}); }));
  compare_with_reference(std::move(b.graph), kTol);
}

TEST_F(VulkanOps, Resize) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(23);
  auto x = b.input("x", {1, 3, 5, 7});
  auto none = b.graph.add_constant("roi", g::Tensor::from_f32({0}, {}));
  auto scales = b.graph.add_constant("scales", g::Tensor::from_f32({4}, {1, 1, 2, 2}));
  auto down = b.graph.add_constant("down", g::Tensor::from_f32({4}, {1, 1, 0.6f, 0.5f}));
  auto empty = b.graph.add_constant("noscales", g::Tensor::from_f32({0}, {}));
  for (const char* coord : {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"})
    for (const char* mode : {"nearest", "linear"})
      for (auto sc : {scales, down}) {
        b.output(b.node("Resize", {x, none, sc}, [&](g::Attributes& a) {
          a.set("mode", std::string(mode));
          a.set("coordinate_transformation_mode", std::string(coord));
        }));
      }
  // Bicubic (torch's coefficient too, and exclude_outside), and nearest with
  // TensorFlow's half-pixel coordinates.
  for (const char* coord : {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"})
    for (auto sc : {scales, down})
      for (int variant = 0; variant < 2; ++variant)
        b.output(b.node("Resize", {x, none, sc}, [&](g::Attributes& a) {
          a.set("mode", std::string("cubic"));
          a.set("coordinate_transformation_mode", std::string(coord));
          if (variant == 1) {
            a.set("cubic_coeff_a", -0.5f);
            a.set("exclude_outside", std::int64_t{1});
          }
        }));
  b.output(b.node("Resize", {x, none, scales}, [&](g::Attributes& a) {
    a.set("coordinate_transformation_mode", std::string("tf_half_pixel_for_nn"));
  }));
  for (const char* nearest : {"round_prefer_ceil", "floor", "ceil"})
    b.output(b.node("Resize", {x, none, empty, b.ints("sizes", {1, 3, 9, 12})}, [&](g::Attributes& a) {
      a.set("nearest_mode", std::string(nearest));
      a.set("coordinate_transformation_mode", std::string("asymmetric"));
    }));
  compare_with_reference(std::move(b.graph), kTol);
}

// A feature pyramid's top-down step as HRNet, FPN and LR-ASPP export it:
// lateral + Resize(top), then Relu. The Add runs in the Resize's kernel
// (either operand order; nearest, bilinear and bicubic): one dispatch for
// the Resize, the Add and its Relu. A Resize whose output is also a graph
// output, or one followed by a Relu of its own, keeps the Add separate.
TEST_F(VulkanOps, ResizeAddRunsInOneKernel) {
  VKFUSE_REQUIRE_VULKAN();
  struct Case {
    const char* mode;
    const char* coord;
    bool resize_first, resize_relu, resized_output;
  };
  for (const Case& c : {Case{"nearest", "asymmetric", false, false, false}, Case{"linear", "align_corners", true, false, false},
                        Case{"cubic", "pytorch_half_pixel", false, false, false},
                        Case{"linear", "half_pixel", false, true, false}, Case{"nearest", "asymmetric", true, false, true}}) {
    SCOPED_TRACE(std::string(c.mode) + " " + c.coord + (c.resize_first ? " resize first" : "") +
                 (c.resize_relu ? " resize relu" : "") + (c.resized_output ? " resized output" : ""));
    GraphBuilder b(25);
    auto top = b.input("top", {2, 6, 4, 5});
    auto lateral = b.input("lateral", {2, 6, 8, 10});
    auto none = b.graph.add_constant("roi", g::Tensor::from_f32({0}, {}));
    auto scales = b.graph.add_constant("scales", g::Tensor::from_f32({4}, {1, 1, 2, 2}));
    auto up = b.node("Resize", {top, none, scales}, [&](g::Attributes& a) {
      a.set("mode", std::string(c.mode));
      a.set("coordinate_transformation_mode", std::string(c.coord));
    });
    if (c.resize_relu) up = b.node("Relu", {up});
    auto sum = c.resize_first ? b.node("Add", {up, lateral}) : b.node("Add", {lateral, up});
    b.output(b.node("Relu", {sum}));
    if (c.resized_output) b.output(up);
    auto r = compare_with_reference(std::move(b.graph), kTol);
    // A Relu between the Resize and the Add is a kernel of its own.
    const bool fused = !c.resized_output && !c.resize_relu;
    EXPECT_EQ(r.stats.dispatches, fused ? 1 : c.resize_relu ? 3 : 2);
    EXPECT_EQ(r.load.fused_adds, fused ? 1 : 0);
    if (fused) {
      ASSERT_EQ(r.kernels.size(), 1u);
      EXPECT_NE(r.kernels[0].variant.find("_res_Relu"), std::string::npos) << r.kernels[0].variant;
    }
  }
}

// Weights past the 128 MiB every device's storage buffers address: a
// VGG-class fully connected layer as a Conv (bias, a fused residual Add, two
// images) and as a Gemm (a C) is split over its outputs into kernels that
// each fit, and computes what the reference does; a grouped Conv cannot be
// split and stays on the host, saying why.
TEST_F(VulkanOps, OversizedWeightsAreSplit) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(24);
  auto x = b.input("x", {2, 1024, 4, 4});
  auto conv = b.node("Conv", {x, b.random_constant("big", {2048, 1024, 4, 4}, 0.02f),  // 128 MiB
                              b.random_constant("bias", {2048})});
  b.output(b.node("Add", {conv, b.input("r", {2, 2048, 1, 1})}));
  auto v = b.input("v", {3, 8200});
  b.output(b.node("Gemm", {v, b.random_constant("fc", {8200, 4096}, 0.02f), b.random_constant("c", {4096})},
                  [](g::Attributes& a) { a.set("beta", 0.5f); }));  // 128.1 MiB
  const auto r = compare_with_reference(std::move(b.graph), kTol);
  std::vector<std::string> parts;
  for (const auto& k : r.kernels) parts.push_back(k.nodes);
  ASSERT_EQ(parts.size(), 4u) << ::testing::PrintToString(parts);  // two ranges of each
  EXPECT_NE(parts[0].find("[channels 0..2016)"), std::string::npos) << parts[0];
  EXPECT_NE(parts[1].find("[channels 2016..2048)"), std::string::npos) << parts[1];
  EXPECT_NE(parts[3].find("[columns 4092..4096)"), std::string::npos) << parts[3];

  GraphBuilder grouped(30);
  auto gx = grouped.input("x", {1, 1024, 4, 4});
  grouped.output(grouped.node("Conv", {gx, grouped.graph.add_constant("w", g::Tensor(g::DType::f32, {4096, 512, 4, 4}))},
                              [](g::Attributes& a) { a.set("group", std::int64_t{2}); }));
  vkfuse::graph::infer_shapes(grouped.graph);
  const std::string why = vkfuse::codegen::spirv::unsupported_reason(grouped.graph, grouped.graph.nodes[0]);
  EXPECT_NE(why.find("128 MiB"), std::string::npos) << why;
}

// The reductions as a GPU gets them (one workgroup per row, lanes folding
// with subgroup arithmetic where the device has it, else in shared memory;
// both), forced on lavapipe: rows shorter and longer than a workgroup,
// strided rows (Softmax and Reduce over a middle axis).
class RowGroupReductions : public VulkanOps, public ::testing::WithParamInterface<bool> {};

TEST_P(RowGroupReductions, MatchTheReference) {
  VKFUSE_REQUIRE_VULKAN();
  const bool subgroups = GetParam();
  vkfuse::testing::ScopedLimits limits(subgroups ? "gpu_kernels=1" : "gpu_kernels=1,subgroup_ops=0");
  GraphBuilder b(31);
  auto x = b.input("x", {2, 5, 9, 31});
  auto big = b.input("big", {1, 3, 40, 50});  // planes of 2000: many elements per lane
  b.output(b.node("GlobalAveragePool", {x}));
  b.output(b.node("GlobalAveragePool", {big}));
  for (std::int64_t axis : {1, 3})
    b.output(b.node("Softmax", {x}, [&](g::Attributes& a) { a.set("axis", axis); }));
  b.output(b.node("LayerNormalization", {big, b.random_constant("g", {40, 50})},
                  [](g::Attributes& a) { a.set("axis", std::int64_t{2}); }));
  b.output(b.node("InstanceNormalization", {big, b.random_constant("s", {3}), b.random_constant("c", {3})}));
  for (const char* op : {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp"})
    for (const I64& axes : {I64{3}, I64{1}, I64{2, 3}})
      b.output(b.node(op, {op == std::string("ReduceProd") ? b.node("Sigmoid", {x}) : x},
                      [&](g::Attributes& a) { a.set("axes", axes); }));
  const auto r = compare_with_reference(std::move(b.graph), kTol);
  int rows = 0;
  for (const auto& k : r.kernels) rows += k.variant.find("_rows") != std::string::npos ? 1 : 0;
  EXPECT_EQ(rows, 2 + 2 + 2 + 6 * 3) << "every reduction but LogSumExp runs one workgroup per row";
  const auto devices = vkfuse::list_devices();
  const bool lavapipe = !devices.empty() && devices[0].type == "cpu";  // it has subgroup arithmetic
  if (!subgroups) {
    EXPECT_EQ(r.load.subgroup_folds, 0);
  } else if (lavapipe) {
    EXPECT_EQ(r.load.subgroup_folds, rows) << "every row kernel folds with subgroup arithmetic";
  }
}

INSTANTIATE_TEST_SUITE_P(SubgroupsOrSharedMemory, RowGroupReductions, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Subgroups" : "SharedMemory"; });

// Convolutions as a GPU gets them (8x4 register blocks, 4x4 over 9 taps; a
// layer with too few output tiles to fill the device splits its input
// channels over lanes of a workgroup that add their partial sums in shared
// memory; a Gemm or MatMul with few outputs, one workgroup per output), forced on
// lavapipe: dense, pointwise, strided 7x7, grouped, a residual Add, a
// squeeze-and-excitation gate, batch 2, tile counts that leave the last
// workgroup part empty. On a CPU device's own shape (16x8, no split) the
// same convolutions stay unsplit.
TEST_F(VulkanOps, GpuConvolutionsAndGemmsSplitTheirSums) {
  VKFUSE_REQUIRE_VULKAN();
  auto build = [] {
    GraphBuilder b(32);
    auto x = b.input("x", {2, 64, 13, 11});
    auto pad = [](std::int64_t p) { return [p](g::Attributes& a) { a.set("pads", I64{p, p, p, p}); }; };
    auto c1 = b.node("Relu", {b.node("Conv", {x, b.random_constant("w1", {24, 64, 3, 3}, 0.1f),
                                               b.random_constant("b1", {24})}, pad(1))});
    b.output(b.node("Add", {b.node("Conv", {c1, b.random_constant("w2", {64, 24, 3, 3}, 0.1f)}, pad(1)), x}));
    b.output(b.node("Conv", {x, b.random_constant("w3", {70, 64, 1, 1}, 0.1f), b.random_constant("b3", {70})}));
    b.output(b.node("Conv", {b.input("img", {1, 16, 29, 31}), b.random_constant("w4", {8, 16, 7, 7}, 0.1f)},
                    [](g::Attributes& a) { a.set("pads", I64{3, 3, 3, 3}); a.set("strides", I64{2, 2}); }));
    b.output(b.node("Conv", {x, b.random_constant("w5", {32, 32, 3, 3}, 0.1f)}, [](g::Attributes& a) {
      a.set("pads", I64{1, 1, 1, 1});
      a.set("group", std::int64_t{2});
    }));
    auto gate = b.node("Sigmoid", {b.node("GlobalAveragePool", {x})});
    b.output(b.node("Conv", {b.node("Mul", {x, gate}), b.random_constant("w6", {16, 64, 1, 1}, 0.1f)}));
    // Dot products long enough to share a workgroup: a classifier's Gemm
    // (a C, transposed B) and a batched MatMul.
    b.output(b.node("Gemm", {b.input("v", {3, 300}), b.random_constant("fc", {50, 300}, 0.1f), b.random_constant("c", {50})},
                    [](g::Attributes& a) { a.set("transB", std::int64_t{1}); }));
    b.output(b.node("MatMul", {b.input("p", {2, 5, 260}), b.input("q", {2, 260, 7})}));
    return std::move(b.graph);
  };
  auto split = [](const vkfuse::testing::CompareResult& r) {
    std::vector<std::string> out;
    for (const auto& k : r.kernels)
      if (k.variant.find("_k") != std::string::npos) out.push_back(k.variant);
    return out;
  };
  {
    vkfuse::testing::ScopedLimits limits("gpu_kernels=1");
    const auto r = compare_with_reference(build(), kTol);
    const auto s = split(r);
    EXPECT_EQ(s.size(), 6u) << "every convolution splits: " << ::testing::PrintToString(s);
    for (const auto& v : s)
      EXPECT_TRUE(v.find("_ob8_px4") != std::string::npos || v.find("7x7_s2_ob4_px4") != std::string::npos) << v;
    int rows = 0;
    for (const auto& k : r.kernels) rows += k.variant == "gemm_rows" || k.variant == "matmul_rows";
    EXPECT_EQ(rows, 2) << "one workgroup per dot product";
  }
  const auto devices = vkfuse::list_devices();
  if (!devices.empty() && devices[0].type == "cpu" && !std::getenv("VKFUSE_DEVICE_LIMITS")) {
    const auto r = compare_with_reference(build(), kTol);
    EXPECT_TRUE(split(r).empty()) << ::testing::PrintToString(split(r));
    for (const auto& k : r.kernels) EXPECT_EQ(k.variant.find("_rows"), std::string::npos) << k.variant;
  }
}

// A profile's tuned kernel shape (ExecutorOptions::kernel_shape) is what the
// lowering emits, and the kernels stay correct with it: the register blocks
// (spatial and 1x1 apart) on any device, the split threshold where the
// device splits at all.
TEST_F(VulkanOps, TunedKernelShapesAreTheKernelsThatRun) {
  VKFUSE_REQUIRE_VULKAN();
  auto build = [] {
    GraphBuilder b(41);
    auto x = b.input("x", {1, 48, 13, 11});
    b.output(b.node("Relu", {b.node("Conv", {x, b.random_constant("w1", {40, 48, 3, 3}, 0.1f),
                                             b.random_constant("b1", {40})},
                                    [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); })}));
    b.output(b.node("Conv", {x, b.random_constant("w2", {24, 48, 1, 1}, 0.1f)}));
    return std::move(b.graph);
  };
  auto convs = [](const vkfuse::testing::CompareResult& r) {
    std::vector<std::string> out;
    for (const auto& k : r.kernels)
      if (k.variant.rfind("conv", 0) == 0) out.push_back(k.variant);
    return out;
  };
  const bool gpu_regime = runs_gpu_kernels();
  vkfuse::planner::KernelShape block;
  block.gpu_kernels = gpu_regime;
  block.conv_ocb = 8;
  block.conv_opx = 2;
  auto r = compare_with_reference(build(), kTol, false, 7, true, block);
  ASSERT_EQ(convs(r).size(), 2u);
  for (const auto& v : convs(r)) EXPECT_NE(v.find("_ob8_px2"), std::string::npos) << v;
  block.pointwise_ocb = 4;
  block.pointwise_opx = 4;  // the 1x1 convolution's own block; the 3x3 keeps 8x2
  r = compare_with_reference(build(), kTol, false, 7, true, block);
  ASSERT_EQ(convs(r).size(), 2u);
  EXPECT_NE(convs(r)[0].find("conv3x3_s1_ob8_px2"), std::string::npos) << convs(r)[0];
  EXPECT_NE(convs(r)[1].find("conv1x1_ob4_px4"), std::string::npos) << convs(r)[1];

  // A shape tuned for the other regime is not applied.
  vkfuse::planner::KernelShape other = block;
  other.gpu_kernels = !gpu_regime;
  for (const auto& v : convs(compare_with_reference(build(), kTol, false, 7, true, other)))
    EXPECT_EQ(v.find("_ob8_px2"), std::string::npos) << v;

  vkfuse::testing::ScopedLimits limits("gpu_kernels=1");
  vkfuse::planner::KernelShape never, always;
  never.gpu_kernels = always.gpu_kernels = true;
  never.conv_fill = 0;
  always.conv_fill = std::int64_t{1} << 30;
  for (const auto& v : convs(compare_with_reference(build(), kTol, false, 7, true, never)))
    EXPECT_EQ(v.find("_k"), std::string::npos) << "fill 0 never splits: " << v;
  for (const auto& v : convs(compare_with_reference(build(), kTol, false, 7, true, always)))
    EXPECT_NE(v.find("_k"), std::string::npos) << "a huge fill splits every layer: " << v;
}

// 1x1 convolutions as GEMMs tiled through shared memory (a tuned kernel
// shape turns them on): channel and pixel counts that fill no tile exactly,
// input channels not a multiple of the 16 a step takes, batches, bias or
// none, a fused activation, a residual Add, a squeeze-and-excitation gate
// (with and without a residual). The squeeze's own 1x1s on pooled maps keep
// the register-blocked kernel.
TEST_F(VulkanOps, PointwiseConvolutionsTiledThroughSharedMemory) {
  VKFUSE_REQUIRE_VULKAN();
  vkfuse::planner::KernelShape tiled;
  tiled.gpu_kernels = runs_gpu_kernels();
  tiled.pointwise_tiled = true;
  struct Case {
    std::int64_t n, c, m, h, w;
    bool bias, relu, residual, gate;
  };
  for (const Case& c : {Case{1, 37, 70, 13, 11, true, true, false, false}, Case{2, 20, 24, 9, 9, false, false, true, false},
                        Case{1, 64, 128, 8, 8, true, false, false, false}, Case{2, 16, 24, 9, 7, true, false, false, true},
                        Case{1, 16, 130, 5, 7, true, true, true, true}}) {
    SCOPED_TRACE("N" + std::to_string(c.n) + " C" + std::to_string(c.c) + " M" + std::to_string(c.m) + " " +
                 std::to_string(c.h) + "x" + std::to_string(c.w) + (c.bias ? " bias" : "") + (c.relu ? " relu" : "") +
                 (c.residual ? " residual" : "") + (c.gate ? " gate" : ""));
    GraphBuilder b(31);
    auto x = b.input("x", {c.n, c.c, c.h, c.w});
    if (c.gate) {
      auto pooled = b.node("GlobalAveragePool", {x});
      auto h = b.node("Relu", {b.node("Conv", {pooled, b.random_constant("w1", {4, c.c, 1, 1})})});
      x = b.node("Mul", {x, b.node("Sigmoid", {b.node("Conv", {h, b.random_constant("w2", {c.c, 4, 1, 1})})})});
    }
    std::vector<g::ValueId> ins = {x, b.random_constant("w", {c.m, c.c, 1, 1}, 0.2f)};
    if (c.bias) ins.push_back(b.random_constant("b", {c.m}));
    auto y = b.node("Conv", ins);
    if (c.residual) y = b.node("Add", {y, b.input("r", {c.n, c.m, c.h, c.w})});
    if (c.relu) y = b.node("Relu", {y});
    b.output(y);
    const auto r = compare_with_reference(std::move(b.graph), kTol, false, 7, true, tiled);
    int tiled_kernels = 0;
    for (const auto& k : r.kernels) {
      const bool is_tiled = k.variant.rfind("conv1x1_tiled", 0) == 0;
      tiled_kernels += is_tiled;
      if (is_tiled) {
        EXPECT_EQ(k.variant.find("_res") != std::string::npos, c.residual) << k.variant;
        EXPECT_EQ(k.variant.find("_gated") != std::string::npos, c.gate) << k.variant;
      }
    }
    EXPECT_EQ(tiled_kernels, 1);
  }
}

TEST_F(VulkanOps, ShadersAreCompiledOnce) {
  VKFUSE_REQUIRE_VULKAN();
  auto build = [] {
    GraphBuilder b(19);
    auto x = b.input("x", {1, 8, 10, 10});
    auto w = b.random_constant("w", {8, 8, 3, 3});
    auto y = b.node("Conv", {x, w}, [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); });
    auto z = b.node("Conv", {y, w}, [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); });
    b.output(z);
    return std::move(b.graph);
  };
  const auto before = vkfuse::codegen::spirv::compile_stats();
  compare_with_reference(build(), kTol);
  const auto mid = vkfuse::codegen::spirv::compile_stats();
  EXPECT_LE(mid.compiled + mid.disk_hits - before.compiled - before.disk_hits, 1);
  compare_with_reference(build(), kTol);
  const auto after = vkfuse::codegen::spirv::compile_stats();
  EXPECT_EQ(after.compiled, mid.compiled);
  EXPECT_EQ(after.disk_hits, mid.disk_hits);
}

// Convolutions of one kind over different maps and channel counts are one
// shader, their sizes pushed (codegen Defines::dim): each still computes its
// own layer, and the device compiles one pipeline for them.
TEST_F(VulkanOps, ConvolutionsOfOneKindShareAShader) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(23);
  auto x = b.input("x", {1, 8, 10, 12});
  auto conv = [&](g::ValueId in, std::int64_t c, std::int64_t pad, const char* w) {
    return b.node("Conv", {in, b.random_constant(w, {16, c, 3, 3}, 0.2f)},
                  [pad](g::Attributes& a) { a.set("pads", I64{pad, pad, pad, pad}); });
  };
  // 8 -> 16 and 16 -> 16 channels on 10x12, padded; 16 -> 16 without pads
  // (baked in: another shader) to 8x10; then padded again on 8x10.
  auto y = conv(conv(conv(x, 8, 1, "w1"), 16, 1, "w2"), 16, 0, "w3");
  b.output(conv(y, 16, 1, "w4"));
  const auto r = compare_with_reference(std::move(b.graph), kTol);
  EXPECT_EQ(r.kernels.size(), 4u);
  // Two shaders (padded, not padded) where no layer splits its channel sums
  // (lavapipe); with a GPU's caps (the discrete test mode) the first layer's
  // 8 input channels split over fewer lanes than the others' 16: three.
  // Baked sizes made four.
  EXPECT_EQ(r.load.shaders, runs_gpu_kernels() ? 3 : 2);
}

// The disk cache of SPIR-V: keyed by the compilers' versions as well as the
// source; a truncated, altered or old-format file is removed and rebuilt,
// never loaded. (No device needed.)
TEST(SpirvDiskCache, CorruptFilesAreRebuiltNotLoaded) {
  namespace sp = vkfuse::codegen::spirv;
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("vkfuse-spirv-cache-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const sp::CompileOptions opts{.optimize = true, .cache_dir = dir.string(), .memory_cache = false};
  const std::string glsl =
      "#version 450\nlayout(local_size_x = 1) in;\n"
      "layout(std430, binding = 0) buffer B { float v[]; };\nvoid main() { v[gl_GlobalInvocationID.x] *= 3.0; }\n";
  const std::string file = sp::cache_file(glsl, opts);
  EXPECT_NE(std::filesystem::path(file).filename().string(), sp::source_hash(glsl) + "o.spv");

  auto stats = sp::compile_stats();
  const std::vector<std::uint32_t> words = sp::compile_compute(glsl, opts);
  EXPECT_EQ(sp::compile_stats().compiled, stats.compiled + 1);
  ASSERT_TRUE(std::filesystem::exists(file));
  EXPECT_EQ(std::filesystem::file_size(file), (words.size() + 2) * 4);  // the module and its checksum

  stats = sp::compile_stats();
  EXPECT_EQ(sp::compile_compute(glsl, opts), words);
  EXPECT_EQ(sp::compile_stats().disk_hits, stats.disk_hits + 1);

  auto damage = [&](const char* how) {
    std::vector<char> bytes(std::filesystem::file_size(file));
    std::ifstream(file, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (std::string(how) == "truncate") bytes.resize(bytes.size() / 2 / 4 * 4);
    if (std::string(how) == "alter") bytes[bytes.size() / 2] ^= 0x10;
    if (std::string(how) == "old-format") bytes.resize(bytes.size() - 8);  // no checksum
    std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  };
  for (const char* how : {"truncate", "alter", "old-format"}) {
    damage(how);
    stats = sp::compile_stats();
    EXPECT_EQ(sp::compile_compute(glsl, opts), words) << how;
    const auto now = sp::compile_stats();
    EXPECT_EQ(now.disk_discarded, stats.disk_discarded + 1) << how;
    EXPECT_EQ(now.compiled, stats.compiled + 1) << how;
    EXPECT_EQ(now.disk_hits, stats.disk_hits) << how;
    EXPECT_EQ(std::filesystem::file_size(file), (words.size() + 2) * 4) << how << ": rewritten whole";
  }
  for (const auto& e : std::filesystem::directory_iterator(dir / "spirv"))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "a temporary file was left: " << e.path();
  std::filesystem::remove_all(dir);
}

// The pipeline cache on disk: the driver's data and its checksum, keyed by
// device, driver version and pipeline-cache UUID. A truncated, altered or
// old-format (no checksum) file is discarded with a note and rebuilt whole;
// results stay right.
TEST(PipelineCache, DamagedFilesAreDiscardedAndRebuilt) {
  VKFUSE_REQUIRE_VULKAN();
  namespace vk = vkfuse::runtime::vulkan;
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("vkfuse-pipeline-cache-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const char* old = std::getenv("VKFUSE_CACHE_DIR");
  const std::string saved = old ? old : "";
  setenv("VKFUSE_CACHE_DIR", dir.c_str(), 1);
  auto run = [] {
    GraphBuilder b(23);
    auto x = b.input("x", {1, 4, 9, 9});
    auto w = b.random_constant("w", {6, 4, 3, 3});
    b.output(b.node("Conv", {x, w}, [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); }));
    compare_with_reference(std::move(b.graph), kTol);
  };
  std::string file;
  {
    const auto ctx = vk::Context::acquire("");  // a fresh context: it reads the cache folder set above
    file = ctx->pipeline_cache_file();
    run();
  }
  auto whole = [&] {
    std::vector<char> bytes(std::filesystem::file_size(file));
    std::ifstream(file, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::uint64_t sum = 0;
    if (bytes.size() <= 8) return false;
    std::memcpy(&sum, bytes.data() + bytes.size() - 8, 8);
    return sum == g::fnv1a(bytes.data(), bytes.size() - 8);
  };
  ASSERT_FALSE(file.empty());
  ASSERT_TRUE(std::filesystem::exists(file));
  EXPECT_NE(file.find(dir.string()), std::string::npos) << file;
  EXPECT_TRUE(whole());
  for (const char* how : {"truncate", "alter", "old-format"}) {
    std::vector<char> bytes(std::filesystem::file_size(file));
    std::ifstream(file, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (std::string(how) == "truncate") bytes.resize(bytes.size() / 2);
    if (std::string(how) == "alter") bytes[bytes.size() / 3] ^= 0x20;
    if (std::string(how) == "old-format") bytes.resize(bytes.size() - 8);
    std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ::testing::internal::CaptureStderr();
    run();
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("discarded the pipeline cache"), std::string::npos) << how << ": " << err;
    EXPECT_TRUE(whole()) << how << ": not rewritten whole";
  }
  if (old) setenv("VKFUSE_CACHE_DIR", saved.c_str(), 1);
  else unsetenv("VKFUSE_CACHE_DIR");
  std::filesystem::remove_all(dir);
}

TEST_F(VulkanOps, DeviceSelection) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(20);
  auto x = b.input("x", {1, 2, 3, 3});
  b.output(b.node("Relu", {x}));
  g::prepare_graph(b.graph);
  vkfuse::runtime::ExecutorOptions o;
  o.device = "0";
  EXPECT_NO_THROW(vkfuse::runtime::make_vulkan_executor(b.graph, o));
  o.device = "99";
  try {
    vkfuse::runtime::make_vulkan_executor(b.graph, o);
    FAIL() << "expected an error";
  } catch (const vkfuse::Error& e) {
    EXPECT_EQ(e.kind(), vkfuse::ErrorKind::InvalidArgument);
  }
  o.device = "no-such-device-name";
  EXPECT_THROW(vkfuse::runtime::make_vulkan_executor(b.graph, o), vkfuse::Error);
  const auto devices = vkfuse::list_devices();
  ASSERT_FALSE(devices.empty()) << "the Vulkan device vanished from the process";  // (on an H200 it did, then this crashed)
  o.device = devices[0].name.substr(0, 4);
  EXPECT_NO_THROW(vkfuse::runtime::make_vulkan_executor(b.graph, o));
}

// Per-kernel timing (timestamp queries), once and with each kernel repeated
// (calibration's way of timing a microsecond kernel): a time for every
// kernel, the repeats' time divided back to one run's, and the model still
// computes what the reference does afterwards. (Device timestamps on
// lavapipe are CPU time, so only coarse bounds hold.)
TEST_F(VulkanOps, ProfileTimesEachKernelOnceAndRepeated) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(33);
  auto x = b.input("x", {1, 16, 40, 40});
  auto y = b.node("Relu", {b.node("Conv", {x, b.random_constant("w", {16, 16, 3, 3}, 0.1f)},
                                  [](g::Attributes& a) { a.set("pads", I64{1, 1, 1, 1}); })});
  b.output(b.node("MaxPool", {y}, [](g::Attributes& a) { a.set("kernel_shape", I64{2, 2}); a.set("strides", I64{2, 2}); }));
  g::prepare_graph(b.graph);
  vkfuse::runtime::vulkan::VulkanExecutor gpu(b.graph, vkfuse::runtime::ExecutorOptions{});
  std::vector<float> in(16 * 40 * 40, 0.5f), out(16 * 20 * 20);
  const float* ip = in.data();
  float* op = out.data();
  gpu.run({&ip, 1}, {&op, 1});
  const auto once = gpu.profile(3), repeated = gpu.profile(3, 8);
  if (once.empty()) GTEST_SKIP() << "the device has no timestamps";
  ASSERT_EQ(once.size(), 2u);
  ASSERT_EQ(repeated.size(), once.size());
  double sum_once = 0, sum_repeated = 0;
  for (std::size_t i = 0; i < once.size(); ++i) {
    EXPECT_GT(once[i].ms, 0) << once[i].variant;
    EXPECT_GT(repeated[i].ms, 0) << repeated[i].variant;
    sum_once += once[i].ms;
    sum_repeated += repeated[i].ms;
  }
  // Per run, not per eight runs (generous: launches amortize, machines are noisy).
  EXPECT_LT(sum_repeated, 4 * sum_once);
  std::vector<float> want(out.size());
  float* wp = want.data();
  vkfuse::runtime::ReferenceExecutor(b.graph, 1).run({&ip, 1}, {&wp, 1});
  std::fill(out.begin(), out.end(), std::nanf(""));
  gpu.run({&ip, 1}, {&op, 1});
  EXPECT_LT(vkfuse::testing::rel_l2(out, want), 1e-5);
}

// An Add of two convolutions: only one of them can absorb it.
TEST_F(VulkanOps, AddOfTwoConvolutions) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(21);
  auto x = b.input("x", {1, 8, 12, 12});
  auto c1 = b.node("Conv", {x, b.random_constant("w1", {16, 8, 3, 3})}, [](g::Attributes& a) {
    a.set("pads", I64{1, 1, 1, 1});
    a.set("strides", I64{2, 2});
  });
  auto c2 = b.node("Conv", {x, b.random_constant("w2", {16, 8, 1, 1})}, [](g::Attributes& a) {
    a.set("strides", I64{2, 2});
  });
  b.output(b.node("Relu", {b.node("Add", {c1, c2})}));
  auto r = compare_with_reference(std::move(b.graph), kTol);
  EXPECT_EQ(r.stats.dispatches, 2);
}

// --fp16: convolution weights stored as fp16 where the device supports
// 16-bit storage (fp32 arithmetic): relative L2 <= 1e-2.
TEST_F(VulkanOps, Fp16Weights) {
  VKFUSE_REQUIRE_VULKAN();
  GraphBuilder b(22);
  auto x = b.input("x", {1, 13, 15, 17});
  auto c = b.node("Conv", {x, b.random_constant("w", {24, 13, 3, 3}), b.random_constant("b", {24})},
                  [](g::Attributes& a) { a.set("pads", I64{1, 0, 2, 1}); });
  auto d = b.node("Conv", {b.node("Relu", {c}), b.random_constant("w2", {6, 24, 1, 1})});
  b.output(d);
  auto r = compare_with_reference(std::move(b.graph), 1e-2, /*fp16=*/true);
  bool any_fp16 = false;
  for (const auto& k : r.kernels) any_fp16 = any_fp16 || k.variant.find("_w16") != std::string::npos;
  // fp16 weights ride on the weights' texel views (VKFUSE_TEXEL_LOADS=0
  // turns them off; an arena bound in windows keeps them).
  const char* texel = std::getenv("VKFUSE_TEXEL_LOADS");
  bool supported = !(texel && std::string(texel) == "0");
  bool any_device = false;
  for (const auto& dev : vkfuse::list_devices()) any_device = any_device || dev.fp16;
  supported = supported && any_device;
  if (supported) {
    EXPECT_TRUE(any_fp16);
  }
}

// The debug messenger counts what the validation layer reports: a buffer of
// size 0 is invalid usage, so it must be counted (only under VKFUSE_VALIDATION=1).
TEST(VulkanValidation, MessengerCountsErrors) {
  VKFUSE_REQUIRE_VULKAN();
  if (!vkfuse::runtime::vulkan::validation_requested()) GTEST_SKIP() << "VKFUSE_VALIDATION is not set";
  auto ctx = vkfuse::runtime::vulkan::Context::acquire("");
  const auto before = vkfuse::runtime::vulkan::validation_error_count();
  VkBufferCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  info.size = 0;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
  VkBuffer buf = VK_NULL_HANDLE;
  std::fprintf(stderr, "(the next validation error is expected)\n");
  if (vkfuse::vkCreateBuffer(ctx->device(), &info, nullptr, &buf) == VK_SUCCESS && buf)
    vkfuse::vkDestroyBuffer(ctx->device(), buf, nullptr);
  EXPECT_GT(vkfuse::runtime::vulkan::validation_error_count(), before);
}
