// Import, shape inference, constant folding and canonicalization, on small
// hand-built ONNX graphs whose expected result is written beside them.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "graph/ops.h"
#include "graph/passes.h"
#include "runtime/reference_executor.h"
#include "tests/onnx_builder.h"
#include "vkfuse/vkfuse.h"

using vkfuse::Error;
using vkfuse::ErrorKind;
using vkfuse::testing::OnnxBuilder;
namespace g = vkfuse::graph;

namespace {

g::Graph prepared(const OnnxBuilder& b) {
  auto bytes = b.byte_vector();
  g::Graph graph = g::import_onnx(bytes);
  g::prepare_graph(graph);
  return graph;
}

std::vector<std::string> op_types(const g::Graph& graph) {
  std::vector<std::string> ops;
  for (auto& n : graph.nodes) ops.push_back(n.op_type);
  return ops;
}

// Expects fn to throw vkfuse::Error of `kind` whose message contains every needle.
template <class Fn>
void expect_error(Fn fn, ErrorKind kind, std::vector<std::string> needles) {
  try {
    fn();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "error messages are one line: " << msg;
    for (auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

std::vector<float> run_model(const OnnxBuilder& b, const std::vector<float>& x, const std::string& strategy = "fused") {
  auto bytes = b.byte_vector();
  vkfuse::LoadOptions options;
  options.strategy = strategy;
  auto model = vkfuse::Model::load_bytes(bytes, options);
  std::vector<float> y(static_cast<std::size_t>(model.outputs()[0].element_count()));
  vkfuse::InputBuffer in{model.inputs()[0].name, x};
  vkfuse::OutputBuffer out{model.outputs()[0].name, y};
  model.run({&in, 1}, {&out, 1});
  return y;
}

}  // namespace

TEST(Canonicalize, FoldsBatchNormIntoConvAndFusesRelu) {
  auto b = vkfuse::testing::conv_bn_relu_model();
  g::Graph graph = prepared(b);
  EXPECT_EQ(op_types(graph), (std::vector<std::string>{"Conv", "GlobalAveragePool"}));
  EXPECT_EQ(graph.nodes[0].activation.kind, g::Activation::Kind::Relu);
  EXPECT_EQ(graph.value(graph.outputs[0]).name, "y");
  EXPECT_EQ(graph.value(graph.outputs[0]).shape, (g::Shape{1, 3, 1, 1}));

  // Independent computation: conv, then BN with its own formula, ReLU, mean.
  std::vector<float> x(50);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  const auto& proto = b.proto().graph();
  auto init = [&](const std::string& name) {
    for (auto& t : proto.initializer())
      if (t.name() == name) return std::vector<float>(t.float_data().begin(), t.float_data().end());
    return std::vector<float>{};
  };
  auto w = init("w"), bias = init("b"), scale = init("scale"), beta = init("bias"), mean = init("mean"),
       var = init("var");
  std::vector<float> expected(3);
  for (int oc = 0; oc < 3; ++oc) {
    double sum = 0;
    for (int oy = 0; oy < 5; ++oy)
      for (int ox = 0; ox < 5; ++ox) {
        double acc = bias[oc];
        for (int ic = 0; ic < 2; ++ic)
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              int iy = oy + ky - 1, ix = ox + kx - 1;
              if (iy < 0 || iy >= 5 || ix < 0 || ix >= 5) continue;
              acc += static_cast<double>(x[static_cast<std::size_t>((ic * 5 + iy) * 5 + ix)]) *
                     w[static_cast<std::size_t>(((oc * 2 + ic) * 3 + ky) * 3 + kx)];
            }
        double bn = (acc - mean[oc]) / std::sqrt(var[oc] + 1e-5) * scale[oc] + beta[oc];
        sum += std::max(0.0, bn);
      }
    expected[static_cast<std::size_t>(oc)] = static_cast<float>(sum / 25.0);
  }
  auto y = run_model(b, x);
  ASSERT_EQ(y.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(y[static_cast<std::size_t>(i)], expected[static_cast<std::size_t>(i)], 1e-5);
}

TEST(Canonicalize, KeepsStandaloneBatchNormWhenConvOutputIsShared) {
  auto b = vkfuse::testing::conv_bn_relu_model();
  // A second reader of the conv output prevents folding.
  b.proto().mutable_graph()->mutable_output(0)->set_name("y");
  b.node("Relu", {"c"}, {"c2"}, "second_reader");
  b.output("c2", {1, 3, 5, 5});
  g::Graph graph = prepared(b);
  auto ops = op_types(graph);
  std::sort(ops.begin(), ops.end());
  EXPECT_EQ(ops, (std::vector<std::string>{"BatchNormalization", "Conv", "GlobalAveragePool", "Relu"}));
  // The Relu after the BN fuses into the BN; the second reader's stays alone.
  for (auto& n : graph.nodes) {
    if (n.op_type == "BatchNormalization") {
      EXPECT_EQ(n.activation.kind, g::Activation::Kind::Relu);
    }
  }
}

TEST(Canonicalize, DropsIdentityAndDropoutKeepingOutputNames) {
  OnnxBuilder b;
  b.input("x", {2, 3}).output("y");
  b.node("Identity", {"x"}, {"a"});
  b.node("Relu", {"a"}, {"r"});
  auto& d = b.node("Dropout", {"r"}, {"y"});
  OnnxBuilder::attr_float(d, "ratio", 0.5f);
  g::Graph graph = prepared(b);
  EXPECT_EQ(op_types(graph), (std::vector<std::string>{"Relu"}));
  EXPECT_EQ(graph.value(graph.outputs[0]).name, "y");
  auto y = run_model(b, {-1, 2, -3, 4, -5, 6});
  EXPECT_EQ(y, (std::vector<float>{0, 2, 0, 4, 0, 6}));
}

// As Swin exports its attention dropout: training_mode true with ratio 0,
// and a mask output nothing reads.
TEST(Canonicalize, DropsTrainingModeDropoutOfRatioZero) {
  for (const float ratio : {0.f, 0.5f}) {
    OnnxBuilder b(13);
    b.input("x", {2, 3}).output("y");
    b.initializer("ratio", {}, {ratio});
    b.initializer_i64("training", {}, {1});
    b.node("Relu", {"x"}, {"r"});
    b.node("Dropout", {"r", "ratio", "training"}, {"d", "mask"});
    b.node("Neg", {"d"}, {"y"});
    if (ratio == 0.f) {
      EXPECT_EQ(op_types(prepared(b)), (std::vector<std::string>{"Relu", "Neg"}));
      EXPECT_EQ(run_model(b, {-1, 2, -3, 4, -5, 6}), (std::vector<float>{0, -2, 0, -4, 0, -6}));
    } else {
      expect_error([&] { prepared(b); }, ErrorKind::Unsupported, {"training_mode"});
    }
  }
}

// MaxViT's attention as exported: two Einsums that are batched matrix
// products become MatMuls (the first after a Transpose of its B); the result
// against a naive evaluation of the equations. An Einsum whose output is
// transposed stays.
TEST(Canonicalize, EinsumMatrixProductsBecomeMatMuls) {
  const std::int64_t B = 2, I = 3, D = 4, J = 5, E = 3;
  std::vector<float> w(static_cast<std::size_t>(B * J * D)), v(static_cast<std::size_t>(B * J * E)),
      x(static_cast<std::size_t>(B * I * D));
  for (std::size_t q = 0; q < w.size(); ++q) w[q] = std::cos(0.3f * static_cast<float>(q));
  for (std::size_t q = 0; q < v.size(); ++q) v[q] = std::sin(0.7f * static_cast<float>(q));
  for (std::size_t q = 0; q < x.size(); ++q) x[q] = std::sin(0.37f * static_cast<float>(q));
  OnnxBuilder b(13);
  b.input("x", {B, I, D}).output("y");
  b.initializer("w", {B, J, D}, w);
  b.initializer("v", {B, J, E}, v);
  OnnxBuilder::attr_string(b.node("Einsum", {"x", "w"}, {"s"}), "equation", "B I D, B J D -> B I J");
  OnnxBuilder::attr_string(b.node("Einsum", {"s", "v"}, {"y"}), "equation", "bij,bje->bie");
  const auto ops = op_types(prepared(b));
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "MatMul"), 2);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "Einsum"), 0);
  std::vector<float> expect(static_cast<std::size_t>(B * I * E), 0.f);
  for (std::int64_t bb = 0; bb < B; ++bb)
    for (std::int64_t i = 0; i < I; ++i)
      for (std::int64_t j = 0; j < J; ++j) {
        double sij = 0;
        for (std::int64_t d = 0; d < D; ++d)
          sij += double(x[static_cast<std::size_t>((bb * I + i) * D + d)]) * w[static_cast<std::size_t>((bb * J + j) * D + d)];
        for (std::int64_t e = 0; e < E; ++e)
          expect[static_cast<std::size_t>((bb * I + i) * E + e)] +=
              static_cast<float>(sij * v[static_cast<std::size_t>((bb * J + j) * E + e)]);
      }
  const auto y = run_model(b, x);
  ASSERT_EQ(y.size(), expect.size());
  for (std::size_t q = 0; q < y.size(); ++q) EXPECT_NEAR(y[q], expect[q], 1e-4f) << q;

  OnnxBuilder t(13);
  t.input("x", {B, I, D}).output("y");
  t.initializer("w", {B, J, D}, w);
  OnnxBuilder::attr_string(t.node("Einsum", {"x", "w"}, {"y"}), "equation", "bid,bjd->bji");
  EXPECT_EQ(op_types(prepared(t)), (std::vector<std::string>{"Einsum"}));
}

// A linear layer as torch exports it over tokens (MatMul by a constant, then
// a bias Add, then an activation) becomes one Gemm over the rows with the bias
// as C and the activation as its epilogue; on every strategy the outputs are
// a naive evaluation's.
TEST(Canonicalize, MatMulWithBiasBecomesGemmOverTheRows) {
  const std::int64_t B = 2, T = 3, K = 4, M = 5;
  std::vector<float> w(static_cast<std::size_t>(K * M)), bias(static_cast<std::size_t>(M)),
      x(static_cast<std::size_t>(B * T * K));
  for (std::size_t q = 0; q < w.size(); ++q) w[q] = std::cos(0.3f * static_cast<float>(q));
  for (std::size_t q = 0; q < bias.size(); ++q) bias[q] = 0.25f * static_cast<float>(q) - 0.5f;
  for (std::size_t q = 0; q < x.size(); ++q) x[q] = std::sin(0.37f * static_cast<float>(q));
  auto model = [&](bool bias_first, std::vector<std::int64_t> bias_shape, std::vector<std::int64_t> x_shape) {
    OnnxBuilder b(13);
    b.input("x", x_shape).output("y");
    b.initializer("w", {K, M}, w);
    std::vector<float> bv(static_cast<std::size_t>(g::element_count(bias_shape)));
    for (std::size_t q = 0; q < bv.size(); ++q) bv[q] = bias[q % bias.size()];
    b.initializer("b", bias_shape, bv);
    b.node("MatMul", {"x", "w"}, {"m"});
    b.node("Add", bias_first ? std::vector<std::string>{"b", "m"} : std::vector<std::string>{"m", "b"}, {"s"});
    b.node("Relu", {"s"}, {"y"});
    return b;
  };
  // bias_along_rows: the [T, 1] bias below, bias[t % M] for token t.
  auto expect = [&](std::int64_t rows, bool bias_along_rows = false) {
    std::vector<float> y(static_cast<std::size_t>(rows * M));
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < M; ++j) {
        double acc = bias[static_cast<std::size_t>(bias_along_rows ? (i % T) % M : j)];
        for (std::int64_t k = 0; k < K; ++k)
          acc += double(x[static_cast<std::size_t>(i * K + k)]) * w[static_cast<std::size_t>(k * M + j)];
        y[static_cast<std::size_t>(i * M + j)] = static_cast<float>(std::max(acc, 0.0));
      }
    return y;
  };
  auto check = [&](const OnnxBuilder& b, const std::vector<float>& want) {
    for (const std::string& strategy : vkfuse::available_strategies()) {
      if (strategy != "fused" && strategy != "cpu" && strategy != "gpu" && strategy != "reference") continue;
      const auto y = run_model(b, x, strategy);
      ASSERT_EQ(y.size(), want.size());
      for (std::size_t q = 0; q < y.size(); ++q) EXPECT_NEAR(y[q], want[q], 1e-5f) << strategy << " " << q;
    }
  };

  // Tokens: [B, T, K] by [K, M], bias [M] after or before the product.
  for (bool bias_first : {false, true}) {
    const OnnxBuilder b = model(bias_first, {M}, {B, T, K});
    const g::Graph graph = prepared(b);
    ASSERT_EQ(op_types(graph), (std::vector<std::string>{"Reshape", "Gemm", "Reshape"}));
    EXPECT_EQ(graph.nodes[1].activation.kind, g::Activation::Kind::Relu);
    check(b, expect(B * T));
  }
  // Rows already: [B*T, K], a [1, M] bias: one Gemm.
  {
    const OnnxBuilder b = model(false, {1, M}, {B * T, K});
    EXPECT_EQ(op_types(prepared(b)), (std::vector<std::string>{"Gemm"}));
    check(b, expect(B * T));
  }
  // A bias that varies along the rows is no Gemm's C here: unchanged.
  {
    const OnnxBuilder b = model(false, {T, 1}, {B, T, K});
    const auto ops = op_types(prepared(b));
    EXPECT_EQ(std::count(ops.begin(), ops.end(), "Gemm"), 0);
    EXPECT_EQ(std::count(ops.begin(), ops.end(), "MatMul"), 1);
    check(b, expect(B * T, true));
  }
}

// ConvNeXt's layer scale: a per-channel Mul after the linear layer's output
// is permuted back to channels first folds into the Gemm's weights and bias.
TEST(Canonicalize, ChannelScaleAfterTransposeFoldsIntoGemm) {
  const std::int64_t T = 6, K = 4, M = 3;
  std::vector<float> w(static_cast<std::size_t>(K * M)), bias(static_cast<std::size_t>(M)),
      gamma(static_cast<std::size_t>(M)), tgamma(static_cast<std::size_t>(T)), x(static_cast<std::size_t>(T * K));
  for (std::size_t q = 0; q < w.size(); ++q) w[q] = std::cos(0.3f * static_cast<float>(q));
  for (std::size_t q = 0; q < bias.size(); ++q) bias[q] = 0.25f * static_cast<float>(q) - 0.5f;
  for (std::size_t q = 0; q < gamma.size(); ++q) gamma[q] = 0.5f + static_cast<float>(q);
  for (std::size_t q = 0; q < tgamma.size(); ++q) tgamma[q] = 1.5f - 0.2f * static_cast<float>(q);
  for (std::size_t q = 0; q < x.size(); ++q) x[q] = std::sin(0.37f * static_cast<float>(q));
  // x [1, T, K] -> Linear -> [1, T, M] -> Transpose -> [1, M, T] -> Mul(scale)
  auto model = [&](bool per_channel) {
    OnnxBuilder b(13);
    b.input("x", {1, T, K}).output("y");
    b.initializer("w", {K, M}, w);
    b.initializer("b", {M}, bias);
    if (per_channel) b.initializer("s", {M, 1}, gamma);
    else b.initializer("s", {1, T}, tgamma);
    b.node("MatMul", {"x", "w"}, {"m"});
    b.node("Add", {"m", "b"}, {"l"});
    OnnxBuilder::attr_ints(b.node("Transpose", {"l"}, {"t"}), "perm", {0, 2, 1});
    b.node("Mul", {"t", "s"}, {"y"});
    return b;
  };
  for (bool per_channel : {true, false}) {
    const OnnxBuilder b = model(per_channel);
    const auto ops = op_types(prepared(b));
    EXPECT_EQ(std::count(ops.begin(), ops.end(), "Mul"), per_channel ? 0 : 1);
    EXPECT_EQ(std::count(ops.begin(), ops.end(), "Gemm"), 1);
    std::vector<float> want(static_cast<std::size_t>(M * T));
    for (std::int64_t j = 0; j < M; ++j)
      for (std::int64_t t = 0; t < T; ++t) {
        double acc = bias[static_cast<std::size_t>(j)];
        for (std::int64_t k = 0; k < K; ++k)
          acc += double(x[static_cast<std::size_t>(t * K + k)]) * w[static_cast<std::size_t>(k * M + j)];
        const float scale = per_channel ? gamma[static_cast<std::size_t>(j)] : tgamma[static_cast<std::size_t>(t)];
        want[static_cast<std::size_t>(j * T + t)] = static_cast<float>(acc * scale);
      }
    for (const std::string& strategy : vkfuse::available_strategies()) {
      if (strategy != "cpu" && strategy != "gpu") continue;
      const auto y = run_model(b, x, strategy);
      ASSERT_EQ(y.size(), want.size());
      for (std::size_t q = 0; q < y.size(); ++q) EXPECT_NEAR(y[q], want[q], 1e-5f) << strategy << " " << q;
    }
  }
}

// The same fold on an ONNX Gemm as classifiers export it (B transposed,
// alpha and beta, a scalar C), scaled by a [M] constant.
TEST(Canonicalize, ColumnScaleFoldsIntoATransposedGemm) {
  const std::int64_t N = 3, K = 5, M = 4;
  std::vector<float> w(static_cast<std::size_t>(M * K)), gamma(static_cast<std::size_t>(M)),
      x(static_cast<std::size_t>(N * K));
  for (std::size_t q = 0; q < w.size(); ++q) w[q] = std::cos(0.3f * static_cast<float>(q));
  for (std::size_t q = 0; q < gamma.size(); ++q) gamma[q] = 0.5f + static_cast<float>(q);
  for (std::size_t q = 0; q < x.size(); ++q) x[q] = std::sin(0.37f * static_cast<float>(q));
  OnnxBuilder b(13);
  b.input("x", {N, K}).output("y");
  b.initializer("w", {M, K}, w);
  b.initializer("c", {}, {0.75f});
  b.initializer("s", {M}, gamma);
  auto& gemm = b.node("Gemm", {"x", "w", "c"}, {"m"});
  OnnxBuilder::attr_int(gemm, "transB", 1);
  OnnxBuilder::attr_float(gemm, "alpha", 0.5f);
  OnnxBuilder::attr_float(gemm, "beta", 2.f);
  b.node("Mul", {"s", "m"}, {"y"});
  EXPECT_EQ(op_types(prepared(b)), (std::vector<std::string>{"Gemm"}));
  std::vector<float> want(static_cast<std::size_t>(N * M));
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t j = 0; j < M; ++j) {
      double acc = 0;
      for (std::int64_t k = 0; k < K; ++k)
        acc += double(x[static_cast<std::size_t>(i * K + k)]) * w[static_cast<std::size_t>(j * K + k)];
      want[static_cast<std::size_t>(i * M + j)] =
          static_cast<float>((0.5 * acc + 2.0 * 0.75) * gamma[static_cast<std::size_t>(j)]);
    }
  const auto y = run_model(b, x, "cpu");
  ASSERT_EQ(y.size(), want.size());
  for (std::size_t q = 0; q < y.size(); ++q) EXPECT_NEAR(y[q], want[q], 1e-5f) << q;
}

TEST(Canonicalize, IdentityFromInputToOutputStays) {
  OnnxBuilder b;
  b.input("x", {2}).output("y");
  b.node("Identity", {"x"}, {"y"});
  EXPECT_EQ(op_types(prepared(b)), (std::vector<std::string>{"Identity"}));
  EXPECT_EQ(run_model(b, {1.5f, -2.f}), (std::vector<float>{1.5f, -2.f}));
}

TEST(Canonicalize, ClipWithConstantBoundsBecomesConvActivation) {
  OnnxBuilder b(13);
  b.input("x", {1, 1, 2, 2}).output("y");
  b.initializer("w", {1, 1, 1, 1}, {2.f});
  b.initializer("lo", {}, {0.f});
  b.initializer("hi", {}, {6.f});
  b.node("Conv", {"x", "w"}, {"c"});
  b.node("Clip", {"c", "lo", "hi"}, {"y"});
  g::Graph graph = prepared(b);
  ASSERT_EQ(op_types(graph), (std::vector<std::string>{"Conv"}));
  EXPECT_EQ(graph.nodes[0].activation.kind, g::Activation::Kind::Clip);
  EXPECT_FLOAT_EQ(graph.nodes[0].activation.alpha, 0.f);
  EXPECT_FLOAT_EQ(graph.nodes[0].activation.beta, 6.f);
  EXPECT_EQ(run_model(b, {-1.f, 1.f, 2.5f, 4.f}), (std::vector<float>{0.f, 2.f, 5.f, 6.f}));
}

TEST(Canonicalize, StandaloneClipGetsAttributes) {
  OnnxBuilder b(13);
  b.input("x", {4}).output("y");
  b.initializer("hi", {}, {1.f});
  b.node("Clip", {"x", "", "hi"}, {"y"});
  g::Graph graph = prepared(b);
  ASSERT_EQ(op_types(graph), (std::vector<std::string>{"Clip"}));
  EXPECT_EQ(graph.nodes[0].inputs.size(), 1u);
  EXPECT_FLOAT_EQ(graph.nodes[0].attrs.get_float("max", 0.f), 1.f);
  EXPECT_EQ(run_model(b, {-5.f, 0.5f, 1.f, 3.f}), (std::vector<float>{-5.f, 0.5f, 1.f, 1.f}));
}

TEST(Canonicalize, ZeroPadBeforeAveragePoolBecomesPoolPads) {
  // Pad 1 on each side of a 3x3 map, then a 3x3 stride-1 average: every
  // window divides by 9, zeros included (what count_include_pad = 1 means).
  auto model = [](bool nonzero_value) {
    OnnxBuilder b(13);
    b.input("x", {1, 1, 3, 3}).output("y");
    b.initializer_i64("pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1});
    b.initializer("value", {}, {nonzero_value ? 1.f : 0.f});
    b.node("Pad", {"x", "pads", "value"}, {"p"});
    auto& pool = b.node("AveragePool", {"p"}, {"y"});
    OnnxBuilder::attr_ints(pool, "kernel_shape", {3, 3});
    return b;
  };
  const std::vector<float> x{1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<float> expected(9);
  for (int oy = 0; oy < 3; ++oy)
    for (int ox = 0; ox < 3; ++ox) {
      float sum = 0;
      for (int y = oy - 1; y <= oy + 1; ++y)
        for (int xx = ox - 1; xx <= ox + 1; ++xx)
          if (y >= 0 && y < 3 && xx >= 0 && xx < 3) sum += x[static_cast<std::size_t>(y * 3 + xx)];
      expected[static_cast<std::size_t>(oy * 3 + ox)] = sum / 9.f;
    }
  g::Graph graph = prepared(model(false));
  ASSERT_EQ(op_types(graph), (std::vector<std::string>{"AveragePool"}));
  EXPECT_EQ(graph.nodes[0].attrs.get_ints("pads"), (std::vector<std::int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(graph.nodes[0].attrs.get_int("count_include_pad", 0), 1);
  auto y = run_model(model(false), x);
  for (std::size_t i = 0; i < 9; ++i) EXPECT_NEAR(y[i], expected[i], 1e-6) << i;
  // Padding with anything but zero is not a pool pad: the Pad stays.
  EXPECT_EQ(op_types(prepared(model(true))), (std::vector<std::string>{"Pad", "AveragePool"}));
}

// Inception's branch_pool: a 3x3 "same" average pool read by a 1x1 conv with
// fewer output channels pools after the conv; the results (run on the host)
// are the unswapped graph's (the reference on the imported graph, not
// canonicalized), with and without a bias, an activation, the padding in
// the divisor.
TEST(Canonicalize, AveragePoolRunsAfterItsNarrowingPointwiseConv) {
  auto model = [](std::int64_t m, std::int64_t stride, bool bias, bool relu, std::int64_t count_include_pad) {
    OnnxBuilder b(13);
    b.input("x", {1, 6, 5, 4}).output("y");
    std::vector<float> w(static_cast<std::size_t>(m * 6));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.37f * static_cast<float>(i));
    b.initializer("w", {m, 6, 1, 1}, w);
    auto& pool = b.node("AveragePool", {"x"}, {"p"});
    OnnxBuilder::attr_ints(pool, "kernel_shape", {3, 3});
    OnnxBuilder::attr_ints(pool, "pads", {1, 1, 1, 1});
    OnnxBuilder::attr_ints(pool, "strides", {stride, stride});
    OnnxBuilder::attr_int(pool, "count_include_pad", count_include_pad);
    std::vector<std::string> ins{"p", "w"};
    if (bias) {
      std::vector<float> bv(static_cast<std::size_t>(m));
      for (std::size_t i = 0; i < bv.size(); ++i) bv[i] = 0.25f - 0.2f * static_cast<float>(i);
      b.initializer("b", {m}, bv);
      ins.push_back("b");
    }
    b.node("Conv", ins, {relu ? "c" : "y"});
    if (relu) b.node("Relu", {"c"}, {"y"});
    return b;
  };
  struct Case {
    bool bias, relu;
    std::int64_t count_include_pad;
  };
  for (const Case k : {Case{true, true, 0}, Case{false, true, 0}, Case{true, false, 1}, Case{false, false, 1}}) {
    SCOPED_TRACE(std::string(k.bias ? "bias" : "no bias") + (k.relu ? ", relu" : "") + ", count_include_pad " +
                 std::to_string(k.count_include_pad));
    const OnnxBuilder swapped = model(2, 1, k.bias, k.relu, k.count_include_pad);
    const std::vector<std::string> ops = k.bias || k.relu ? std::vector<std::string>{"Conv", "AveragePool", "Add"}
                                                          : std::vector<std::string>{"Conv", "AveragePool"};
    EXPECT_EQ(op_types(prepared(swapped)), ops);
    auto bytes = swapped.byte_vector();
    g::Graph plain = g::import_onnx(bytes);
    plain.sort();
    g::infer_shapes(plain);
    std::vector<float> x(120);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.9f * static_cast<float>(i));
    std::vector<float> expected(static_cast<std::size_t>(g::element_count(plain.value(plain.outputs[0]).shape)));
    const float* in[] = {x.data()};
    float* out[] = {expected.data()};
    vkfuse::runtime::ReferenceExecutor(plain, 1).run(in, out);
    const std::vector<float> y = run_model(swapped, x);
    ASSERT_EQ(y.size(), expected.size());
    for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], expected[i], 1e-5) << i;
  }
  // More output channels than input, or a pool that shrinks the map: the pool stays first.
  EXPECT_EQ(op_types(prepared(model(8, 1, true, true, 0))), (std::vector<std::string>{"AveragePool", "Conv"}));
  EXPECT_EQ(op_types(prepared(model(2, 2, true, true, 0))), (std::vector<std::string>{"AveragePool", "Conv"}));
}

TEST(Canonicalize, SpatialReduceMeanBecomesGlobalAveragePool) {
  auto model = [](std::vector<std::int64_t> axes, std::int64_t keepdims) {
    OnnxBuilder b(13);
    b.input("x", {1, 3, 4, 5}).output("y");
    auto& r = b.node("ReduceMean", {"x"}, {"y"});
    OnnxBuilder::attr_ints(r, "axes", axes);
    OnnxBuilder::attr_int(r, "keepdims", keepdims);
    return b;
  };
  EXPECT_EQ(op_types(prepared(model({2, 3}, 1))), (std::vector<std::string>{"GlobalAveragePool"}));
  EXPECT_EQ(op_types(prepared(model({-1, -2}, 1))), (std::vector<std::string>{"GlobalAveragePool"}));
  // Anything else keeps its shape or reduces other axes: it stays.
  EXPECT_EQ(op_types(prepared(model({2, 3}, 0))), (std::vector<std::string>{"ReduceMean"}));
  EXPECT_EQ(op_types(prepared(model({1, 2, 3}, 1))), (std::vector<std::string>{"ReduceMean"}));
  EXPECT_EQ(op_types(prepared(model({3}, 1))), (std::vector<std::string>{"ReduceMean"}));
  std::vector<float> x(60);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  const auto y = run_model(model({2, 3}, 1), x);
  ASSERT_EQ(y.size(), 3u);
  for (std::size_t c = 0; c < 3; ++c) EXPECT_FLOAT_EQ(y[c], 20.f * static_cast<float>(c) + 9.5f) << c;
}

// SiLU, HardSwish (opset 13's x * HardSigmoid(x)) and GELU (erf and tanh
// forms) as torch exports them become their producer's epilogue; the results
// are the formulas', on every backend.
TEST(Canonicalize, GatedActivationsBecomeEpilogues) {
  enum class Gate { Silu, HardSwish, Gelu, GeluTanh };
  auto model = [](Gate gate, bool x_read_elsewhere) {
    OnnxBuilder b(13);
    b.input("x", {1, 2, 3, 3}).output("y");
    b.initializer("w", {2, 2, 1, 1}, {0.5f, -1.f, 2.f, 0.25f});
    b.node("Conv", {"x", "w"}, {"c"});
    std::string out = "g";
    if (gate == Gate::Silu) {
      b.node("Sigmoid", {"c"}, {"s"});
      b.node("Mul", {"c", "s"}, {"g"});
    } else if (gate == Gate::HardSwish) {
      auto& h = b.node("HardSigmoid", {"c"}, {"s"});
      OnnxBuilder::attr_float(h, "alpha", 1.f / 6.f);
      b.node("Mul", {"s", "c"}, {"g"});
    } else if (gate == Gate::GeluTanh) {  // F.gelu(x, approximate='tanh') from torch 1.13, opset 13
      b.initializer("kappa", {}, {0.044715f});
      b.initializer("beta", {}, {0.7978845834732056f});
      b.initializer("one", {}, {1.f});
      b.initializer("half", {}, {0.5f});
      b.node("Mul", {"c", "c"}, {"sq"});
      b.node("Mul", {"c", "sq"}, {"cube"});
      b.node("Mul", {"kappa", "cube"}, {"kc"});
      b.node("Add", {"c", "kc"}, {"s"});
      b.node("Mul", {"beta", "s"}, {"u"});
      b.node("Tanh", {"u"}, {"t"});
      b.node("Add", {"one", "t"}, {"a"});
      b.node("Mul", {"c", "a"}, {"m"});
      b.node("Mul", {"half", "m"}, {"g"});
    } else {
      b.initializer("r2", {}, {1.4142135f});
      b.initializer("one", {}, {1.f});
      b.initializer("half", {}, {0.5f});
      b.node("Div", {"c", "r2"}, {"d"});
      b.node("Erf", {"d"}, {"e"});
      b.node("Add", {"e", "one"}, {"a"});
      b.node("Mul", {"c", "a"}, {"m"});
      b.node("Mul", {"m", "half"}, {"g"});
    }
    if (x_read_elsewhere) {
      b.node("Add", {"g", "c"}, {"y"});
    } else {
      b.node("Identity", {out}, {"y"});
    }
    return b;
  };
  const std::vector<float> x{-3, -2, -1, -0.5f, 0, 0.5f, 1, 2, 3, 1, -1, 2, -2, 0.25f, -0.25f, 4, -4, 0.1f};
  for (Gate gate : {Gate::Silu, Gate::HardSwish, Gate::Gelu, Gate::GeluTanh}) {
    SCOPED_TRACE(static_cast<int>(gate));
    const g::Graph fused = prepared(model(gate, false));
    ASSERT_EQ(op_types(fused), (std::vector<std::string>{"Conv"}));
    EXPECT_STREQ(fused.nodes[0].activation.name(), gate == Gate::Silu        ? "Silu"
                                                   : gate == Gate::HardSwish ? "HardSwish"
                                                   : gate == Gate::Gelu      ? "Gelu"
                                                                             : "GeluTanh");
    // The expected values from the Conv's output by the activation's formula.
    std::vector<float> want(x.size());
    for (std::size_t p = 0; p < 9; ++p)
      for (std::size_t m = 0; m < 2; ++m) {
        const double w0 = m == 0 ? 0.5 : 2.0, w1 = m == 0 ? -1.0 : 0.25;
        const double c = w0 * x[p] + w1 * x[9 + p];
        const double v = gate == Gate::Silu        ? c / (1 + std::exp(-c))
                         : gate == Gate::HardSwish ? c * std::clamp(c / 6 + 0.5, 0.0, 1.0)
                         : gate == Gate::Gelu      ? 0.5 * c * (1 + std::erf(c / std::sqrt(2.0)))
                                                   : 0.5 * c * (1 + std::tanh(0.7978845608 * (c + 0.044715 * c * c * c)));
        want[m * 9 + p] = static_cast<float>(v);
      }
    for (const char* strategy : {"reference", "cpu", "gpu"}) {
      const auto y = run_model(model(gate, false), x, strategy);
      for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(y[i], want[i], 1e-5) << strategy << " " << i;
    }
    // The Conv's output read elsewhere too: nothing fuses.
    EXPECT_GT(op_types(prepared(model(gate, true))).size(), 2u);
  }
}

// An activation after a MatMul without a bias (a Gemm is made only from a
// MatMul with one) or after a LayerNormalization runs as that op's epilogue,
// on every backend.
TEST(Canonicalize, ActivationsFoldIntoMatMulAndLayerNorm) {
  const std::vector<float> w{0.5f, -1.f, 2.f, 0.25f, -0.5f, 1.f, 1.5f, -2.f, 0.f, 0.75f, -0.25f, 1.f};  // [4, 3]
  const std::vector<float> scale{1.f, -2.f, 0.5f, 3.f}, bias{0.1f, 0.f, -0.3f, 1.f};
  auto matmul = [&] {
    OnnxBuilder b(13);
    b.input("x", {2, 3, 4}).output("y");
    b.initializer("w", {4, 3}, w);
    b.node("MatMul", {"x", "w"}, {"m"});
    b.node("Relu", {"m"}, {"y"});
    return b;
  };
  auto layer_norm = [&] {
    OnnxBuilder b(17);
    b.input("x", {2, 3, 4}).output("y");
    b.initializer("scale", {4}, scale);
    b.initializer("bias", {4}, bias);
    OnnxBuilder::attr_float(b.node("LayerNormalization", {"x", "scale", "bias"}, {"n"}), "epsilon", 1e-5f);
    b.node("Sigmoid", {"n"}, {"y"});
    return b;
  };
  const g::Graph mm = prepared(matmul()), ln = prepared(layer_norm());
  ASSERT_EQ(op_types(mm), (std::vector<std::string>{"MatMul"}));
  EXPECT_STREQ(mm.nodes[0].activation.name(), "Relu");
  ASSERT_EQ(op_types(ln), (std::vector<std::string>{"LayerNormalization"}));
  EXPECT_STREQ(ln.nodes[0].activation.name(), "Sigmoid");
  std::vector<float> x(24);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.7f * static_cast<float>(i)) * 2.f;
  for (const char* strategy : {"reference", "cpu", "gpu"}) {
    const auto ym = run_model(matmul(), x, strategy);
    const auto yl = run_model(layer_norm(), x, strategy);
    for (std::size_t r = 0; r < 6; ++r) {
      for (std::size_t j = 0; j < 3; ++j) {
        double acc = 0;
        for (std::size_t k = 0; k < 4; ++k) acc += x[r * 4 + k] * w[k * 3 + j];
        EXPECT_NEAR(ym[r * 3 + j], std::max(acc, 0.0), 1e-5) << strategy << " MatMul row " << r;
      }
      double mean = 0, var = 0;
      for (std::size_t k = 0; k < 4; ++k) mean += x[r * 4 + k] / 4.0;
      for (std::size_t k = 0; k < 4; ++k) var += (x[r * 4 + k] - mean) * (x[r * 4 + k] - mean) / 4.0;
      for (std::size_t k = 0; k < 4; ++k) {
        const double n = (x[r * 4 + k] - mean) / std::sqrt(var + 1e-5) * scale[k] + bias[k];
        EXPECT_NEAR(yl[r * 4 + k], 1 / (1 + std::exp(-n)), 1e-5) << strategy << " LayerNorm row " << r;
      }
    }
  }
}

TEST(Canonicalize, PowBySquareOrSquareRootBecomesMulOrSqrt) {
  auto model = [](float e) {
    OnnxBuilder b(13);
    b.input("x", {1, 4}).output("y");
    b.initializer("e", {}, {e});
    b.node("Pow", {"x", "e"}, {"y"});
    return b;
  };
  EXPECT_EQ(op_types(prepared(model(2.f))), (std::vector<std::string>{"Mul"}));
  EXPECT_EQ(op_types(prepared(model(0.5f))), (std::vector<std::string>{"Sqrt"}));
  EXPECT_EQ(op_types(prepared(model(3.f))), (std::vector<std::string>{"Pow"}));
  const auto y = run_model(model(2.f), {-3.f, -0.5f, 0.f, 2.f});
  EXPECT_EQ(y, (std::vector<float>{9.f, 0.25f, 0.f, 4.f}));
  const auto r = run_model(model(0.5f), {4.f, 0.25f, 0.f, 9.f});
  EXPECT_EQ(r, (std::vector<float>{2.f, 0.5f, 0.f, 3.f}));
}

// LayerNorm as opset-13 exporters decompose it becomes one node (its
// division also as a multiplication by a Reciprocal); the values are the
// formula's.
TEST(Canonicalize, DecomposedLayerNormBecomesOneNode) {
  // swapped: `gamma * n` and `beta + ng`, as PyTorch's channels-first norms write them.
  // reciprocal: d * Reciprocal(sd) (sd * Reciprocal.. when swapped) for the Div.
  auto model = [](bool affine, bool centred_read_elsewhere, std::vector<std::int64_t> shape = {2, 4},
                  bool swapped = false, bool reciprocal = false) {
    OnnxBuilder b(13);
    b.input("x", shape).output("y");
    b.initializer("two", {}, {2.f});
    b.initializer("eps", {}, {1e-5f});
    b.initializer("gamma", {4}, {1.f, 2.f, 0.5f, -1.f});
    b.initializer("beta", {4}, {0.f, 0.1f, -0.2f, 0.3f});
    OnnxBuilder::attr_ints(b.node("ReduceMean", {"x"}, {"m"}), "axes", {-1});
    b.node("Sub", {"x", "m"}, {"d"});
    b.node("Pow", {"d", "two"}, {"d2"});
    OnnxBuilder::attr_ints(b.node("ReduceMean", {"d2"}, {"v"}), "axes", {-1});
    b.node("Add", {"v", "eps"}, {"ve"});
    b.node("Sqrt", {"ve"}, {"sd"});
    if (reciprocal) {
      b.node("Reciprocal", {"sd"}, {"rsd"});
      b.node("Mul", swapped ? std::vector<std::string>{"rsd", "d"} : std::vector<std::string>{"d", "rsd"}, {"n"});
    } else {
      b.node("Div", {"d", "sd"}, {"n"});
    }
    std::string y = "n";
    if (affine) {
      b.node("Mul", swapped ? std::vector<std::string>{"gamma", "n"} : std::vector<std::string>{"n", "gamma"}, {"ng"});
      b.node("Add", swapped ? std::vector<std::string>{"beta", "ng"} : std::vector<std::string>{"ng", "beta"}, {"nb"});
      y = "nb";
    }
    if (centred_read_elsewhere) {
      b.node("Add", {y, "d"}, {"y"});
    } else {
      b.node("Identity", {y}, {"y"});
    }
    return b;
  };
  EXPECT_EQ(op_types(prepared(model(true, false))), (std::vector<std::string>{"LayerNormalization"}));
  EXPECT_EQ(op_types(prepared(model(false, false))), (std::vector<std::string>{"LayerNormalization"}));
  EXPECT_EQ(op_types(prepared(model(true, false, {2, 4}, true))), (std::vector<std::string>{"LayerNormalization"}));
  EXPECT_EQ(op_types(prepared(model(true, false, {2, 4}, false, true))),
            (std::vector<std::string>{"LayerNormalization"}));
  EXPECT_EQ(op_types(prepared(model(false, false, {2, 4}, true, true))),
            (std::vector<std::string>{"LayerNormalization"}));
  EXPECT_GT(op_types(prepared(model(true, true))).size(), 3u);  // d read elsewhere: no fusion
  // ViT's [N, tokens, C]: its last-axis means are also "spatial" ones, which
  // must not become GlobalAveragePools first.
  EXPECT_EQ(op_types(prepared(model(true, false, {1, 2, 4}))), (std::vector<std::string>{"LayerNormalization"}));
  const std::vector<float> x{1, 2, 3, 4, -1, 0, 0, 5};
  const float gamma[4] = {1.f, 2.f, 0.5f, -1.f}, beta[4] = {0.f, 0.1f, -0.2f, 0.3f};
  for (const auto& y : {run_model(model(true, false), x), run_model(model(true, false, {1, 2, 4}), x),
                        run_model(model(true, false, {2, 4}, true), x),
                        run_model(model(true, false, {2, 4}, true, true), x)}) {
    for (std::size_t r = 0; r < 2; ++r) {
      double mean = 0, var = 0;
      for (std::size_t i = 0; i < 4; ++i) mean += x[r * 4 + i] / 4.0;
      for (std::size_t i = 0; i < 4; ++i) var += (x[r * 4 + i] - mean) * (x[r * 4 + i] - mean) / 4.0;
      for (std::size_t i = 0; i < 4; ++i)
        EXPECT_NEAR(y[r * 4 + i], (x[r * 4 + i] - mean) / std::sqrt(var + 1e-5) * gamma[i] + beta[i], 1e-5);
    }
  }
}

// PyTorch's channels-first LayerNorm on NCHW (timm's LayerNorm2d):
// Transpose to NHWC, LayerNormalization over the channels, Transpose back
// becomes one ChannelLayerNorm, which every backend runs; the values are the
// formula's (per pixel over the channels), on 2 images of 90 pixels (more
// than one of the host kernel's 64-pixel blocks).
TEST(Canonicalize, ChannelsFirstLayerNormBecomesOneNode) {
  const std::int64_t N = 2, C = 5, H = 9, W = 10, P = H * W;
  const std::vector<float> gamma{1.f, 2.f, 0.5f, -1.f, 0.25f}, beta{0.f, 0.1f, -0.2f, 0.3f, 1.f};
  auto model = [&](bool nhwc_is_output) {
    OnnxBuilder b(17);
    b.input("x", {N, C, H, W}).output("y");
    b.initializer("gamma", {C}, gamma);
    b.initializer("beta", {C}, beta);
    OnnxBuilder::attr_ints(b.node("Transpose", {"x"}, {"t"}), "perm", {0, 2, 3, 1});
    OnnxBuilder::attr_float(b.node("LayerNormalization", {"t", "gamma", "beta"}, {"n"}), "epsilon", 1e-6f);
    OnnxBuilder::attr_ints(b.node("Transpose", {"n"}, {"y"}), "perm", {0, 3, 1, 2});
    if (nhwc_is_output) b.output("t", {N, H, W, C});
    return b;
  };
  EXPECT_EQ(op_types(prepared(model(false))), (std::vector<std::string>{"ChannelLayerNorm"}));
  EXPECT_EQ(op_types(prepared(model(true))), (std::vector<std::string>{"Transpose", "LayerNormalization", "Transpose"}));
  std::vector<float> x(static_cast<std::size_t>(N * C * P));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.f + 0.5f;
  for (const char* strategy : {"reference", "cpu", "gpu"}) {
    const auto y = run_model(model(false), x, strategy);
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t p = 0; p < P; ++p) {
        auto at = [&](std::int64_t c) { return static_cast<std::size_t>((n * C + c) * P + p); };
        double mean = 0, var = 0;
        for (std::int64_t c = 0; c < C; ++c) mean += x[at(c)] / static_cast<double>(C);
        for (std::int64_t c = 0; c < C; ++c) var += (x[at(c)] - mean) * (x[at(c)] - mean) / static_cast<double>(C);
        for (std::int64_t c = 0; c < C; ++c)
          ASSERT_NEAR(y[at(c)], (x[at(c)] - mean) / std::sqrt(var + 1e-6) * gamma[static_cast<std::size_t>(c)] +
                                    beta[static_cast<std::size_t>(c)], 1e-4)
              << strategy << " n " << n << " pixel " << p << " channel " << c;
      }
  }
  // vkfuse's own op is no ONNX operator: a model that names it is refused.
  OnnxBuilder b(17);
  b.input("x", {1, 2, 3, 3}).output("y");
  b.initializer("s", {2}, {1.f, 1.f});
  b.initializer("b", {2}, {0.f, 0.f});
  b.node("ChannelLayerNorm", {"x", "s", "b"}, {"y"});
  try {
    prepared(b);
    ADD_FAILURE() << "ChannelLayerNorm imported";
  } catch (const vkfuse::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an ONNX operator"), std::string::npos) << e.what();
  }
}

// The channels-first LayerNorm decomposed over axis 1, as the official
// ConvNeXt writes it (u = x.mean(1); s = (x - u).pow(2).mean(1);
// weight[:, None, None] * (x - u) / sqrt(s + eps) + bias[:, None, None]) and
// torch 1.13 exports it at opset 13, becomes one ChannelLayerNorm too, with
// and without the affine tail; the values are the formula's on every backend.
TEST(Canonicalize, DecomposedChannelsFirstLayerNormBecomesOneNode) {
  const std::int64_t N = 1, C = 6, H = 7, W = 6, P = H * W;
  const std::vector<float> gamma{1.f, 2.f, 0.5f, -1.f, 0.25f, 3.f}, beta{0.f, 0.1f, -0.2f, 0.3f, 1.f, -2.f};
  auto model = [&](bool affine) {
    OnnxBuilder b(13);
    b.input("x", {N, C, H, W}).output("y");
    b.initializer("two", {}, {2.f});
    b.initializer("eps", {}, {1e-6f});
    b.initializer("gamma", {C, 1, 1}, gamma);
    b.initializer("beta", {C, 1, 1}, beta);
    OnnxBuilder::attr_ints(b.node("ReduceMean", {"x"}, {"u"}), "axes", {1});
    b.node("Sub", {"x", "u"}, {"d"});
    b.node("Pow", {"d", "two"}, {"d2"});
    OnnxBuilder::attr_ints(b.node("ReduceMean", {"d2"}, {"s"}), "axes", {1});
    b.node("Add", {"s", "eps"}, {"se"});
    b.node("Sqrt", {"se"}, {"r"});
    b.node("Div", {"d", "r"}, {affine ? "n" : "y"});
    if (affine) {
      b.node("Mul", {"gamma", "n"}, {"gn"});
      b.node("Add", {"gn", "beta"}, {"y"});
    }
    return b;
  };
  std::vector<float> x(static_cast<std::size_t>(N * C * P));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.53f * static_cast<float>(i)) * 2.f - 0.3f;
  for (bool affine : {true, false}) {
    EXPECT_EQ(op_types(prepared(model(affine))), (std::vector<std::string>{"ChannelLayerNorm"})) << affine;
    for (const char* strategy : {"reference", "cpu", "gpu"}) {
      const auto y = run_model(model(affine), x, strategy);
      for (std::int64_t p = 0; p < P; ++p) {
        auto at = [&](std::int64_t c) { return static_cast<std::size_t>(c * P + p); };
        double mean = 0, var = 0;
        for (std::int64_t c = 0; c < C; ++c) mean += x[at(c)] / static_cast<double>(C);
        for (std::int64_t c = 0; c < C; ++c) var += (x[at(c)] - mean) * (x[at(c)] - mean) / static_cast<double>(C);
        for (std::int64_t c = 0; c < C; ++c) {
          const double n = (x[at(c)] - mean) / std::sqrt(var + 1e-6);
          const auto k = static_cast<std::size_t>(c);
          ASSERT_NEAR(y[at(c)], affine ? n * gamma[k] + beta[k] : n, 1e-4)
              << strategy << (affine ? " affine" : "") << " pixel " << p << " channel " << c;
        }
      }
    }
  }
}

TEST(ShapeInference, FoldsShapeArithmeticIntoAConstantReshape) {
  // torch.flatten as older exporters write it: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])).
  OnnxBuilder b(11);
  b.input("x", {2, 3, 4}).output("y");
  b.initializer_i64("zero", {}, {0});
  b.initializer_i64("minus_one", {1}, {-1});
  b.node("Shape", {"x"}, {"s"});
  b.node("Gather", {"s", "zero"}, {"n"});
  auto& u = b.node("Unsqueeze", {"n"}, {"n1"});
  OnnxBuilder::attr_ints(u, "axes", {0});
  auto& c = b.node("Concat", {"n1", "minus_one"}, {"shape"});
  OnnxBuilder::attr_int(c, "axis", 0);
  b.node("Reshape", {"x", "shape"}, {"y"});
  g::Graph graph = prepared(b);
  ASSERT_EQ(op_types(graph), (std::vector<std::string>{"Reshape"}));
  const g::Tensor* shape = graph.constant_input(graph.nodes[0], 1);
  ASSERT_NE(shape, nullptr);
  EXPECT_EQ(shape->to_ints(), (std::vector<std::int64_t>{2, -1}));
  EXPECT_EQ(graph.value(graph.outputs[0]).shape, (g::Shape{2, 12}));
}

TEST(ShapeInference, SymbolicBatchDefaultsToOneAndCanBeOverridden) {
  OnnxBuilder b;
  b.input("x", {-1, 3}).output("y");
  b.node("Relu", {"x"}, {"y"});
  auto bytes = b.byte_vector();
  g::Graph a = g::import_onnx(bytes);
  g::prepare_graph(a);
  EXPECT_EQ(a.value(a.outputs[0]).shape, (g::Shape{1, 3}));
  g::Graph c = g::import_onnx(bytes, {{"x", {4, 3}}});
  g::prepare_graph(c);
  EXPECT_EQ(c.value(c.outputs[0]).shape, (g::Shape{4, 3}));
  expect_error([&] { g::import_onnx(bytes, {{"nope", {4, 3}}}); }, ErrorKind::InvalidArgument, {"nope"});
}

TEST(Import, RejectsMalformedBytes) {
  expect_error([] { g::import_onnx({}); }, ErrorKind::InvalidModel, {"empty"});
  std::mt19937 rng(7);
  std::vector<std::uint8_t> noise(4096);
  for (auto& v : noise) v = static_cast<std::uint8_t>(rng());
  expect_error([&] { g::import_onnx(noise); }, ErrorKind::InvalidModel, {"not a valid ONNX model"});
  auto bytes = vkfuse::testing::conv_bn_relu_model().byte_vector();
  for (std::size_t cut : {std::size_t{1}, bytes.size() / 3, bytes.size() / 2, bytes.size() - 7}) {
    std::vector<std::uint8_t> truncated(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_THROW(
        {
          g::Graph graph = g::import_onnx(truncated);
          g::prepare_graph(graph);
        },
        Error)
        << "cut at " << cut;
  }
}

// The importer takes initializers out of the protobuf before parsing it (to
// copy each weight once); what it reads must be what protobuf's own merge
// rules make of the bytes: a singular field given twice keeps the last, and a
// message field given twice is merged.
TEST(Import, ReadsInitializersAsProtobufMergesThem) {
  auto raw = [](const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  };
  auto field = [](int number, const std::string& payload) {  // a length-delimited field
    std::string out;
    for (std::uint64_t v : {static_cast<std::uint64_t>(number) << 3 | 2, std::uint64_t{payload.size()}}) {
      for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>(v | 0x80));
      out.push_back(static_cast<char>(v));
    }
    return out + payload;
  };
  OnnxBuilder b;
  b.input("x", {4}).output("y");
  b.node("Add", {"x", "w"}, {"a"});
  b.node("Add", {"a", "late"}, {"y"});
  // w: raw data A, then (a second message's worth of bytes) raw data B.
  onnx::TensorProto w;
  w.set_name("w");
  w.set_data_type(onnx::TensorProto::FLOAT);
  w.add_dims(4);
  w.set_raw_data(raw({100, 200, 300, 400}));
  onnx::TensorProto w_again;
  w_again.set_raw_data(raw({1, 2, 3, 4}));
  // late: an initializer in a second occurrence of the model's graph field.
  onnx::GraphProto second;
  auto* late = second.add_initializer();
  late->set_name("late");
  late->set_data_type(onnx::TensorProto::FLOAT);
  late->add_dims(4);
  late->set_raw_data(raw({0.5f, 0.25f, -1, 8}));
  const std::string bytes = b.bytes() + field(onnx::ModelProto::kGraphFieldNumber,
                                              field(onnx::GraphProto::kInitializerFieldNumber,
                                                    w.SerializeAsString() + w_again.SerializeAsString())) +
                            field(onnx::ModelProto::kGraphFieldNumber, second.SerializeAsString());
  // What protobuf itself reads.
  onnx::ModelProto parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  ASSERT_EQ(parsed.graph().initializer_size(), 2);
  ASSERT_EQ(parsed.graph().node_size(), 2);

  const std::vector<std::uint8_t> file(bytes.begin(), bytes.end());
  vkfuse::LoadOptions opts;
  opts.strategy = "cpu";
  auto model = vkfuse::Model::load_bytes(file, opts);
  const std::vector<float> x{10, 20, 30, 40};
  std::vector<float> y(4);
  vkfuse::InputBuffer in{"x", x};
  vkfuse::OutputBuffer out{"y", y};
  model.run({&in, 1}, {&out, 1});
  EXPECT_EQ(y, (std::vector<float>{11.5f, 22.25f, 32, 52}));
}

// Comparisons, logic ops and Where on runtime values (no constant folding),
// through the public API: Where(Less(x, y), x, y) is min(x, y),
// Cast(Greater(x, 0)) * x is ReLU, and two logic expressions as 0/1.
TEST(Import, BoolOpsRunOnRuntimeValues) {
  OnnxBuilder b;
  b.input("x", {2, 3}).input("y", {2, 3}).output("m").output("r");
  b.node("Less", {"x", "y"}, {"lt"});
  b.node("Where", {"lt", "x", "y"}, {"m"});
  b.initializer("zero", {}, {0.f});
  b.node("Greater", {"x", "zero"}, {"pos"});
  auto& cast = b.node("Cast", {"pos"}, {"posf"});
  OnnxBuilder::attr_int(cast, "to", onnx::TensorProto::FLOAT);
  b.node("Mul", {"posf", "x"}, {"r"});
  // k = (x > 0 and x < y) or (x < 0 xor y < 0), and n = not (x == y), as 0/1.
  b.node("And", {"pos", "lt"}, {"both"});
  b.node("Less", {"x", "zero"}, {"xneg"});
  b.node("Less", {"y", "zero"}, {"yneg"});
  b.node("Xor", {"xneg", "yneg"}, {"signs"});
  b.node("Or", {"both", "signs"}, {"kb"});
  b.node("Equal", {"x", "y"}, {"eq"});
  b.node("Not", {"eq"}, {"nb"});
  for (const char* v : {"k", "n"}) {
    auto& c = b.node("Cast", {std::string(v) + "b"}, {v});
    OnnxBuilder::attr_int(c, "to", onnx::TensorProto::FLOAT);
    b.output(v);
  }
  const std::vector<std::uint8_t> bytes = b.byte_vector();
  const std::vector<float> x{1, -2, 3, -4, 5, 0.5f}, y{0, -2, 4, 5, 6, 0.25f};
  for (const char* strategy : {"reference", "cpu"}) {
    vkfuse::LoadOptions opts;
    opts.strategy = strategy;
    auto model = vkfuse::Model::load_bytes(bytes, opts);
    std::vector<float> m(6), r(6), k(6), n(6);
    vkfuse::InputBuffer in[2] = {{"x", x}, {"y", y}};
    vkfuse::OutputBuffer out[4] = {{"m", m}, {"r", r}, {"k", k}, {"n", n}};
    model.run(in, out);
    for (std::size_t i = 0; i < 6; ++i) {
      EXPECT_EQ(m[i], std::min(x[i], y[i])) << strategy << " element " << i;
      EXPECT_EQ(r[i], std::max(x[i], 0.f)) << strategy << " element " << i;
      const bool kb = (x[i] > 0 && x[i] < y[i]) || ((x[i] < 0) != (y[i] < 0));
      EXPECT_EQ(k[i], kb ? 1.f : 0.f) << strategy << " element " << i;
      EXPECT_EQ(n[i], x[i] != y[i] ? 1.f : 0.f) << strategy << " element " << i;
    }
  }
}

// A model file is mapped; a FIFO is read from the one descriptor; a
// directory or a missing file is an Io error naming it.
TEST(Import, ModelFileMapsFilesAndReadsPipes) {
  const std::string dir = ::testing::TempDir() + "vkfuse_model_file_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string bytes = vkfuse::testing::conv_bn_relu_model().bytes();
  {
    std::ofstream(dir + "/m.onnx", std::ios::binary) << bytes;
    const g::ModelFile f(dir + "/m.onnx");
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.bytes().data()), f.bytes().size()), bytes);
  }
  const std::string fifo = dir + "/pipe.onnx";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] { std::ofstream(fifo, std::ios::binary) << bytes; });
  {
    const g::ModelFile f(fifo);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.bytes().data()), f.bytes().size()), bytes);
  }
  writer.join();
  expect_error([&] { g::ModelFile f(dir); }, ErrorKind::Io, {dir, "directory"});
  expect_error([&] { g::ModelFile f(dir + "/none.onnx"); }, ErrorKind::Io, {"none.onnx", "No such file"});
  std::filesystem::remove_all(dir);
}

TEST(Import, RejectsCyclesAndDanglingInputs) {
  OnnxBuilder cyc;
  cyc.input("x", {2}).output("y");
  cyc.node("Add", {"x", "b"}, {"a"}, "first");
  cyc.node("Relu", {"a"}, {"b"}, "second");
  cyc.node("Relu", {"a"}, {"y"}, "third");
  expect_error([&] { prepared(cyc); }, ErrorKind::InvalidModel, {"cycle"});

  OnnxBuilder dangling;
  dangling.input("x", {2}).output("y");
  dangling.node("Add", {"x", "ghost"}, {"y"}, "adder");
  expect_error([&] { prepared(dangling); }, ErrorKind::InvalidModel, {"ghost", "adder"});
}

TEST(Import, NamesUnsupportedOperatorAndNode) {
  OnnxBuilder b;
  b.input("x", {1, 4, 8}).output("y");
  b.node("LSTM", {"x"}, {"y"}, "my_lstm");
  expect_error([&] { prepared(b); }, ErrorKind::Unsupported, {"LSTM", "my_lstm"});
}

TEST(Zoo, ResNet18MatchesTorchvisionSize) {
  g::Graph graph = g::build_zoo_model("resnet18");
  g::prepare_graph(graph);
  // torchvision's resnet18 has 11,689,512 parameters; folding each of its
  // 4,800 BatchNorm channels (weight + bias) into a conv bias saves one each.
  EXPECT_EQ(graph.parameter_count(), 11'689'512 - 4'800);
  EXPECT_EQ(graph.value(graph.outputs[0]).shape, (g::Shape{1, 1000}));
  EXPECT_EQ(graph.nodes.size(), 32u);  // 20 Conv, 8 Add, MaxPool, GAP, Flatten, Gemm
}

TEST(Zoo, InceptionV3Shapes) {
  g::Graph graph = g::build_zoo_model("inception_v3", 2);
  g::prepare_graph(graph);
  EXPECT_EQ(graph.value(graph.outputs[0]).shape, (g::Shape{2, 1000}));
  // torchvision inception_v3 without its auxiliary head: 23,834,568 parameters,
  // less one per folded BatchNorm channel (17,216 channels).
  EXPECT_EQ(graph.parameter_count(), 23'834'568 - 17'216);
}

// The other built-ins, against torchvision's sizes in the same way
// (torchvision 0.x, counted with torch: parameters, BatchNorm channels).
TEST(Zoo, ResNet50AndMobileNetV2MatchTorchvisionSize) {
  struct Case {
    const char* name;
    std::int64_t parameters, bn_channels, flops;
  };
  for (const Case& c : {Case{"resnet50", 25'557'032, 26'560, 8'185'794'560},
                        Case{"mobilenet_v2", 3'504'872, 17'056, 601'827'648}}) {
    SCOPED_TRACE(c.name);
    g::Graph graph = g::build_zoo_model(c.name);
    g::prepare_graph(graph);
    EXPECT_EQ(graph.parameter_count(), c.parameters - c.bn_channels);
    EXPECT_EQ(graph.value(graph.outputs[0]).shape, (g::Shape{1, 1000}));
    EXPECT_EQ(g::graph_flops(graph), c.flops);  // 4.09 and 0.30 GMAC, as torchvision documents
  }
}

TEST(Subgraph, SplitGraphRunsLikeTheWhole) {
  // x → Conv a (Relu) ─┐
  // x → Conv b ────────┴→ Concat → GlobalAveragePool → y ; b is also a graph output
  OnnxBuilder b;
  b.input("x", {1, 3, 6, 6}).output("y").output("cb");
  std::vector<float> w1(4 * 3), w2(2 * 3 * 9);
  for (std::size_t i = 0; i < w1.size(); ++i) w1[i] = 0.1f * static_cast<float>(i % 5) - 0.2f;
  for (std::size_t i = 0; i < w2.size(); ++i) w2[i] = 0.05f * static_cast<float>(i % 7) - 0.15f;
  b.initializer("w1", {4, 3, 1, 1}, w1);
  b.initializer("w2", {2, 3, 3, 3}, w2);
  b.node("Conv", {"x", "w1"}, {"ca"}, "conv_a");
  b.node("Relu", {"ca"}, {"ra"}, "relu_a");
  auto& cb = b.node("Conv", {"x", "w2"}, {"cb"}, "conv_b");
  OnnxBuilder::attr_ints(cb, "pads", {1, 1, 1, 1});
  auto& cat = b.node("Concat", {"ra", "cb"}, {"c"}, "concat");
  OnnxBuilder::attr_int(cat, "axis", 1);
  b.node("GlobalAveragePool", {"c"}, {"y"}, "gap");
  g::Graph whole = prepared(b);
  ASSERT_EQ(whole.nodes.size(), 4u);  // conv_a (+Relu), conv_b, concat, gap

  std::vector<std::int32_t> first, second;
  for (std::int32_t i = 0; i < 4; ++i) (whole.nodes[static_cast<std::size_t>(i)].op_type == "Conv" ? first : second).push_back(i);
  std::vector<g::ValueId> in1, out1, in2, out2;
  g::Graph a = g::extract_subgraph(whole, first, &in1, &out1);
  g::Graph c = g::extract_subgraph(whole, second, &in2, &out2);
  EXPECT_EQ(in1, (std::vector<g::ValueId>{whole.inputs[0]}));
  EXPECT_EQ(out1.size(), 2u);  // both conv outputs leave the first part
  EXPECT_EQ(in2, out1);
  EXPECT_EQ(out2.size(), 1u);
  for (std::size_t i = 0; i < out1.size(); ++i) EXPECT_EQ(a.value(a.outputs[i]).name, whole.value(out1[i]).name);

  g::Tensor x(g::DType::f32, {1, 3, 6, 6});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = std::cos(0.3f * static_cast<float>(i));
  vkfuse::runtime::ReferenceExecutor full(whole, 1), part1(a, 1), part2(c, 1);
  const g::Tensor* xin[] = {&x};
  auto expected = full.run_tensors(xin);
  auto mid = part1.run_tensors(xin);
  std::vector<const g::Tensor*> mid_ptrs;
  for (auto& t : mid) mid_ptrs.push_back(&t);
  auto got = part2.run_tensors(mid_ptrs);
  // whole.outputs is {y, cb}: y from the second part, cb from the first.
  ASSERT_EQ(expected.size(), 2u);
  const auto cb_index = static_cast<std::size_t>(std::find(out1.begin(), out1.end(), whole.outputs[1]) - out1.begin());
  ASSERT_LT(cb_index, mid.size());
  for (std::int64_t i = 0; i < expected[0].numel(); ++i) EXPECT_FLOAT_EQ(got[0].f32()[i], expected[0].f32()[i]);
  for (std::int64_t i = 0; i < expected[1].numel(); ++i) EXPECT_FLOAT_EQ(mid[cb_index].f32()[i], expected[1].f32()[i]);
}
