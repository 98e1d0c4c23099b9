// The Halide host kernels, one op family at a time, against the reference
// kernels (graph/ops.h) on random shapes and attributes: odd sizes, strides 1
// and 2, asymmetric pads, dilations, groups, depthwise, broadcasting, fused
// activations and residual Adds. Relative L2 error <= 1e-4.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <cstdlib>
#include <random>
#include <sstream>

#include "codegen/halide/host_kernels.h"
#include "runtime/host_program.h"
#include "tests/codegen/host_test_util.h"

using namespace vkfuse::testing;
namespace g = vkfuse::graph;
using vkfuse::runtime::HostExecutor;
namespace hk = vkfuse::codegen::halide;

namespace {

constexpr double kTol = 1e-4;

g::Attributes attrs(std::initializer_list<std::pair<const char*, g::AttrValue>> list) {
  g::Attributes a;
  for (auto& [k, v] : list) a.set(k, v);
  return a;
}

using Ints = std::vector<std::int64_t>;

struct ConvCase {
  std::int64_t n, c, h, w, m, kh, kw, sy, sx, dy, dx, group;
  Ints pads;  // top, left, bottom, right
  bool bias;
  std::string act;  // "", "Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSwish"
};

std::string describe(const ConvCase& k) {
  return "N" + std::to_string(k.n) + " C" + std::to_string(k.c) + " " + std::to_string(k.h) + "x" +
         std::to_string(k.w) + " M" + std::to_string(k.m) + " k" + std::to_string(k.kh) + "x" + std::to_string(k.kw) +
         " s" + std::to_string(k.sy) + "," + std::to_string(k.sx) + " d" + std::to_string(k.dy) + "," +
         std::to_string(k.dx) + " g" + std::to_string(k.group) + " pads " + std::to_string(k.pads[0]) + "," +
         std::to_string(k.pads[1]) + "," + std::to_string(k.pads[2]) + "," + std::to_string(k.pads[3]) +
         (k.bias ? " bias" : "") + " " + k.act;
}

g::Graph conv_graph(const ConvCase& k, std::mt19937& rng, bool residual = false) {
  GraphBuilder b;
  auto x = b.input("x", {k.n, k.c, k.h, k.w});
  auto w = b.constant("w", random_tensor(rng, {k.m, k.c / k.group, k.kh, k.kw}));
  std::vector<g::ValueId> ins{x, w};
  if (k.bias) ins.push_back(b.constant("b", random_tensor(rng, {k.m})));
  auto y = b.node("Conv", ins,
                  attrs({{"strides", Ints{k.sy, k.sx}},
                         {"dilations", Ints{k.dy, k.dx}},
                         {"pads", k.pads},
                         {"group", k.group},
                         {"kernel_shape", Ints{k.kh, k.kw}}}));
  if (residual) {
    const std::int64_t oh = (k.h + k.pads[0] + k.pads[2] - ((k.kh - 1) * k.dy + 1)) / k.sy + 1;
    const std::int64_t ow = (k.w + k.pads[1] + k.pads[3] - ((k.kw - 1) * k.dx + 1)) / k.sx + 1;
    auto r = b.input("r", {k.n, k.m, oh, ow});
    y = b.node("Add", {y, r});
  }
  if (k.act == "Relu") y = b.node("Relu", {y});
  if (k.act == "LeakyRelu") y = b.node("LeakyRelu", {y}, attrs({{"alpha", 0.1f}}));
  if (k.act == "Sigmoid") y = b.node("Sigmoid", {y});
  if (k.act == "HardSwish") y = b.node("HardSwish", {y});
  if (k.act == "Clip") y = b.node("Clip", {y}, attrs({{"min", -0.5f}, {"max", 0.5f}}));
  return b.finish({y});
}

void check_conv(const ConvCase& k, std::uint32_t seed, bool residual = false) {
  std::mt19937 rng(seed);
  g::Graph graph = conv_graph(k, rng, residual);
  std::string desc;
  const double err = compare_host_to_reference(graph, seed, 2, &desc);
  EXPECT_LE(err, kTol) << describe(k) << (residual ? " +residual" : "") << " | " << desc;
  EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
}

// check_conv, and the host ran `kernel` for it (the first of its table whose
// rule holds).
void check_conv_kernel(const ConvCase& k, const char* kernel, std::uint32_t seed, bool residual = false) {
  check_conv(k, seed, residual);
  std::mt19937 rng(seed);
  const g::Graph graph = conv_graph(k, rng, residual);
  const vkfuse::runtime::HostProgram program(graph, {}, 1);
  std::string kernels;
  bool ran = false;
  for (const auto& step : program.steps()) {
    kernels += " " + step.kernel;
    ran = ran || step.kernel == kernel;
  }
  EXPECT_TRUE(ran) << describe(k) << ": expected " << kernel << ", ran" << kernels;
}

}  // namespace

TEST(HostConv, HandPicked) {
  const std::vector<ConvCase> cases = {
      {1, 3, 17, 19, 8, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, ""},
      {1, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"},
      {1, 3, 31, 29, 16, 7, 7, 2, 2, 1, 1, 1, {3, 3, 3, 3}, true, "Relu"},  // ResNet stem, odd
      {2, 8, 7, 7, 24, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, false, "Clip"},   // 7x7 maps, N=2
      {1, 32, 9, 9, 20, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, ""},        // 1x1, M not a tile multiple
      {1, 16, 15, 13, 16, 1, 1, 2, 2, 1, 1, 1, {0, 0, 0, 0}, true, ""},      // 1x1 stride 2 (downsample)
      {2, 12, 10, 9, 20, 1, 1, 2, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"},   // 1x1 strides 2 (y), 1 (x)
      {1, 64, 14, 14, 256, 1, 1, 2, 2, 1, 1, 1, {0, 0, 0, 0}, false, ""},    // 1x1 s2 to 7x7, channel vector
      {1, 8, 17, 17, 12, 1, 7, 1, 1, 1, 1, 1, {0, 3, 0, 3}, true, "Relu"},  // Inception 1x7
      {1, 8, 17, 17, 12, 7, 1, 1, 1, 1, 1, 1, {3, 0, 3, 0}, true, "Relu"},  // Inception 7x1
      {1, 6, 12, 11, 10, 3, 3, 2, 1, 2, 2, 1, {2, 0, 1, 3}, false, "LeakyRelu"},  // asymmetric, dilated
      {1, 8, 10, 10, 8, 3, 3, 1, 1, 1, 1, 8, {1, 1, 1, 1}, true, "Relu"},   // depthwise
      {1, 8, 11, 9, 8, 5, 5, 2, 2, 1, 1, 8, {2, 1, 2, 2}, true, "HardSwish"},  // depthwise s2 asym
      {1, 12, 9, 9, 18, 3, 3, 1, 1, 1, 1, 3, {1, 1, 1, 1}, true, "Sigmoid"},  // groups
      {2, 4, 5, 5, 8, 3, 3, 1, 1, 1, 1, 4, {0, 0, 0, 0}, true, ""},          // depthwise multiplier 2
      // Depthwise rows of 16, 8 and 4 lanes (the last vector shifted inwards)
      // and a short last task of planes (MobileNet v2 shapes).
      {1, 21, 56, 56, 21, 3, 3, 2, 2, 1, 1, 21, {1, 1, 1, 1}, true, "Clip"},    // 28 wide
      {2, 17, 14, 14, 17, 3, 3, 1, 1, 1, 1, 17, {1, 1, 1, 1}, true, "Clip"},    // 14 wide
      {1, 33, 7, 7, 33, 3, 3, 1, 1, 1, 1, 33, {1, 1, 1, 1}, true, "Relu"},      // 7 wide
      {1, 5, 66, 70, 5, 3, 3, 1, 1, 1, 1, 5, {1, 1, 1, 1}, true, "Clip"},       // rows of 64+ (row-sliding)
      {2, 3, 20, 67, 3, 3, 3, 2, 2, 1, 1, 3, {1, 1, 1, 1}, false, ""},          // rows of 64+, stride 2, N=2
      // Row-sliding computes eight output rows at a time: other counts shift
      // the last step up; fewer than eight rows run on the planar kernel.
      {1, 4, 8, 66, 4, 3, 3, 1, 1, 1, 1, 4, {1, 1, 1, 1}, true, "Relu"},        // rows of 64+, 8 rows
      {1, 4, 13, 66, 4, 3, 3, 1, 1, 1, 1, 4, {1, 1, 1, 1}, true, "Clip"},       // rows of 64+, 13 rows
      {1, 4, 5, 66, 4, 3, 3, 1, 1, 1, 1, 4, {1, 1, 1, 1}, true, "Relu"},        // rows of 64+, 5 rows
      {1, 3, 1, 70, 3, 3, 3, 1, 1, 1, 1, 3, {1, 1, 1, 1}, true, ""},            // rows of 64+, 1 row
      // Row-sliding takes row strides 1 and 2 without row dilation; the others
      // run on the planar kernel (window_row in generators.cpp).
      {1, 4, 17, 66, 4, 3, 3, 2, 1, 1, 1, 4, {1, 1, 1, 1}, true, "Relu"},       // rows of 64+, strides 2 (y), 1 (x)
      {1, 4, 16, 65, 4, 3, 3, 1, 2, 1, 1, 4, {1, 1, 1, 1}, true, ""},           // rows of 64+, strides 1 (y), 2 (x)
      {1, 4, 19, 70, 4, 3, 3, 3, 3, 1, 1, 4, {1, 1, 1, 1}, true, "Clip"},       // rows of 64+, stride 3
      {1, 4, 14, 66, 4, 3, 3, 1, 1, 2, 2, 4, {2, 2, 2, 2}, false, ""},          // rows of 64+, dilated
      {1, 4, 13, 64, 4, 3, 3, 1, 1, 2, 1, 4, {2, 1, 2, 1}, true, ""},           // rows of 64+, dilated rows only
      {1, 4, 13, 66, 4, 3, 3, 1, 1, 1, 2, 4, {1, 2, 1, 2}, true, ""},           // rows of 64+, dilated columns only
      // Row-sliding tasks are bands of 32 output rows of one plane, the last
      // band shifted inwards; images run one after the other.
      {1, 16, 112, 112, 16, 3, 3, 1, 1, 1, 1, 16, {1, 1, 1, 1}, true, "Relu"},  // MobileNet v3's first depthwise
      {2, 3, 75, 64, 3, 3, 3, 1, 1, 1, 1, 3, {1, 1, 1, 1}, true, "Clip"},        // 75 rows: 3 bands, N=2
      {1, 5, 133, 66, 5, 3, 3, 2, 2, 1, 1, 5, {0, 1, 1, 0}, false, ""},          // stride 2, 67 rows, asymmetric
      {1, 5, 6, 6, 5, 3, 3, 2, 2, 1, 1, 5, {1, 1, 1, 1}, false, ""},           // 3 wide
      {1, 2, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, false, ""},         // 1x1 image
      {1, 3, 3, 40, 9, 3, 3, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, ""},         // wide and short
      {1, 64, 28, 28, 64, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"},  // Winograd F(4x4, 3x3)
      {2, 48, 25, 31, 40, 3, 3, 1, 1, 1, 1, 1, {1, 0, 2, 1}, false, ""},      // Winograd, partial tiles
      {1, 48, 35, 35, 40, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Clip"},   // Winograd, 9 tiles across
      {1, 56, 24, 24, 36, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, ""},       // Winograd, 6 tiles across
      {1, 48, 73, 73, 33, 3, 3, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"},   // Winograd, 18 across (71x71)
      {1, 128, 14, 14, 136, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"}, // Winograd staged, 14x14
      {2, 144, 12, 13, 128, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, false, ""},    // staged, partial tiles, N=2
      {1, 128, 28, 27, 160, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Clip"}, // staged, 28x27
      {1, 40, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"},    // channel vector, 7x7: 7-pixel tiles
      {2, 48, 5, 5, 40, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"},    // 7-pixel tiles, last one shifted
      {2, 24, 35, 35, 40, 3, 3, 2, 2, 1, 1, 1, {0, 0, 0, 0}, true, "Clip"},  // channel vector, s2 to 17x17
      {1, 16, 17, 17, 33, 1, 7, 1, 1, 1, 1, 1, {0, 3, 0, 3}, false, ""},     // channel vector, 1x7
      {1, 8, 9, 6, 16, 3, 3, 1, 1, 2, 2, 1, {2, 2, 2, 2}, true, ""},         // channel vector, dilated
      {1, 24, 7, 7, 20, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"},    // pointwise, 49 px, last tile shifted
      {2, 19, 17, 17, 24, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, false, "Clip"}, // pointwise, 289 px, N=2
      {1, 8, 6, 8, 16, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, ""},         // pointwise, exactly one tile
      {1, 40, 8, 8, 24, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"},    // pointwise_tiled32, two tiles
      {2, 12, 5, 8, 16, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, false, ""},       // pointwise_tiled32, 40 px
      {1, 256, 7, 7, 264, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"},  // 1x1 channel vector, 7x7
      // The activations with code of their own (kSpecializedActivations) on
      // pointwise_tiled and conv_channel_vector.
      {1, 24, 14, 14, 40, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "HardSwish"},  // pointwise_tiled
      {1, 24, 9, 9, 32, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, false, "Clip"},        // pointwise_tiled32
      {1, 48, 7, 7, 40, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "HardSwish"},   // channel vector
  };
  std::uint32_t seed = 1;
  for (const auto& k : cases) check_conv(k, seed++);
}

// Each depthwise kernel on the maps its rule gives it (the first of
// kDepthwiseKernels that applies): depthwise_flat for stride 1 and an output
// the input's size on maps up to 28 wide of at least 16 pixels (windows
// above 3x3 from 14 wide), depthwise_channel_vector on other output maps up
// to 28 wide holding at least one 8-pixel tile, the planar kernel otherwise.
// Channel counts that leave a part block or task, batches, strides,
// dilations, asymmetric pads and the activations the kernels specialize or not.
TEST(HostConv, DepthwiseKernelsByMapSize) {
  struct DepthwiseCase {
    ConvCase conv;
    const char* kernel;
  };
  const std::vector<DepthwiseCase> cases = {
      {{1, 40, 14, 14, 40, 3, 3, 1, 1, 1, 1, 40, {1, 1, 1, 1}, true, "Relu"}, "depthwise_flat"},
      {{2, 13, 7, 7, 13, 3, 3, 1, 1, 1, 1, 13, {1, 1, 1, 1}, false, "Clip"}, "depthwise_flat"},   // 49 px, N=2
      {{1, 9, 4, 4, 9, 3, 3, 1, 1, 1, 1, 9, {1, 1, 1, 1}, true, "HardSwish"}, "depthwise_flat"},  // 16 px: one vector
      {{1, 17, 5, 5, 17, 3, 3, 1, 1, 1, 1, 17, {1, 1, 1, 1}, true, ""}, "depthwise_flat"},        // 25 px
      {{1, 24, 28, 28, 24, 5, 5, 1, 1, 1, 1, 24, {2, 2, 2, 2}, true, "HardSwish"}, "depthwise_flat"},  // 5x5
      {{1, 20, 12, 13, 20, 3, 3, 1, 1, 2, 2, 20, {2, 1, 2, 3}, true, "LeakyRelu"}, "depthwise_flat"},  // dilated
      {{1, 11, 9, 20, 11, 3, 5, 1, 1, 1, 1, 11, {1, 2, 1, 2}, true, "Sigmoid"}, "depthwise_flat"},  // 9x20, 3x5
      {{2, 24, 7, 7, 24, 5, 5, 1, 1, 1, 1, 24, {2, 2, 2, 2}, true, "HardSwish"}, "depthwise_channel_vector"},
      {{1, 40, 14, 14, 40, 3, 3, 1, 1, 1, 1, 40, {0, 0, 0, 0}, true, "Relu"}, "depthwise_channel_vector"},  // 12x12
      {{1, 16, 15, 15, 16, 5, 5, 2, 2, 1, 1, 16, {2, 2, 2, 2}, false, "Clip"}, "depthwise_channel_vector"},
      {{1, 7, 9, 9, 7, 3, 3, 2, 1, 1, 1, 7, {0, 1, 2, 1}, true, "Sigmoid"}, "depthwise_channel_vector"},
      {{2, 33, 56, 56, 33, 3, 3, 2, 2, 1, 1, 33, {0, 0, 1, 1}, true, ""}, "depthwise_channel_vector"},  // 28 wide
      {{1, 8, 2, 4, 8, 3, 3, 1, 1, 1, 1, 8, {1, 1, 1, 1}, true, "Relu"}, "depthwise_channel_vector"},  // one tile
      {{1, 8, 2, 3, 8, 3, 3, 1, 1, 1, 1, 8, {1, 1, 1, 1}, true, "Relu"}, "depthwise"},  // 6 pixels
      {{1, 16, 29, 29, 16, 3, 3, 1, 1, 1, 1, 16, {1, 1, 1, 1}, true, "Clip"}, "depthwise"},  // 29 wide
  };
  std::uint32_t seed = 300;
  for (const auto& [k, kernel] : cases) check_conv_kernel(k, kernel, seed++);
}

// Blocked channels (hk::Blocked): two inverted-residual blocks (pointwise
// expansion, depthwise, pointwise projection; the second adds the first's
// output; in some cases with squeeze-and-excitation gates after the
// depthwise layers) and a global pool. The chain runs blocked from the first
// pointwise layer, which reads the planar input, to the pool; channel counts
// off the block of 16, odd maps, strides, dilations, 5x5 windows, N = 2 and
// the generic activation path (LeakyRelu, Sigmoid) included.
struct BlockCase {
  std::int64_t n, c, h, w, expand, k, stride, dilation;
  std::string act;
  bool squeeze_excite = false;  // x * sigmoid(expand(relu(reduce(mean(x))))) after the depthwise layer
};
g::ValueId activation(GraphBuilder& b, g::ValueId y, const std::string& act) {
  if (act == "Relu") return b.node("Relu", {y});
  if (act == "LeakyRelu") return b.node("LeakyRelu", {y}, attrs({{"alpha", 0.1f}}));
  if (act == "Sigmoid") return b.node("Sigmoid", {y});
  if (act == "HardSwish") return b.node("HardSwish", {y});
  if (act == "Clip") return b.node("Clip", {y}, attrs({{"min", -0.5f}, {"max", 0.5f}}));
  return y;
}
g::ValueId conv(GraphBuilder& b, std::mt19937& rng, g::ValueId x, std::int64_t c, std::int64_t m, std::int64_t k,
                std::int64_t stride, std::int64_t dilation, bool depthwise) {
  const std::int64_t pad = (k - 1) / 2 * dilation, group = depthwise ? c : 1;
  static int count = 0;
  const std::string name = "w" + std::to_string(count++);
  auto w = b.constant(name, random_tensor(rng, {m, c / group, k, k}));
  auto bias = b.constant(name + "b", random_tensor(rng, {m}));
  return b.node("Conv", {x, w, bias},
                attrs({{"strides", Ints{stride, stride}},
                       {"dilations", Ints{dilation, dilation}},
                       {"pads", Ints{pad, pad, pad, pad}},
                       {"group", group},
                       {"kernel_shape", Ints{k, k}}}));
}
g::Graph blocked_chain(const BlockCase& k, std::mt19937& rng, bool also_read_planar = false) {
  GraphBuilder b;
  auto x = b.input("x", {k.n, k.c, k.h, k.w});
  auto block = [&](g::ValueId in, std::int64_t stride, g::ValueId* depthwise_out = nullptr) {
    auto e = activation(b, conv(b, rng, in, k.c, k.expand, 1, 1, 1, false), k.act);
    auto d = activation(b, conv(b, rng, e, k.expand, k.expand, k.k, stride, k.dilation, true), k.act);
    if (k.squeeze_excite) {
      auto s = b.node("GlobalAveragePool", {d});
      s = b.node("Relu", {conv(b, rng, s, k.expand, 8, 1, 1, 1, false)});
      d = b.node("Mul", {d, b.node("Sigmoid", {conv(b, rng, s, 8, k.expand, 1, 1, 1, false)})});
    }
    if (depthwise_out) *depthwise_out = d;
    return conv(b, rng, d, k.expand, k.c, 1, 1, 1, false);
  };
  auto y1 = block(x, k.stride);
  g::ValueId d2 = g::kNoValue;
  auto y2 = b.node("Add", {block(y1, 1, &d2), y1});
  auto pooled = b.node("GlobalAveragePool", {y2});
  if (also_read_planar) return b.finish({pooled, b.node("Relu", {d2})});
  return b.finish({pooled});
}
std::string describe(const BlockCase& k) {
  return "N" + std::to_string(k.n) + " C" + std::to_string(k.c) + " " + std::to_string(k.h) + "x" +
         std::to_string(k.w) + " E" + std::to_string(k.expand) + " k" + std::to_string(k.k) + " s" +
         std::to_string(k.stride) + " d" + std::to_string(k.dilation) + " " + k.act + (k.squeeze_excite ? " SE" : "");
}
std::map<std::string, int> kernel_counts(const g::Graph& graph) {
  const vkfuse::runtime::HostProgram program(graph, {}, 1);
  std::map<std::string, int> counts;
  for (const auto& step : program.steps()) ++counts[step.kernel];
  return counts;
}

TEST(HostConv, BlockedChannelChains) {
  const std::vector<BlockCase> cases = {
      {1, 16, 14, 14, 96, 3, 1, 1, "Clip"},       // MobileNet v2's 14x14 blocks
      {2, 24, 15, 17, 40, 3, 2, 1, "Relu"},       // stride 2 to 8x9, N = 2
      {1, 20, 7, 7, 72, 5, 1, 1, "HardSwish"},    // 5x5 on 7x7, channels off the block
      {1, 33, 12, 10, 50, 3, 1, 2, "LeakyRelu"},  // dilated; the generic epilogue
      {1, 8, 9, 30, 17, 5, 2, 1, "Sigmoid"},      // 5x5 stride 2 to 5x15
      {1, 3, 8, 7, 5, 3, 1, 1, ""},               // one tile across, 56 px
      {1, 12, 15, 14, 24, 5, 1, 2, "Clip"},       // 5x5 dilated: the generic 5x5 code
      {1, 16, 12, 12, 24, 7, 1, 1, "Relu"},       // 7x7: the taps as a loop
      {2, 16, 14, 14, 40, 5, 2, 1, "HardSwish", true},  // squeeze-and-excitation (MobileNetV3, EfficientNet)
      {1, 24, 9, 11, 72, 3, 1, 1, "Relu", true},
      // Small maps (channel groups outermost) with outputs of 3 blocks and
      // more: groups of 3 blocks (the last shifted inwards over 4 and 8 blocks
      // here), residual too.
      {1, 40, 7, 7, 96, 3, 1, 1, "Relu"},
      {1, 56, 8, 8, 120, 3, 1, 1, "Clip"},
      // 4 and 10 blocks, which groups of 3 would partly compute twice: pixel
      // runs over every block (MobileNet v2's 14x14 and 7x7 projections).
      {1, 64, 7, 7, 160, 3, 1, 1, "Clip"},
  };
  std::uint32_t seed = 900;
  for (const BlockCase& k : cases) {
    std::mt19937 rng(seed);
    const g::Graph graph = blocked_chain(k, rng);
    std::string desc;
    EXPECT_LE(compare_host_to_reference(graph, seed, 2, &desc), kTol) << describe(k) << " | " << desc;
    // Everything from the first layer to the pool on blocked channels: six
    // convolutions (the residual Add fused into the last) and the pool.
    auto counts = kernel_counts(graph);
    EXPECT_EQ(counts["pointwise_blocked"], 4) << describe(k) << " | " << desc;
    EXPECT_EQ(counts["depthwise_blocked"], 2) << describe(k) << " | " << desc;
    EXPECT_EQ(counts["global_avg_pool_blocked"], k.squeeze_excite ? 3 : 1) << describe(k) << " | " << desc;
    // One image: the gates fold into the projections' filters (their maps
    // have more pixels than the projections output channels); two images
    // have a gate each, scaled in blocked channels.
    EXPECT_EQ(counts["channel_scale_blocked"], k.squeeze_excite && k.n > 1 ? 2 : 0) << describe(k) << " | " << desc;
    ++seed;
  }
}

// A blocked value that something else reads too (here the second
// depthwise output is also a graph output; a Concat, a view, a reduction
// would be alike) gets a planar copy right after its producer, and the chain
// stays blocked. A value whose readers are all planar is not blocked at all:
// a lone blocked layer between planar ones would only add copies.
TEST(HostConv, BlockedChannelsCopiedForPlanarReaders) {
  const BlockCase k{1, 16, 14, 14, 48, 3, 1, 1, "Clip"};
  std::mt19937 rng(950);
  const g::Graph graph = blocked_chain(k, rng, /*also_read_planar=*/true);
  std::string desc;
  EXPECT_LE(compare_host_to_reference(graph, 950, 2, &desc), kTol) << desc;
  auto counts = kernel_counts(graph);
  EXPECT_EQ(counts["pointwise_blocked"], 4) << desc;
  EXPECT_EQ(counts["depthwise_blocked"], 2) << desc;
  EXPECT_EQ(counts["to_planar"], 1) << desc;

  GraphBuilder b;
  auto x = b.input("x", {1, 16, 14, 14});
  auto e = conv(b, rng, x, 16, 32, 1, 1, 1, false);
  auto y = b.node("Concat", {conv(b, rng, e, 32, 32, 3, 1, 1, true), e}, attrs({{"axis", std::int64_t{1}}}));
  const g::Graph planar = b.finish({y});
  EXPECT_LE(compare_host_to_reference(planar, 951, 2, &desc), kTol) << desc;
  counts = kernel_counts(planar);
  EXPECT_EQ(counts["pointwise_blocked"] + counts["depthwise_blocked"] + counts["to_planar"], 0) << desc;
}

// A squeeze-and-excitation gate read only by a 1x1 convolution folds into
// that convolution's filters (planner::HostFusion): the step scales each
// input channel's filters by its gate and reads the ungated tensor. Planar
// kernels (pointwise_tiled, pointwise_tiled32), the blocked kernel from a
// planar input (a depthwise layer follows), a strided 1x1 (its subsample
// reads the ungated tensor), a fused residual Add, and a gate of one image
// over a batch of two fold; a per-image gate over two images, or a
// convolution with more than a quarter as many output channels as the map
// has pixels, keep the Mul as a step.
TEST(HostConv, ChannelGateFoldsIntoTheFilters) {
  struct GateCase {
    std::int64_t n, c, h, w, m, stride;
    bool residual, gate_per_image, then_depthwise;
    const char* kernel;  // the gated step's; "" where the gate does not fold
  };
  const std::vector<GateCase> cases = {
      {1, 24, 20, 20, 16, 1, false, true, false, "pointwise_tiled"},
      {1, 320, 8, 8, 16, 1, false, true, false, "pointwise_tiled32"},
      {1, 24, 14, 14, 32, 1, false, true, true, "pointwise_blocked"},
      {1, 24, 16, 15, 12, 2, false, true, false, "pointwise_tiled32"},  // 1x1 stride 2
      {1, 16, 14, 14, 16, 1, true, true, false, "pointwise_tiled"},     // a residual Add
      {2, 24, 10, 10, 8, 1, false, false, false, "pointwise_tiled"},    // one gate, two images
      {2, 24, 10, 10, 8, 1, false, true, false, ""},                    // a gate per image
      {1, 24, 8, 8, 24, 1, false, true, false, ""},                     // 64 pixels, 24 output channels
  };
  std::uint32_t seed = 970;
  for (const GateCase& k : cases) {
    std::mt19937 rng(seed);
    GraphBuilder b;
    auto x = b.input("x", {k.n, k.c, k.h, k.w});
    // A dense 3x3 layer first: its output is planar.
    auto d = conv(b, rng, x, k.c, k.c, 3, 1, 1, false);
    g::ValueId gate;
    if (k.gate_per_image) {
      auto s = b.node("Relu", {conv(b, rng, b.node("GlobalAveragePool", {d}), k.c, 8, 1, 1, 1, false)});
      gate = b.node("Sigmoid", {conv(b, rng, s, 8, k.c, 1, 1, 1, false)});
    } else {
      gate = b.input("gate", {1, k.c, 1, 1});
    }
    auto y = conv(b, rng, b.node("Mul", {d, gate}), k.c, k.m, 1, k.stride, 1, false);
    if (k.residual) y = b.node("Add", {y, x});
    if (k.then_depthwise) y = conv(b, rng, y, k.m, k.m, 3, 1, 1, true);
    const g::Graph graph = b.finish({y});
    std::string what = "N";
    for (std::int64_t d : {k.n, k.c, k.h, k.w, k.m, k.stride}) what += std::to_string(d) + " ";
    std::string desc;
    EXPECT_LE(compare_host_to_reference(graph, seed, 2, &desc), kTol) << what << " | " << desc;
    const vkfuse::runtime::HostProgram program(graph, {}, 1);
    const bool folds = *k.kernel != 0;
    int scale_steps = 0;
    std::string gated, kernels;
    for (const auto& step : program.steps()) {
      kernels += " " + step.kernel;
      scale_steps += step.kernel == "channel_scale" || step.kernel == "channel_scale_blocked";
      if (step.kernel != "subsample" && step.name.find("Mul") != std::string::npos &&
          step.name.find("Conv") != std::string::npos)
        gated += step.kernel;
    }
    EXPECT_EQ(scale_steps, folds ? 0 : 1) << what << ":" << kernels;
    EXPECT_EQ(gated, k.kernel) << what << ":" << kernels;
    EXPECT_EQ(program.fused_nodes(), (folds ? 1 : 0) + (k.residual ? 1 : 0)) << what;
    ++seed;
  }
}

// conv_tiled (activations other than none and ReLU) and the planar
// depthwise kernels (other than none, ReLU and Clip) run the rest as a second
// pass over their output (mobile stems: ReLU6, HardSwish, SiLU; EfficientNet's
// depthwise layers: SiLU); with a fused residual Add the pass follows the sum.
TEST(HostConv, ActivationsAfterTheKernel) {
  std::uint32_t seed = 340;
  for (const char* act : {"Clip", "HardSwish", "Sigmoid", "LeakyRelu"}) {
    check_conv_kernel({1, 3, 32, 30, 24, 3, 3, 2, 2, 1, 1, 1, {1, 1, 1, 1}, true, act}, "conv_tiled", seed++);
    check_conv_kernel({2, 5, 9, 11, 12, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, false, act}, "conv_tiled", seed++,
                      /*residual=*/true);
    check_conv_kernel({1, 16, 29, 29, 16, 3, 3, 1, 1, 1, 1, 16, {1, 1, 1, 1}, true, act}, "depthwise", seed++);
    check_conv_kernel({1, 6, 70, 66, 6, 3, 3, 2, 2, 1, 1, 6, {1, 1, 1, 1}, false, act}, "depthwise", seed++);
  }
}

// A 1x1 convolution on a 7x7 or 8x8 map takes conv_channel_vector where its
// filters exceed 4 MiB (they stream from memory), pointwise_tiled32 below;
// on a plane under 32 pixels conv_channel_vector.
TEST(HostConv, PointwiseOnSmallMapsByFilterSize) {
  check_conv_kernel({1, 160, 7, 7, 960, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Clip"}, "pointwise_tiled32", 330);
  check_conv_kernel({1, 256, 7, 7, 264, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"}, "pointwise_tiled32", 331);
  check_conv_kernel({2, 320, 8, 8, 256, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, false, ""}, "pointwise_tiled32", 332);
  check_conv_kernel({1, 1040, 7, 7, 1024, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"}, "conv_channel_vector", 333);
  check_conv_kernel({1, 64, 5, 5, 96, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, ""}, "conv_channel_vector", 334);
}

// 16 to 47 input channels into whole blocks of 32 output channels on maps up
// to 56x56 (HRNet's branches) take conv_channel_vector; padded blocks, the
// 3-channel stems and larger maps keep conv_tiled.
TEST(HostConv, FewInputChannelsIntoWholeBlocksOnSmallMapsTakeChannelVectors) {
  check_conv_kernel({1, 32, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"}, "conv_channel_vector", 335);
  check_conv_kernel({1, 16, 56, 56, 32, 3, 3, 2, 2, 1, 1, 1, {1, 1, 1, 1}, false, ""}, "conv_channel_vector", 336);
  check_conv_kernel({1, 40, 28, 28, 40, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"}, "conv_tiled", 337);
  check_conv_kernel({1, 32, 60, 60, 64, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, ""}, "conv_tiled", 338);
}

// conv_channel_chunks takes windows of 3x3 and more on planes of whole
// 7-pixel tiles up to 14x14 whose input channels are whole chunks of 16
// (ResNet's layer3 and layer4): strides, 5x5, dilation, N=2, output channels
// short of a 32-channel block, few blocks (tasks over runs of tiles on the
// test's 2 threads, the last run short), a fused residual Add and the
// specialized activations; the others keep their kernels.
TEST(HostConv, ChannelChunksOnSmallMaps) {
  std::uint32_t seed = 360;
  const std::vector<std::pair<ConvCase, bool>> chunks = {
      {{1, 64, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"}, false},    // 7x7, 4 chunks
      {{2, 48, 14, 14, 40, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, false, ""}, true},      // 14x14, N=2, residual
      {{1, 32, 14, 14, 64, 3, 3, 2, 2, 1, 1, 1, {1, 1, 1, 1}, true, "Clip"}, false},  // stride 2 to 7x7
      {{1, 16, 7, 7, 33, 5, 5, 1, 1, 1, 1, 1, {2, 2, 2, 2}, true, "HardSwish"}, true},  // 5x5, one chunk
      {{1, 32, 11, 11, 32, 3, 3, 1, 1, 2, 2, 1, {0, 0, 0, 0}, true, "Sigmoid"}, false},  // dilated to 7x7
      {{1, 16, 7, 14, 24, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, false, "HardSwish"}, false},  // 98 px
      {{1, 32, 14, 14, 72, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"}, true},  // 3 blocks: 2 runs (2 threads)
      {{1, 32, 7, 7, 24, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, ""}, false},  // 1 block: runs of 28 and 21 px
  };
  for (const auto& [k, residual] : chunks) check_conv_kernel(k, "conv_channel_chunks", seed++, residual);
  // Input channels not whole chunks, a plane not of whole 7-pixel tiles, a
  // 1x1 window, a plane above 14x14.
  check_conv_kernel({1, 40, 7, 7, 72, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"}, "conv_channel_vector", seed++);
  check_conv_kernel({1, 32, 8, 8, 48, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, ""}, "conv_channel_vector", seed++);
  check_conv_kernel({1, 256, 7, 7, 264, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, ""}, "pointwise_tiled32", seed++);
  check_conv_kernel({1, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, ""}, "wino_f4x3_staged", seed++);
}

// A 1x1 convolution on a 1x1 map (squeeze-and-excitation) runs as a GEMV on
// the Gemm kernel, per image; with a fused residual Add it does not.
TEST(HostConv, OnOneByOneMapsAGemv) {
  check_conv_kernel({1, 960, 1, 1, 240, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"}, "conv_gemv", 320);
  check_conv_kernel({2, 40, 1, 1, 72, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, false, ""}, "conv_gemv", 321);
  check_conv_kernel({3, 17, 1, 1, 33, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "HardSwish"}, "conv_gemv", 322);
  check_conv_kernel({2, 16, 1, 1, 16, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"}, "conv_tiled", 323, true);
}

// A grouped convolution runs all its groups in one call (or calls of as many
// groups as keep a call's input within 512 KB), on blocks of 8 (conv_tiled),
// 16 (conv_channel_vector16) or 32 (conv_channel_vector) output channels
// that read their groups' input channels: groups as wide as a block,
// narrower (a block spans several, its filters zero for the others'
// channels), wider, not dividing a block (a block straddles two groups),
// output channels short of a whole block (the last block's channels move
// down to stay within the input), a depthwise multiplier, 1x1, strides,
// dilation, N=2, and the calls of a large input.
TEST(HostConv, GroupedConvolutionsRunTheirGroupsTogether) {
  std::uint32_t seed = 380;
  const std::vector<std::pair<ConvCase, const char*>> cases = {
      {{1, 400, 14, 14, 400, 3, 3, 2, 2, 1, 1, 25, {1, 1, 1, 1}, true, "Relu"}, "conv_channel_vector16"},  // RegNetX
      {{1, 160, 14, 14, 160, 3, 3, 1, 1, 1, 1, 10, {1, 1, 1, 1}, true, "Relu"}, "conv_channel_vector16"},
      {{1, 48, 7, 7, 48, 3, 3, 1, 1, 1, 1, 6, {1, 1, 1, 1}, true, "Relu"}, "conv_channel_vector16"},  // 8 per group
      {{1, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 8, {1, 1, 1, 1}, true, "Relu"}, "conv_tiled"},
      {{1, 256, 7, 7, 256, 3, 3, 1, 1, 1, 1, 8, {1, 1, 1, 1}, false, ""}, "conv_channel_vector"},  // 32 per group
      {{2, 48, 9, 9, 48, 3, 3, 1, 1, 1, 1, 6, {1, 1, 1, 1}, true, "Clip"}, "conv_tiled"},  // 8 per group, N=2
      {{1, 40, 7, 7, 40, 3, 3, 1, 1, 1, 1, 5, {1, 1, 1, 1}, true, ""}, nullptr},       // 8 per group, 40 outputs
      {{1, 72, 8, 8, 72, 3, 3, 1, 1, 1, 1, 3, {1, 1, 1, 1}, true, "Relu"}, nullptr},   // 24 per group
      {{1, 32, 10, 10, 32, 3, 3, 1, 1, 1, 1, 8, {1, 1, 1, 1}, true, ""}, "conv_tiled"},  // 4 per group
      {{1, 16, 9, 11, 48, 3, 3, 2, 1, 2, 1, 4, {2, 1, 2, 1}, true, "Relu"}, nullptr},  // 4 in, 12 out per group
      {{1, 8, 7, 7, 16, 3, 3, 1, 1, 1, 1, 8, {1, 1, 1, 1}, true, ""}, nullptr},        // depthwise multiplier 2
      {{1, 64, 6, 6, 96, 1, 1, 1, 1, 1, 1, 4, {0, 0, 0, 0}, true, "Relu"}, nullptr},   // 1x1
      {{1, 96, 60, 60, 96, 3, 3, 2, 2, 1, 1, 12, {1, 1, 1, 1}, true, "Relu"}, "conv_tiled"},  // 3 calls of 4 groups
  };
  for (const auto& [k, kernel] : cases) {
    if (kernel) check_conv_kernel(k, kernel, seed++);
    else check_conv(k, seed++);
  }
}

// Every kernel on grouped filters, called directly (so that no kernel rule
// hides another kernel's errors), against a plain loop: blocks of 8, 16 and
// 32 output channels over groups of 4 to 40 output channels, the last block
// short, groups that straddle blocks, strides and pads.
TEST(HostConv, GroupedFiltersOnEveryKernel) {
  struct Case {
    int c, m, groups, h, w, k, stride, pad;
  };
  const std::vector<Case> cases = {
      {64, 64, 4, 7, 7, 3, 1, 1},    {400, 400, 25, 7, 7, 3, 2, 1}, {48, 48, 6, 9, 10, 3, 1, 1},
      {40, 40, 5, 8, 8, 3, 1, 0},    {72, 72, 3, 8, 8, 3, 1, 1},    {32, 32, 8, 9, 9, 3, 2, 1},
      {16, 48, 4, 7, 9, 3, 1, 1},    {8, 16, 8, 8, 8, 3, 1, 1},     {64, 96, 4, 6, 6, 1, 1, 0},
      {80, 80, 2, 7, 7, 3, 1, 1},    {120, 120, 3, 5, 12, 5, 1, 2},
  };
  std::mt19937 rng(390);
  for (const Case& k : cases) {
    const int oh = (k.h + 2 * k.pad - k.k) / k.stride + 1, ow = (k.w + 2 * k.pad - k.k) / k.stride + 1;
    const int cg = k.c / k.groups, mg = k.m / k.groups;
    std::vector<float> x = random_floats(rng, k.c * k.h * k.w), w = random_floats(rng, k.m * cg * k.k * k.k),
                       bias = random_floats(rng, k.m), want(static_cast<std::size_t>(k.m * oh * ow));
    for (int m = 0; m < k.m; ++m)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          double acc = bias[static_cast<std::size_t>(m)];
          for (int ci = 0; ci < cg; ++ci)
            for (int ky = 0; ky < k.k; ++ky)
              for (int kx = 0; kx < k.k; ++kx) {
                const int iy = oy * k.stride + ky - k.pad, ix = ox * k.stride + kx - k.pad;
                if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
                acc += static_cast<double>(w[static_cast<std::size_t>(((m * cg + ci) * k.k + ky) * k.k + kx)]) *
                       x[static_cast<std::size_t>(((m / mg * cg + ci) * k.h + iy) * k.w + ix)];
              }
          want[static_cast<std::size_t>((m * oh + oy) * ow + ox)] = static_cast<float>(acc);
        }
    hk::Window2D win;
    win.kernel_x = win.kernel_y = k.k;
    win.stride_x = win.stride_y = k.stride;
    win.pad_x = win.pad_y = win.pad_x_end = win.pad_y_end = k.pad;
    const std::string what = std::to_string(k.c) + "->" + std::to_string(k.m) + " g" + std::to_string(k.groups) +
                             " " + std::to_string(k.h) + "x" + std::to_string(k.w) + " k" + std::to_string(k.k) +
                             " s" + std::to_string(k.stride);
    for (int tile_m : {hk::kConvTileM, hk::kConvNarrowVectorTileM, hk::kConvChannelVectorTileM}) {
      const hk::PackedConv packed =
          hk::PackedConv::pack(w.data(), bias.data(), k.m, k.c, k.k, k.k, tile_m, k.groups);
      std::vector<float> got(want.size(), 0.f);
      const hk::View in = hk::View::dense(x.data(), {1, k.c, k.h, k.w});
      const hk::View out = hk::View::dense(got.data(), {1, k.m, oh, ow});
      if (tile_m == hk::kConvTileM) hk::conv2d(in, packed, win, nullptr, {}, out);
      else hk::conv2d_channel_vector(in, packed, win, nullptr, {}, out);
      EXPECT_LE(rel_l2(got, want), kTol) << what << " tile_m " << tile_m;
    }
  }
}

TEST(HostConv, Random) {
  std::mt19937 rng(42);
  auto pick = [&](std::initializer_list<std::int64_t> v) {
    std::uniform_int_distribution<std::size_t> d(0, v.size() - 1);
    return *(v.begin() + static_cast<std::ptrdiff_t>(d(rng)));
  };
  const char* acts[] = {"", "Relu", "Clip"};
  for (int t = 0; t < 40; ++t) {
    ConvCase k{};
    k.n = pick({1, 1, 2});
    k.group = pick({1, 1, 1, 2, 0});
    k.c = pick({1, 3, 4, 8, 16});
    if (k.group == 0) k.group = k.c;  // depthwise
    if (k.c % k.group) k.group = 1;
    k.m = k.group * pick({1, 3, 8, 9, 16});
    if (k.group == k.c) k.m = k.c;
    k.kh = pick({1, 2, 3, 5});
    k.kw = pick({1, 3, 4});
    k.sy = pick({1, 2});
    k.sx = pick({1, 2});
    k.dy = pick({1, 1, 2});
    k.dx = pick({1, 1, 2});
    k.pads = {pick({0, 1, 2}), pick({0, 1, 2}), pick({0, 1, 2}), pick({0, 1, 3})};
    k.h = std::max<std::int64_t>((k.kh - 1) * k.dy + 1, pick({1, 5, 8, 13, 20}));
    k.w = std::max<std::int64_t>((k.kw - 1) * k.dx + 1, pick({1, 6, 7, 16, 23}));
    k.bias = pick({0, 1}) == 1;
    k.act = acts[t % 3];
    check_conv(k, static_cast<std::uint32_t>(100 + t));
  }
}

TEST(HostConv, ResidualAddIsFused) {
  const std::vector<ConvCase> cases = {
      {1, 16, 14, 14, 16, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"},
      {2, 8, 9, 7, 24, 1, 1, 2, 2, 1, 1, 1, {0, 0, 0, 0}, false, ""},
      {1, 5, 7, 7, 12, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Clip"},
      {2, 16, 9, 11, 40, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"},    // pointwise_tiled
      {1, 16, 4, 7, 40, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"},     // 1x1, plane below one tile
      {1, 24, 7, 7, 20, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, ""},         // pointwise_tiled32, shifted
      {1, 256, 8, 8, 256, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, "Relu"},  // 1x1 channel vector, 8x8
      {1, 64, 30, 26, 64, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"},  // Winograd
      {1, 128, 13, 15, 160, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"}, // Winograd staged
      {1, 32, 7, 7, 40, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"},    // channel vector
  };
  std::uint32_t seed = 7;
  for (const auto& k : cases) {
    check_conv(k, seed, true);
    std::mt19937 rng(seed++);
    g::Graph graph = conv_graph(k, rng, true);
    HostExecutor host(graph, {});
    EXPECT_EQ(host.fused_nodes(), 1) << describe(k);
  }
}

TEST(HostPool, MaxAndAverage) {
  std::mt19937 rng(5);
  struct PoolCase {
    std::string op;
    std::int64_t c, h, w, kh, kw, sy, sx;
    Ints pads;
    std::int64_t ceil_mode, count_include_pad, dil;
  };
  const std::vector<PoolCase> cases = {
      {"MaxPool", 8, 112, 112, 3, 3, 2, 2, {1, 1, 1, 1}, 0, 0, 1},  // ResNet
      {"MaxPool", 5, 147, 147, 3, 3, 2, 2, {0, 0, 0, 0}, 0, 0, 1},  // Inception
      {"MaxPool", 3, 13, 14, 3, 2, 2, 2, {0, 1, 1, 0}, 1, 0, 1},
      {"MaxPool", 3, 9, 10, 2, 3, 1, 2, {1, 0, 0, 2}, 1, 0, 2},     // dilated
      {"MaxPool", 2, 7, 7, 2, 2, 2, 2, {0, 0, 0, 0}, 1, 0, 1},
      {"AveragePool", 6, 35, 35, 3, 3, 1, 1, {1, 1, 1, 1}, 0, 0, 1},  // Inception, exclude pad
      {"AveragePool", 6, 35, 35, 3, 3, 1, 1, {1, 1, 1, 1}, 0, 1, 1},  // include pad
      {"AveragePool", 4, 11, 12, 3, 3, 2, 2, {1, 0, 2, 1}, 1, 1, 1},  // ceil + include pad
      {"AveragePool", 4, 11, 12, 3, 2, 2, 3, {1, 0, 0, 1}, 1, 0, 1},
      {"AveragePool", 2, 8, 8, 8, 8, 1, 1, {0, 0, 0, 0}, 0, 0, 1},
      // Rows of one vector shifted inwards (17 wide), of 8 lanes (8 to 15
      // wide), and plane counts that do not fill the last 16-plane task.
      {"AveragePool", 21, 17, 17, 3, 3, 1, 1, {1, 1, 1, 1}, 0, 1, 1},  // Inception Mixed_6b..e
      {"AveragePool", 37, 8, 8, 3, 3, 1, 1, {1, 1, 1, 1}, 0, 1, 1},    // Inception Mixed_7b, 7c
      {"AveragePool", 3, 13, 12, 3, 3, 1, 1, {1, 1, 1, 1}, 0, 0, 1},
      {"MaxPool", 9, 35, 35, 3, 3, 2, 2, {0, 0, 0, 0}, 0, 0, 1},  // Inception Mixed_6a: 17 wide
      {"MaxPool", 5, 20, 23, 3, 3, 2, 2, {1, 1, 1, 1}, 0, 0, 1},  // 12 wide, stride 2
      {"AveragePool", 3, 70, 66, 3, 3, 1, 1, {1, 1, 1, 1}, 0, 0, 1},  // rows of 64+: row-sliding schedule
      {"MaxPool", 2, 9, 80, 3, 3, 2, 2, {1, 1, 0, 1}, 0, 0, 1},       // rows of 64+, short plane
      {"MaxPool", 3, 16, 70, 3, 3, 3, 3, {1, 1, 1, 1}, 0, 0, 1},      // rows of 64+, stride 3: planar
      {"MaxPool", 2, 6, 64, 3, 40, 2, 2, {0, 0, 0, 0}, 0, 0, 1},      // rows of 64+, 13 outputs wide: planar
      {"MaxPool", 3, 15, 68, 3, 3, 1, 1, {1, 1, 1, 1}, 0, 0, 2},      // rows of 64+, dilated: planar
      {"AveragePool", 3, 18, 66, 3, 3, 2, 1, {1, 1, 1, 1}, 0, 1, 1},  // rows of 64+, strides 2 (y), 1 (x)
      {"MaxPool", 2, 80, 70, 3, 3, 1, 2, {1, 1, 1, 1}, 0, 0, 1},      // rows of 64+, strides 1 (y), 2 (x), 3 bands
  };
  std::uint32_t seed = 50;
  for (const auto& k : cases) {
    GraphBuilder b;
    auto x = b.input("x", {2, k.c, k.h, k.w});
    g::Attributes a = attrs({{"kernel_shape", Ints{k.kh, k.kw}},
                             {"strides", Ints{k.sy, k.sx}},
                             {"pads", k.pads},
                             {"ceil_mode", k.ceil_mode}});
    if (k.op == "AveragePool") a.set("count_include_pad", k.count_include_pad);
    if (k.dil != 1) a.set("dilations", Ints{k.dil, k.dil});
    auto y = b.node(k.op, {x}, a);
    g::Graph graph = b.finish({y});
    std::string desc;
    EXPECT_LE(compare_host_to_reference(graph, seed++, 2, &desc), kTol)
        << k.op << " " << k.h << "x" << k.w << " k" << k.kh << "x" << k.kw << " ceil " << k.ceil_mode << " cip "
        << k.count_include_pad;
    EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
  }
  (void)rng;
}

// An average pool read only by a 1x1 convolution with fewer output
// channels runs after it (Inception's branch_pool; graph/canonicalize); the
// other cases keep the pool first. Each on the host against the reference,
// and whether the swap happened by the prepared graph's order.
TEST(HostPool, AveragePoolMovesAfterItsPointwiseConv) {
  struct SwapCase {
    std::int64_t c, h, w, m, stride, count_include_pad;
    bool bias, relu, second_reader, swapped;
  };
  const std::vector<SwapCase> cases = {
      {48, 35, 35, 16, 1, 1, true, true, false, true},   // Mixed_5b, include pad
      {48, 35, 35, 16, 1, 0, true, true, false, true},   // exclude pad: edge windows divide by fewer taps
      {64, 17, 17, 24, 1, 1, true, false, false, true},  // no activation
      {96, 8, 8, 32, 1, 1, false, true, false, true},    // no bias, 8x8
      {16, 17, 17, 24, 1, 1, true, true, false, false},  // more output than input channels
      {48, 17, 17, 16, 2, 1, true, true, false, false},  // strided pool: the conv would cost 4x
      {48, 17, 17, 16, 1, 1, true, true, true, false},   // the pool's output is read twice
  };
  std::uint32_t seed = 90;
  for (const auto& k : cases) {
    std::mt19937 rng(seed);
    GraphBuilder b;
    auto x = b.input("x", {1, k.c, k.h, k.w});
    auto p = b.node("AveragePool", {x},
                    attrs({{"kernel_shape", Ints{3, 3}},
                           {"strides", Ints{k.stride, k.stride}},
                           {"pads", Ints{1, 1, 1, 1}},
                           {"count_include_pad", k.count_include_pad}}));
    std::vector<g::ValueId> ins{p, b.constant("w", random_tensor(rng, {k.m, k.c, 1, 1}))};
    if (k.bias) ins.push_back(b.constant("b", random_tensor(rng, {k.m})));
    auto y = b.node("Conv", ins, attrs({{"kernel_shape", Ints{1, 1}}}));
    if (k.relu) y = b.node("Relu", {y});
    std::vector<g::ValueId> outs{y};
    if (k.second_reader) outs.push_back(b.node("Relu", {p}));
    g::Graph graph = b.finish(outs);
    // Streamed, not `"C" + std::to_string(...)`: GCC 12's -Wrestrict false
    // positive on that pattern fails -Werror builds depending on inlining.
    std::ostringstream what;
    what << "C" << k.c << " " << k.h << "x" << k.w << " M" << k.m << " s" << k.stride << " cip " << k.count_include_pad;
    EXPECT_LE(compare_host_to_reference(graph, seed++, 2), kTol) << what.str();

    std::size_t conv_at = graph.nodes.size(), pool_at = graph.nodes.size();
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
      if (graph.nodes[i].op_type == "Conv") conv_at = std::min(conv_at, i);
      if (graph.nodes[i].op_type == "AveragePool") pool_at = std::min(pool_at, i);
    }
    EXPECT_EQ(conv_at < pool_at, k.swapped) << what.str();
  }
}

TEST(HostPool, GlobalAverage) {
  for (auto shape : {g::Shape{1, 512, 7, 7}, g::Shape{2, 19, 5, 3}, g::Shape{1, 3, 1, 1}, g::Shape{1, 2048, 8, 8}}) {
    GraphBuilder b;
    auto y = b.node("GlobalAveragePool", {b.input("x", shape)});
    g::Graph graph = b.finish({y});
    EXPECT_LE(compare_host_to_reference(graph, 3), kTol) << g::shape_string(shape);
  }
}

TEST(HostGemm, GemmAndMatMul) {
  std::mt19937 rng(9);
  struct GemmCase {
    std::int64_t n, k, m;
    bool trans_b;
    float alpha, beta;
    g::Shape c;  // {} for none
    bool relu;
  };
  const std::vector<GemmCase> cases = {
      {1, 512, 1000, true, 1.f, 1.f, {1000}, false},  // ResNet fc
      // One row: the GEMV kernel, k in 4 partial sums (k off a multiple of 4
      // here), a last panel of 1 and of 13 columns.
      {1, 37, 33, false, 0.5f, 2.f, {1, 33}, true},
      {1, 1281, 45, true, 1.f, 1.f, {45}, false},
      {3, 37, 45, false, 0.5f, 2.f, {3, 45}, true},
      {5, 16, 7, true, 1.f, 1.f, {1, 7}, false},
      {2, 9, 33, false, 1.f, 0.f, {}, false},
      {4, 20, 64, true, -1.f, 0.5f, {4, 1}, true},
      // From kGemmTallRows rows on, 12-row tasks (a tail of 6 rows here),
      // with C per row and C broadcast down the rows.
      {30, 37, 45, false, 0.5f, 2.f, {30, 45}, true},
      {50, 64, 70, true, 1.f, 1.f, {70}, false},
  };
  for (const auto& k : cases) {
    GraphBuilder b;
    auto a = b.input("a", {k.n, k.k});
    auto w = b.constant("w", random_tensor(rng, k.trans_b ? g::Shape{k.m, k.k} : g::Shape{k.k, k.m}));
    std::vector<g::ValueId> ins{a, w};
    if (!k.c.empty()) ins.push_back(b.constant("c", random_tensor(rng, k.c)));
    auto y = b.node("Gemm", ins,
                    attrs({{"transB", std::int64_t{k.trans_b ? 1 : 0}}, {"alpha", k.alpha}, {"beta", k.beta}}));
    if (k.relu) y = b.node("Relu", {y});
    g::Graph graph = b.finish({y});
    std::string desc;
    EXPECT_LE(compare_host_to_reference(graph, 11, 2, &desc), kTol) << k.n << "x" << k.k << "x" << k.m;
    EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
  }
  // MatMul by a constant matrix, A of any rank (a linear layer over tokens:
  // one GEMM over all rows).
  for (const g::Shape& as : {g::Shape{3, 20}, g::Shape{2, 29, 20}, g::Shape{1, 3, 5, 20}}) {
    GraphBuilder b;
    auto a = b.input("a", as);
    auto y = b.node("MatMul", {a, b.constant("w", random_tensor(rng, {20, 17}))});
    g::Graph graph = b.finish({y});
    std::string desc;
    EXPECT_LE(compare_host_to_reference(graph, 12, 2, &desc), kTol) << g::shape_string(as);
    EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
  }
  // Two run-time operands (attention): batches of GEMMs, either operand
  // broadcast; a partial broadcast stays on the reference kernel.
  struct RuntimeCase {
    g::Shape a, b;
    bool relu, fallback;
  };
  for (const auto& k : std::vector<RuntimeCase>{{{2, 3, 30, 16}, {2, 3, 16, 40}, false, false},
                                                {{12, 5, 64}, {12, 64, 5}, true, false},
                                                {{3, 30, 16}, {16, 33}, false, false},
                                                {{30, 16}, {2, 16, 33}, true, false},
                                                {{2, 1, 4, 8}, {3, 8, 5}, false, true}}) {
    GraphBuilder b;
    auto y = b.node("MatMul", {b.input("a", k.a), b.input("b", k.b)});
    if (k.relu) y = b.node("Relu", {y});
    g::Graph graph = b.finish({y});
    std::string desc;
    EXPECT_LE(compare_host_to_reference(graph, 13, 2, &desc), kTol) << g::shape_string(k.a) << g::shape_string(k.b);
    EXPECT_EQ(desc.find("fallback") != std::string::npos, k.fallback) << desc;
  }
}

TEST(HostElementwise, BroadcastingBinaryOps) {
  std::mt19937 rng(13);
  const std::vector<std::pair<g::Shape, g::Shape>> shapes = {
      {{1, 8, 5, 7}, {1, 8, 5, 7}}, {{2, 8, 5, 7}, {1, 8, 1, 1}}, {{2, 8, 5, 7}, {7}},
      {{3, 1, 4}, {2, 1}},          {{5}, {}},                    {{1, 1, 1, 9}, {2, 3, 4, 1}},
      {{2, 3, 4, 1}, {1, 1, 1, 19}},  // a constant along x, b dense: the kernel's third specialization
  };
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    for (const auto& [sa, sb] : shapes) {
      for (bool const_b : {false, true}) {
        GraphBuilder b;
        auto a = b.input("a", sa);
        g::ValueId bv;
        if (const_b) {
          bv = b.constant("b", random_tensor(rng, sb, 0.5f, 1.5f));
        } else {
          bv = b.input("b", sb);
        }
        auto y = b.node(op, {a, bv});
        g::Graph graph = b.finish({y});
        if (!const_b && std::string(op) == "Div") continue;  // random divisors near 0
        std::string desc;
        EXPECT_LE(compare_host_to_reference(graph, 17, 2, &desc), kTol)
            << op << " " << g::shape_string(sa) << " " << g::shape_string(sb);
        EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
      }
    }
  }
}

TEST(HostElementwise, AddWithFusedRelu) {
  GraphBuilder b;
  auto y = b.node("Relu", {b.node("Add", {b.input("a", {1, 16, 9, 9}), b.input("b", {1, 16, 9, 9})})});
  g::Graph graph = b.finish({y});
  EXPECT_LE(compare_host_to_reference(graph, 19), kTol);
}

TEST(HostElementwise, StandaloneActivations) {
  const std::vector<std::pair<std::string, g::Attributes>> acts = {
      {"Relu", {}},
      {"LeakyRelu", attrs({{"alpha", 0.2f}})},
      {"Sigmoid", {}},
      {"HardSigmoid", attrs({{"alpha", 0.3f}, {"beta", 0.4f}})},
      {"HardSwish", {}},
      {"Clip", attrs({{"min", -0.3f}, {"max", 0.6f}})},
  };
  for (const auto& [op, a] : acts) {
    GraphBuilder b;
    auto y = b.node(op, {b.input("x", {2, 3, 5, 7})}, a);
    g::Graph graph = b.finish({y});
    std::string desc;
    EXPECT_LE(compare_host_to_reference(graph, 23, 2, &desc), kTol) << op;
    EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
  }
}

// The activations with an exp (Sigmoid, SiLU, GELU's tanh form; activate()
// in generators.cpp): far from zero, where the exp overflows or underflows,
// they saturate exactly, and near it stay within the reference's precision
// (unclamped, Halide's exp gave Sigmoid(-1e30) = 1).
TEST(HostElementwise, ExpActivationsSaturateOnExtremeInputs) {
  std::vector<float> x;
  for (int i = -400; i < 400; ++i) x.push_back(static_cast<float>(i) * 0.25f);  // [-100, 100)
  for (float v : {-1e30f, -1e4f, -88.8f, -87.5f, -86.f, 86.f, 87.5f, 88.8f, 1e4f, 1e30f}) x.push_back(v);
  const auto n = static_cast<std::int64_t>(x.size());
  for (const std::string op : {"Sigmoid", "SiLU"}) {
    GraphBuilder b;
    auto in = b.input("x", {1, 1, 1, n});
    auto y = op == "Sigmoid" ? b.node("Sigmoid", {in}) : b.node("Mul", {in, b.node("Sigmoid", {in})});
    g::Graph graph = b.finish({y});
    const HostAndReference r = run_host_and_reference(graph, {x});
    const std::vector<float>&host = r.host[0], &ref = r.reference[0];
    for (std::size_t i = 0; i < x.size(); ++i)
      EXPECT_NEAR(host[i], ref[i], 2e-6 * std::max(1.f, std::fabs(ref[i]))) << op << " at x = " << x[i];
  }
}

TEST(HostNorm, StandaloneBatchNormalization) {
  std::mt19937 rng(29);
  for (auto shape : {g::Shape{2, 6, 5, 7}, g::Shape{3, 4}, g::Shape{1, 5, 9}}) {
    GraphBuilder b;
    const std::int64_t c = shape[1];
    auto y = b.node("BatchNormalization",
                    {b.input("x", shape), b.constant("s", random_tensor(rng, {c})),
                     b.constant("b", random_tensor(rng, {c})), b.constant("m", random_tensor(rng, {c})),
                     b.constant("v", random_tensor(rng, {c}, 0.5f, 2.f))},
                    attrs({{"epsilon", 1e-3f}}));
    g::Graph graph = b.finish({y});
    std::string desc;
    EXPECT_LE(compare_host_to_reference(graph, 31, 2, &desc), kTol) << g::shape_string(shape);
    EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
  }
}

TEST(HostNorm, Softmax) {
  for (auto [shape, axis] : std::vector<std::pair<g::Shape, std::int64_t>>{
           {{1, 1000}, 1}, {{3, 17}, -1}, {{2, 5, 3, 4}, 1}, {{2, 5, 3, 4}, 3}, {{4, 6}, 0},
           {{12, 49, 49}, -1}, {{1, 21, 20, 35}, 1},  // attention's rows; a segmentation map's classes
           {{2, 3, 197}, -1}, {{5, 16}, 1}, {{3, 1}, 1}, {{2, 33}, 1}}) {  // rows of 16 lanes: tails, one lane
    GraphBuilder b;
    auto y = b.node("Softmax", {b.input("x", shape)}, attrs({{"axis", axis}}));
    g::Graph graph = b.finish({y});
    EXPECT_LE(compare_host_to_reference(graph, 37), kTol) << g::shape_string(shape) << " axis " << axis;
  }
}

TEST(HostNorm, LayerNorm) {
  std::mt19937 rng(47);
  // Rows of 16 lanes and tails of them; ViT's and ConvNeXt's widths; no bias.
  for (auto [shape, axis, with_bias] : std::vector<std::tuple<g::Shape, std::int64_t, bool>>{
           {{2, 5, 16}, -1, true}, {{3, 7}, 1, true}, {{2, 3, 33}, 2, false}, {{1, 4, 4, 96}, -1, true},
           {{1, 9, 768}, -1, true}, {{2, 3, 4, 5}, 2, true}}) {
    GraphBuilder b;
    const g::Shape norm(shape.begin() + (axis < 0 ? axis + static_cast<std::int64_t>(shape.size()) : axis), shape.end());
    std::vector<g::ValueId> ins{b.input("x", shape), b.constant("scale", random_tensor(rng, norm))};
    if (with_bias) ins.push_back(b.constant("bias", random_tensor(rng, norm)));
    auto y = b.node("LayerNormalization", ins, attrs({{"axis", axis}, {"epsilon", 1e-3f}}));
    g::Graph graph = b.finish({y});
    std::string desc;
    EXPECT_LE(compare_host_to_reference(graph, 53, 2, &desc), kTol) << g::shape_string(shape) << " axis " << axis;
    EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
  }
}

TEST(HostShape, ConcatWritesProducersInPlace) {
  std::mt19937 rng(41);
  for (std::int64_t n : {1, 2}) {
    GraphBuilder b;
    auto x = b.input("x", {n, 4, 9, 9});
    auto c1 = b.node("Conv", {x, b.constant("w1", random_tensor(rng, {8, 4, 1, 1}))});
    auto c2 = b.node("Conv", {x, b.constant("w2", random_tensor(rng, {16, 4, 3, 3}))}, attrs({{"pads", Ints{1, 1, 1, 1}}}));
    auto p = b.node("MaxPool", {x}, attrs({{"kernel_shape", Ints{3, 3}}, {"strides", Ints{1, 1}}, {"pads", Ints{1, 1, 1, 1}}}));
    auto cat = b.node("Concat", {c1, c2, x, p}, attrs({{"axis", std::int64_t{1}}}));
    auto y = b.node("Relu", {b.node("Concat", {cat, c1}, attrs({{"axis", std::int64_t{1}}}))});
    g::Graph graph = b.finish({y, cat});
    EXPECT_LE(compare_host_to_reference(graph, 43), kTol) << "N=" << n;
  }
}

// HRNet's fuse layers: x0 + up2(x1) + up4(x2), then ReLU. Each Resize runs
// its Add as its epilogue (the last Add's ReLU too); a Resize whose output
// two ops read is a step of its own.
TEST(HostShape, UpsampledBranchAddsRunInTheResizeKernel) {
  auto scales = [](GraphBuilder& b, const std::string& name, float s) {
    return b.constant(name, g::Tensor::from_f32({4}, {1, 1, s, s}));
  };
  auto roi = [](GraphBuilder& b, const std::string& name) { return b.constant(name, g::Tensor::from_f32({0}, {})); };
  for (const std::string mode : {"nearest", "linear"}) {
    GraphBuilder b;
    const g::Attributes a = attrs({{"mode", mode}, {"coordinate_transformation_mode", std::string("pytorch_half_pixel")}});
    auto x0 = b.input("x0", {2, 6, 12, 20});
    auto x1 = b.input("x1", {2, 6, 6, 10}), x2 = b.input("x2", {2, 6, 3, 5});
    // In the order PyTorch exports them: each branch's Resize just before its Add.
    auto sum = b.node("Add", {x0, b.node("Resize", {x1, roi(b, "r1"), scales(b, "s2", 2)}, a)});
    auto y = b.node("Relu", {b.node("Add", {sum, b.node("Resize", {x2, roi(b, "r2"), scales(b, "s4", 4)}, a)})});
    g::Graph graph = b.finish({y});
    EXPECT_LE(compare_host_to_reference(graph, 47), kTol) << mode;
    EXPECT_EQ(HostExecutor(graph, {}).fused_nodes(), 2) << mode;
  }
  // The upsampled tensor is also an output: no fusion.
  GraphBuilder b;
  auto up = b.node("Resize", {b.input("x1", {1, 3, 5, 7}), roi(b, "r"), scales(b, "s2", 2)});
  auto y = b.node("Add", {b.input("x0", {1, 3, 10, 14}), up});
  g::Graph graph = b.finish({y, up});
  EXPECT_LE(compare_host_to_reference(graph, 48), kTol);
  EXPECT_EQ(HostExecutor(graph, {}).fused_nodes(), 0);
}

TEST(HostShape, Pad) {
  const std::vector<std::string> modes = {"constant", "reflect", "edge"};
  for (const std::string& mode : modes) {
    for (auto pads : {Ints{0, 0, 1, 2, 0, 0, 2, 1}, Ints{0, 1, 0, 3, 1, 0, 2, 0}}) {
      GraphBuilder b;
      auto x = b.input("x", {2, 3, 4, 5});
      std::vector<g::ValueId> ins{x, b.constant("pads", g::Tensor::from_i64({8}, pads))};
      if (mode == modes[0]) ins.push_back(b.constant("v", g::Tensor::scalar_f32(0.5f)));
      g::Attributes a;
      a.set("mode", mode);
      auto y = b.node("Pad", ins, a);
      g::Graph graph = b.finish({y});
      std::string desc;
      EXPECT_LE(compare_host_to_reference(graph, 45, 2, &desc), kTol) << mode;
      EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
    }
  }
}

TEST(HostShape, ReshapeFlattenAndFallbacks) {
  std::mt19937 rng(47);
  GraphBuilder b;
  auto x = b.input("x", {2, 3, 4, 5});
  auto padded = b.node("Pad", {x, b.constant("pads", g::Tensor::from_i64({8}, {0, 0, 1, 2, 0, 0, 2, 1}))});
  auto t = b.node("Transpose", {padded}, attrs({{"perm", Ints{0, 2, 3, 1}}}));
  auto f = b.node("Flatten", {t}, attrs({{"axis", std::int64_t{1}}}));
  auto m = b.node("Gemm", {f, b.constant("w", random_tensor(rng, {7 * 8 * 3, 10}))});
  auto y = b.node("Erf", {m});  // no host kernel: the reference runs it
  g::Graph graph = b.finish({y});
  std::string desc;
  EXPECT_LE(compare_host_to_reference(graph, 53, 2, &desc), kTol);
  EXPECT_NE(desc.find("reference fallback: Erf"), std::string::npos) << desc;
  EXPECT_EQ(desc.find("Transpose"), std::string::npos) << desc;
}

TEST(HostExecutorPlan, ArenaIsSmallerThanTheSumOfTensors) {
  std::mt19937 rng(59);
  GraphBuilder b;
  auto y = b.input("x", {1, 8, 32, 32});
  const char* names[] = {"w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"};
  for (const char* name : names)
    y = b.node("Relu", {b.node("Conv", {y, b.constant(name, random_tensor(rng, {8, 8, 3, 3}))},
                                attrs({{"pads", Ints{1, 1, 1, 1}}}))});
  g::Graph graph = b.finish({y});
  HostExecutor host(graph, {});
  EXPECT_LE(host.arena_bytes() * 3, host.unplanned_bytes()) << host.description();
  EXPECT_LE(compare_host_to_reference(graph, 61), kTol);
}

TEST(HostExecutorPlan, OneThreadAndManyThreadsAgree) {
  std::mt19937 rng(67);
  ConvCase k{1, 16, 20, 20, 32, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, "Relu"};
  g::Graph graph = conv_graph(k, rng);
  // The pool cuts every loop into one part per thread: more threads than
  // cores, and than a loop has iterations (the 5x5 map), still cover every
  // iteration once.
  ConvCase small{1, 8, 5, 5, 8, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, true, ""};
  g::Graph small_graph = conv_graph(small, rng);
  for (int threads : {1, 2, 3, 5, 8}) {
    EXPECT_LE(compare_host_to_reference(graph, 71, threads), kTol) << threads << " threads";
    EXPECT_LE(compare_host_to_reference(small_graph, 72, threads), kTol) << threads << " threads";
  }
}

// Zero-element tensors (ONNX reshape_allowzero): nothing to compute, but the
// outputs are valid and a run must not fail on them.
TEST(HostExecutorPlan, ZeroElementOutputs) {
  GraphBuilder b;
  auto x = b.input("x", {0, 3, 4});
  auto shape = b.constant("shape", g::Tensor::from_i64({3}, {3, 4, 0}));
  auto r = b.node("Reshape", {x, shape}, attrs({{"allowzero", std::int64_t{1}}}));
  auto y = b.node("Relu", {r});
  // Folded at load: a constant output with no data.
  auto c = b.node("Reshape", {b.constant("empty", g::Tensor(g::DType::f32, {0, 3, 4})), shape},
                  attrs({{"allowzero", std::int64_t{1}}}));
  auto z = b.input("z", {2, 3});
  auto w = b.node("Relu", {z});
  g::Graph graph = b.finish({r, y, c, w});
  for (int i = 0; i < 3; ++i) ASSERT_EQ(graph.value(graph.outputs[i]).shape, (g::Shape{3, 4, 0}));
  ASSERT_TRUE(graph.is_constant(graph.outputs[2]));
  HostExecutor host(graph, {});
  const float zin[6] = {-1, 2, -3, 4, -5, 6};
  float wout[6] = {};
  const float* in[] = {nullptr, zin};
  float* out[] = {nullptr, nullptr, nullptr, wout};
  host.run(in, out);
  host.run(in, out);
  EXPECT_EQ(std::vector<float>(wout, wout + 6), (std::vector<float>{0, 2, 0, 4, 0, 6}));
}

// Run-time target dispatch (codegen/halide/sources.cmake): the level the
// kernels run at is reported, and VKFUSE_HOST_TARGET caps it. CTest runs this
// suite again under VKFUSE_HOST_TARGET=avx2 and =sse41, so that every kernel
// of the fallback targets is checked against the reference too.
TEST(HostTarget, ReportsTheChosenLevelAndHonoursTheCap) {
  namespace hk = vkfuse::codegen::halide;
  const std::string desc = hk::target_description();
  std::printf("Halide kernels: %s\n", desc.c_str());
  const std::string level = hk::selected_target_level();
  if (level.empty()) GTEST_SKIP() << "single-target build: " << desc;
  const std::vector<std::string> order = {"sse41", "avx2", "avx512"};
  auto rank = [&](const std::string& l) { return std::find(order.begin(), order.end(), l) - order.begin(); };
  ASSERT_LT(rank(level), 3) << level;
  EXPECT_EQ(desc.rfind("x86-64-" + level + " (multi-target: ", 0), 0u) << desc;
  // The host plans some tile shapes around AVX-512's register tiles.
  EXPECT_EQ(hk::wide_register_kernels(), level == "avx512") << desc;
  if (const char* cap = std::getenv("VKFUSE_HOST_TARGET"); cap && *cap) {
    ASSERT_LT(rank(cap), 3) << "VKFUSE_HOST_TARGET=" << cap;
    EXPECT_LE(rank(level), rank(cap)) << desc;
    EXPECT_NE(desc.find(std::string("capped by VKFUSE_HOST_TARGET=") + cap), std::string::npos) << desc;
  }
}
