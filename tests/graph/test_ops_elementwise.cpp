// Reference kernels of graph/ops/elementwise.cpp: Add, Sub, Mul, Div, Pow,
// PRelu, Min, Max, Mean, Sum, the activations, the unary math and Clip. Expected values are written out by hand (or by an
// explicit index formula), never produced by the kernel under test.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {
namespace {

Node make_node(const std::string& op, Attributes attrs = {}) {
  Node n;
  n.name = op + "_test";
  n.op_type = op;
  n.attrs = std::move(attrs);
  n.outputs = {0};
  return n;
}

std::vector<Tensor> run(const Node& node, std::vector<const Tensor*> inputs, std::int64_t opset = 13,
                        int threads = 1) {
  return evaluate_node(OpContext{node, opset, threads}, std::span<const Tensor* const>(inputs));
}

void expect_f32(const Tensor& t, const Shape& shape, const std::vector<float>& want, float tol = 1e-6f) {
  ASSERT_EQ(t.dtype(), DType::f32);
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(static_cast<std::size_t>(t.numel()), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i])) {
      EXPECT_EQ(t.f32()[i], want[i]) << "element " << i;
    } else {
      EXPECT_NEAR(t.f32()[i], want[i], tol) << "element " << i;
    }
  }
}

void expect_i64(const Tensor& t, const Shape& shape, const std::vector<std::int64_t>& want) {
  ASSERT_EQ(t.dtype(), DType::i64);
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(std::vector<std::int64_t>(t.i64_span().begin(), t.i64_span().end()), want);
}

std::vector<float> iota_f(std::size_t n, float start = 0.f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

ErrorKind error_kind_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "expected vkfuse::Error";
  return ErrorKind::Internal;
}

// ---------------------------------------------------------------------------
// Binary ops

TEST(OpsElementwise, AddBroadcast3dWith2d) {
  // [2,3,4] + [3,1]: b broadcasts along the last axis and the first.
  Tensor a = Tensor::from_f32({2, 3, 4}, iota_f(24));
  Tensor b = Tensor::from_f32({3, 1}, {10.f, 20.f, 30.f});
  auto out = run(make_node("Add"), {&a, &b});
  ASSERT_EQ(out.size(), 1u);
  expect_f32(out[0], {2, 3, 4},
             {10, 11, 12, 13, 24, 25, 26, 27, 38, 39, 40, 41,  //
              22, 23, 24, 25, 36, 37, 38, 39, 50, 51, 52, 53});
}

TEST(OpsElementwise, AddBothSidesBroadcast) {
  // [3,1] + [1,2] -> [3,2]
  Tensor a = Tensor::from_f32({3, 1}, {1.f, 2.f, 3.f});
  Tensor b = Tensor::from_f32({1, 2}, {10.f, 100.f});
  expect_f32(run(make_node("Add"), {&a, &b})[0], {3, 2}, {11, 101, 12, 102, 13, 103});
}

TEST(OpsElementwise, MulByScalar) {
  Tensor a = Tensor::from_f32({2, 2}, {1.f, -2.f, 3.5f, 0.f});
  Tensor s = Tensor::scalar_f32(3.f);
  expect_f32(run(make_node("Mul"), {&a, &s})[0], {2, 2}, {3.f, -6.f, 10.5f, 0.f});
  // scalar on the left as well
  expect_f32(run(make_node("Mul"), {&s, &a})[0], {2, 2}, {3.f, -6.f, 10.5f, 0.f});
}

TEST(OpsElementwise, ScalarPlusScalar) {
  Tensor a = Tensor::scalar_f32(1.25f);
  Tensor b = Tensor::scalar_f32(2.f);
  expect_f32(run(make_node("Add"), {&a, &b})[0], {}, {3.25f});
}

TEST(OpsElementwise, SubPerChannel) {
  // NCHW [1,2... ] minus a per-channel [1,3,1,1] mean: x [2,3,2,1]
  Tensor x = Tensor::from_f32({2, 3, 2, 1}, iota_f(12));
  Tensor m = Tensor::from_f32({1, 3, 1, 1}, {1.f, 2.f, 3.f});
  expect_f32(run(make_node("Sub"), {&x, &m})[0], {2, 3, 2, 1},
             {-1, 0, 0, 1, 1, 2,  //
              5, 6, 6, 7, 7, 8});
}

TEST(OpsElementwise, DivFloat) {
  Tensor x = Tensor::from_f32({2}, {3.f, 4.f});
  Tensor y = Tensor::from_f32({2}, {1.f, 2.f});
  expect_f32(run(make_node("Div"), {&x, &y})[0], {2}, {3.f, 2.f});
  // [2,3] / [3]
  Tensor a = Tensor::from_f32({2, 3}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f});
  Tensor b = Tensor::from_f32({3}, {2.f, 4.f, -0.5f});
  expect_f32(run(make_node("Div"), {&a, &b})[0], {2, 3}, {0.5f, 0.5f, -6.f, 2.f, 1.25f, -12.f});
  // IEEE: division by zero gives infinity, no error for floats
  Tensor z = Tensor::scalar_f32(0.f);
  expect_f32(run(make_node("Div"), {&x, &z})[0], {2},
             {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()});
}

TEST(OpsElementwise, Int64Arithmetic) {
  Tensor a = Tensor::from_i64({4}, {1, 3, 224, 224});
  Tensor two = Tensor::from_i64({}, {2});
  expect_i64(run(make_node("Div"), {&a, &two})[0], {4}, {0, 1, 112, 112});
  expect_i64(run(make_node("Mul"), {&a, &two})[0], {4}, {2, 6, 448, 448});
  expect_i64(run(make_node("Add"), {&a, &two})[0], {4}, {3, 5, 226, 226});
  expect_i64(run(make_node("Sub"), {&a, &two})[0], {4}, {-1, 1, 222, 222});
  // Division truncates toward zero.
  Tensor n = Tensor::from_i64({4}, {-7, 7, -7, 7});
  Tensor d = Tensor::from_i64({4}, {2, -2, -2, 2});
  expect_i64(run(make_node("Div"), {&n, &d})[0], {4}, {-3, -3, 3, 3});
  // Broadcast [2,1] * [3]
  Tensor p = Tensor::from_i64({2, 1}, {2, -3});
  Tensor q = Tensor::from_i64({3}, {1, 10, 100});
  expect_i64(run(make_node("Mul"), {&p, &q})[0], {2, 3}, {2, 20, 200, -3, -30, -300});
}

TEST(OpsElementwise, Int64DivByZeroIsAnError) {
  Tensor a = Tensor::from_i64({2}, {4, 5});
  Tensor z = Tensor::from_i64({2}, {1, 0});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Div"), {&a, &z}); }), ErrorKind::InvalidModel);
}

// Mod against Python's % (fmod=0) and C's fmod (fmod=1), mixed signs.
TEST(OpsElementwise, Mod) {
  Tensor n = Tensor::from_i64({6}, {7, -7, 7, -7, 6, 0});
  Tensor d = Tensor::from_i64({6}, {3, 3, -3, -3, 3, -5});
  expect_i64(run(make_node("Mod"), {&n, &d})[0], {6}, {1, 2, -2, -1, 0, 0});
  Attributes c_like;
  c_like.set("fmod", std::int64_t{1});
  expect_i64(run(make_node("Mod", c_like), {&n, &d})[0], {6}, {1, -1, 1, -1, 0, 0});
  // Broadcast [2,1] % [3], as "same" padding arithmetic writes it.
  Tensor p = Tensor::from_i64({2, 1}, {56, 28});
  Tensor w = Tensor::from_i64({3}, {7, 5, 3});
  expect_i64(run(make_node("Mod"), {&p, &w})[0], {2, 3}, {0, 1, 2, 0, 3, 1});
  Tensor x = Tensor::from_f32({3}, {5.5f, -5.5f, 5.5f});
  Tensor y = Tensor::from_f32({3}, {2.f, 2.f, -2.f});
  expect_f32(run(make_node("Mod", c_like), {&x, &y})[0], {3}, {1.5f, -1.5f, 1.5f});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Mod"), {&x, &y}); }), ErrorKind::Unsupported);
  Tensor z = Tensor::from_i64({6}, {1, 1, 1, 1, 1, 0});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Mod"), {&n, &z}); }), ErrorKind::InvalidModel);
}

TEST(OpsElementwise, IncompatibleBroadcastThrows) {
  Tensor a = Tensor::from_f32({2, 3}, iota_f(6));
  Tensor b = Tensor::from_f32({4}, iota_f(4));
  EXPECT_THROW(run(make_node("Add"), {&a, &b}), vkfuse::Error);
  try {
    run(make_node("Mul"), {&a, &b});
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidModel);
    EXPECT_NE(std::string(e.what()).find("2x3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Mul_test"), std::string::npos) << e.what();
  }
}

TEST(OpsElementwise, MixedDtypesThrow) {
  Tensor a = Tensor::from_f32({2}, {1.f, 2.f});
  Tensor b = Tensor::from_i64({2}, {1, 2});
  EXPECT_THROW(run(make_node("Add"), {&a, &b}), vkfuse::Error);
}

TEST(OpsElementwise, InferWithoutConstants) {
  Node n = make_node("Add");
  std::vector<InputInfo> in(2);
  in[0].shape = {1, 64, 56, 56};
  in[1].shape = {1, 64, 1, 1};
  auto out = infer_node(OpContext{n, 13, 1}, in);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].dtype, DType::f32);
  EXPECT_EQ(out[0].shape, (Shape{1, 64, 56, 56}));

  in[1].shape = {64, 2, 1};
  EXPECT_THROW(infer_node(OpContext{n, 13, 1}, in), vkfuse::Error);

  Node relu = make_node("Relu");
  std::vector<InputInfo> one(1);
  one[0].shape = {2, 5};
  EXPECT_EQ(infer_node(OpContext{relu, 13, 1}, one)[0].shape, (Shape{2, 5}));
}

TEST(OpsElementwise, MultithreadedBroadcastMatchesFormula) {
  // More elements than one work chunk, so that chunk boundaries fall mid-row.
  const std::int64_t A = 3, B = 100, C = 70;
  Tensor a = Tensor::from_f32({A, B, C}, iota_f(static_cast<std::size_t>(A * B * C)));
  std::vector<float> bv(static_cast<std::size_t>(B));
  for (std::int64_t j = 0; j < B; ++j) bv[static_cast<std::size_t>(j)] = -0.5f * static_cast<float>(j);
  Tensor b = Tensor::from_f32({B, 1}, bv);
  auto out = run(make_node("Add"), {&a, &b}, 13, 4);
  ASSERT_EQ(out[0].shape(), (Shape{A, B, C}));
  for (std::int64_t i = 0; i < A; ++i)
    for (std::int64_t j = 0; j < B; ++j)
      for (std::int64_t k = 0; k < C; ++k) {
        const std::int64_t flat = (i * B + j) * C + k;
        ASSERT_EQ(out[0].f32()[flat], static_cast<float>(flat) - 0.5f * static_cast<float>(j))
            << i << "," << j << "," << k;
      }
}

TEST(OpsElementwise, FusedActivationAppliedToAdd) {
  Node n = make_node("Add");
  n.activation.kind = Activation::Kind::Relu;
  Tensor a = Tensor::from_f32({4}, {-3.f, -1.f, 1.f, 3.f});
  Tensor b = Tensor::scalar_f32(1.5f);
  expect_f32(run(n, {&a, &b})[0], {4}, {0.f, 0.5f, 2.5f, 4.5f});

  n.activation = Activation{Activation::Kind::Clip, 0.f, 6.f};
  Tensor c = Tensor::from_f32({3}, {-2.f, 3.f, 10.f});
  Tensor z = Tensor::scalar_f32(0.f);
  expect_f32(run(n, {&c, &z})[0], {3}, {0.f, 3.f, 6.f});
}

// ---------------------------------------------------------------------------
// Activations

TEST(OpsElementwise, Relu) {
  Tensor x = Tensor::from_f32({5}, {-2.f, -0.5f, 0.f, 1.5f, 7.f});
  expect_f32(run(make_node("Relu"), {&x})[0], {5}, {0.f, 0.f, 0.f, 1.5f, 7.f});
  Tensor xi = Tensor::from_i64({3}, {-4, 0, 9});
  expect_i64(run(make_node("Relu"), {&xi})[0], {3}, {0, 0, 9});
}

TEST(OpsElementwise, LeakyRelu) {
  Tensor x = Tensor::from_f32({4}, {-10.f, -1.f, 0.f, 2.f});
  expect_f32(run(make_node("LeakyRelu"), {&x})[0], {4}, {-0.1f, -0.01f, 0.f, 2.f});
  Attributes at;
  at.set("alpha", 0.2f);
  expect_f32(run(make_node("LeakyRelu", at), {&x})[0], {4}, {-2.f, -0.2f, 0.f, 2.f});
}

TEST(OpsElementwise, Sigmoid) {
  Tensor x = Tensor::from_f32({5}, {0.f, 1.f, -2.f, 20.f, -100.f});
  // 1/(1+e^-1) = 0.7310585786, 1/(1+e^2) = 0.1192029220
  expect_f32(run(make_node("Sigmoid"), {&x})[0], {5}, {0.5f, 0.7310585786f, 0.1192029220f, 1.f, 0.f});
}

TEST(OpsElementwise, HardSigmoid) {
  Tensor x = Tensor::from_f32({5}, {-3.f, -1.f, 0.f, 1.f, 3.f});
  // defaults alpha 0.2, beta 0.5
  expect_f32(run(make_node("HardSigmoid"), {&x})[0], {5}, {0.f, 0.3f, 0.5f, 0.7f, 1.f});
  Attributes at;
  at.set("alpha", 0.5f);
  at.set("beta", 0.6f);
  expect_f32(run(make_node("HardSigmoid", at), {&x})[0], {5}, {0.f, 0.1f, 0.6f, 1.f, 1.f});
}

TEST(OpsElementwise, HardSwish) {
  Tensor x = Tensor::from_f32({6}, {-4.f, -3.f, -1.f, 1.f, 3.f, 4.f});
  // x * clamp(x/6 + 0.5, 0, 1)
  expect_f32(run(make_node("HardSwish"), {&x})[0], {6},
             {0.f, 0.f, -1.f / 3.f, 2.f / 3.f, 3.f, 4.f});
}

TEST(OpsElementwise, FloatOnlyActivationRejectsInt64) {
  Tensor xi = Tensor::from_i64({2}, {1, 2});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Sigmoid"), {&xi}); }), ErrorKind::Unsupported);
}

// ---------------------------------------------------------------------------
// Clip

TEST(OpsElementwise, ClipWithInputs) {
  Tensor x = Tensor::from_f32({3}, {-2.f, 0.f, 2.f});
  Tensor lo = Tensor::scalar_f32(-1.f);
  Tensor hi = Tensor::scalar_f32(1.f);
  expect_f32(run(make_node("Clip"), {&x, &lo, &hi})[0], {3}, {-1.f, 0.f, 1.f});

  Tensor y = Tensor::from_f32({3}, {-1.f, 0.f, 6.f});
  Tensor lo5 = Tensor::scalar_f32(-5.f);
  Tensor hi5 = Tensor::scalar_f32(5.f);
  expect_f32(run(make_node("Clip"), {&y, &lo5, &hi5})[0], {3}, {-1.f, 0.f, 5.f});
}

TEST(OpsElementwise, ClipMissingBounds) {
  Tensor x = Tensor::from_f32({4}, {-300.f, -0.5f, 0.5f, 7e10f});
  Tensor zero = Tensor::scalar_f32(0.f);
  // only min (max absent -> +inf)
  expect_f32(run(make_node("Clip"), {&x, &zero})[0], {4}, {0.f, 0.f, 0.5f, 7e10f});
  // min omitted, max given
  expect_f32(run(make_node("Clip"), {&x, nullptr, &zero})[0], {4}, {-300.f, -0.5f, 0.f, 0.f});
  // neither
  expect_f32(run(make_node("Clip"), {&x, nullptr, nullptr})[0], {4}, {-300.f, -0.5f, 0.5f, 7e10f});
  expect_f32(run(make_node("Clip"), {&x})[0], {4}, {-300.f, -0.5f, 0.5f, 7e10f});
}

TEST(OpsElementwise, ClipAttributes) {
  Attributes at;
  at.set("min", 0.f);
  at.set("max", 6.f);
  Tensor x = Tensor::from_f32({4}, {-1.f, 3.f, 6.f, 8.f});
  // opset 6 style, and attributes left by the canonicalizer at opset 13
  expect_f32(run(make_node("Clip", at), {&x}, 6)[0], {4}, {0.f, 3.f, 6.f, 6.f});
  expect_f32(run(make_node("Clip", at), {&x}, 13)[0], {4}, {0.f, 3.f, 6.f, 6.f});
  Attributes only_max;
  only_max.set("max", 2.f);
  expect_f32(run(make_node("Clip", only_max), {&x}, 6)[0], {4}, {-1.f, 2.f, 2.f, 2.f});
}

TEST(OpsElementwise, ClipInt64) {
  Tensor x = Tensor::from_i64({4}, {-5, 0, 5, 50});
  Tensor lo = Tensor::from_i64({}, {-1});
  Tensor hi = Tensor::from_i64({}, {10});
  expect_i64(run(make_node("Clip"), {&x, &lo, &hi})[0], {4}, {-1, 0, 5, 10});
  expect_i64(run(make_node("Clip"), {&x, nullptr, &hi})[0], {4}, {-5, 0, 5, 10});
}

TEST(OpsElementwise, ClipNonScalarBoundThrows) {
  Tensor x = Tensor::from_f32({2}, {1.f, 2.f});
  Tensor lo = Tensor::from_f32({2}, {0.f, 0.f});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Clip"), {&x, &lo}); }), ErrorKind::InvalidModel);
}

// ---------------------------------------------------------------------------
// Unary math

// The error's kind, checking that its message names the node.
ErrorKind error_naming(const std::string& node_name, const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(node_name), std::string::npos) << e.what();
    return e.kind();
  }
  ADD_FAILURE() << "expected vkfuse::Error";
  return ErrorKind::Internal;
}

TEST(OpsElementwise, UnaryMath) {
  Tensor x = Tensor::from_f32({4}, {0.25f, 1.f, 4.f, 100.f});
  expect_f32(run(make_node("Sqrt"), {&x})[0], {4}, {0.5f, 1.f, 2.f, 10.f});
  expect_f32(run(make_node("Reciprocal"), {&x})[0], {4}, {4.f, 1.f, 0.25f, 0.01f});
  Tensor e = Tensor::from_f32({3}, {0.f, 1.f, -1.f});
  expect_f32(run(make_node("Exp"), {&e})[0], {3}, {1.f, 2.718281828f, 0.3678794412f});
  Tensor l = Tensor::from_f32({3}, {1.f, 2.f, 10.f});
  expect_f32(run(make_node("Log"), {&l})[0], {3}, {0.f, 0.6931471806f, 2.302585093f});
  Tensor z = Tensor::scalar_f32(0.f);
  expect_f32(run(make_node("Log"), {&z})[0], {}, {-std::numeric_limits<float>::infinity()});
  Tensor t = Tensor::from_f32({4}, {0.f, 0.5f, 1.f, -2.f});
  expect_f32(run(make_node("Erf"), {&t})[0], {4}, {0.f, 0.5204998778f, 0.8427007929f, -0.9953222650f});
  expect_f32(run(make_node("Tanh"), {&t})[0], {4}, {0.f, 0.4621171573f, 0.7615941560f, -0.9640275801f});
}

TEST(OpsElementwise, SoftplusSoftsign) {
  // ln(1 + e^x); large |x| must neither overflow nor lose the linear part.
  Tensor x = Tensor::from_f32({5}, {0.f, 1.f, -1.f, 100.f, -100.f});
  expect_f32(run(make_node("Softplus"), {&x})[0], {5}, {0.6931471806f, 1.3132616875f, 0.3132616875f, 100.f, 0.f});
  Tensor big = Tensor::scalar_f32(1e30f);
  expect_f32(run(make_node("Softplus"), {&big})[0], {}, {1e30f}, 1e24f);
  Tensor y = Tensor::from_f32({3}, {1.f, -3.f, 0.f});
  expect_f32(run(make_node("Softsign"), {&y})[0], {3}, {0.5f, -0.75f, 0.f});
}

TEST(OpsElementwise, CeilFloor) {
  Tensor x = Tensor::from_f32({5}, {-1.5f, -0.5f, 0.f, 1.2f, 2.f});
  expect_f32(run(make_node("Ceil"), {&x})[0], {5}, {-1.f, 0.f, 0.f, 2.f, 2.f});
  expect_f32(run(make_node("Floor"), {&x})[0], {5}, {-2.f, -1.f, 0.f, 1.f, 2.f});
}

TEST(OpsElementwise, EluSelu) {
  Tensor x = Tensor::from_f32({3}, {-1.f, 0.f, 2.f});
  // alpha * (e^x - 1) below zero; e^-1 - 1 = -0.6321205588
  expect_f32(run(make_node("Elu"), {&x})[0], {3}, {-0.6321205588f, 0.f, 2.f});
  Attributes at;
  at.set("alpha", 2.f);
  expect_f32(run(make_node("Elu", at), {&x})[0], {3}, {-1.2642411177f, 0.f, 2.f});
  // default gamma 1.0507009874, alpha 1.6732632424: gamma * alpha * (e^-1 - 1) = -1.1113307378
  expect_f32(run(make_node("Selu"), {&x})[0], {3}, {-1.1113307378f, 0.f, 2.1014019747f});
  Attributes s;
  s.set("alpha", 2.f);
  s.set("gamma", 3.f);
  expect_f32(run(make_node("Selu", s), {&x})[0], {3}, {-3.7927233530f, 0.f, 6.f});
}

TEST(OpsElementwise, NegAbsFloatAndInt64) {
  Tensor x = Tensor::from_f32({3}, {-2.5f, 0.f, 4.f});
  expect_f32(run(make_node("Neg"), {&x})[0], {3}, {2.5f, 0.f, -4.f});
  expect_f32(run(make_node("Abs"), {&x})[0], {3}, {2.5f, 0.f, 4.f});
  const std::int64_t lo = std::numeric_limits<std::int64_t>::min();
  Tensor xi = Tensor::from_i64({4}, {-3, 0, 7, lo});
  // INT64_MIN wraps to itself, as in numpy.
  expect_i64(run(make_node("Neg"), {&xi})[0], {4}, {3, 0, -7, lo});
  expect_i64(run(make_node("Abs"), {&xi})[0], {4}, {3, 0, 7, lo});
}

TEST(OpsElementwise, FloatMathRejectsInt64) {
  Tensor xi = Tensor::from_i64({2}, {1, 4});
  for (const char* op : {"Sqrt", "Exp", "Erf", "Reciprocal", "Floor", "Elu"})
    EXPECT_EQ(error_naming(std::string(op) + "_test", [&] { run(make_node(op), {&xi}); }), ErrorKind::Unsupported)
        << op;
}

// ---------------------------------------------------------------------------
// Pow

TEST(OpsElementwise, PowFloat) {
  Tensor x = Tensor::from_f32({2, 3}, {1.f, 2.f, 3.f, 4.f, 9.f, -2.f});
  Tensor y = Tensor::from_f32({3}, {2.f, 0.5f, 3.f});
  // [2,3] ^ [3]: -2 ^ 3 = -8
  expect_f32(run(make_node("Pow"), {&x, &y})[0], {2, 3}, {1.f, 1.4142135624f, 27.f, 16.f, 3.f, -8.f});
  Tensor two = Tensor::scalar_f32(2.f);
  expect_f32(run(make_node("Pow"), {&x, &two})[0], {2, 3}, {1.f, 4.f, 9.f, 16.f, 81.f, 4.f});
  // Negative base to a fractional power is NaN.
  Tensor neg = Tensor::scalar_f32(-4.f);
  Tensor half = Tensor::scalar_f32(0.5f);
  EXPECT_TRUE(std::isnan(run(make_node("Pow"), {&neg, &half})[0].f32()[0]));
}

TEST(OpsElementwise, PowFloatBaseInt64Exponent) {
  // [3] ^ [2,1] -> [2,3]
  Tensor x = Tensor::from_f32({3}, {2.f, -3.f, 0.5f});
  Tensor y = Tensor::from_i64({2, 1}, {3, -1});
  expect_f32(run(make_node("Pow"), {&x, &y})[0], {2, 3}, {8.f, -27.f, 0.125f, 0.5f, -1.f / 3.f, 2.f});
}

TEST(OpsElementwise, PowInt64) {
  Tensor x = Tensor::from_i64({6}, {2, -3, 7, 1, -1, 2});
  Tensor y = Tensor::from_i64({6}, {10, 3, 0, -5, -3, -1});
  // Negative exponents truncate 1 / x^|y| toward zero.
  expect_i64(run(make_node("Pow"), {&x, &y})[0], {6}, {1024, -27, 1, 1, -1, 0});
  // 2^64 wraps to 0, 3^40 = 12157665459056928801 wraps to -6289078614652622815.
  Tensor b = Tensor::from_i64({2}, {2, 3});
  Tensor e = Tensor::from_i64({2}, {64, 40});
  expect_i64(run(make_node("Pow"), {&b, &e})[0], {2}, {0, -6289078614652622815});
}

TEST(OpsElementwise, PowErrors) {
  Tensor xi = Tensor::from_i64({2}, {0, 2});
  Tensor yi = Tensor::from_i64({1}, {-1});
  EXPECT_EQ(error_naming("Pow_test", [&] { run(make_node("Pow"), {&xi, &yi}); }), ErrorKind::InvalidModel);
  Tensor yf = Tensor::from_f32({1}, {2.f});
  EXPECT_EQ(error_naming("Pow_test", [&] { run(make_node("Pow"), {&xi, &yf}); }), ErrorKind::Unsupported);
  Tensor xf = Tensor::from_f32({2}, {1.f, 2.f});
  Tensor y3 = Tensor::from_f32({3}, {1.f, 2.f, 3.f});
  EXPECT_EQ(error_naming("Pow_test", [&] { run(make_node("Pow"), {&xf, &y3}); }), ErrorKind::InvalidModel);
}

// ---------------------------------------------------------------------------
// PRelu

TEST(OpsElementwise, PRelu) {
  // Per-channel slope [2,1,1] over x [1,2,2,2].
  Tensor x = Tensor::from_f32({1, 2, 2, 2}, {-1.f, 2.f, -3.f, 4.f, -5.f, 6.f, 0.f, -8.f});
  Tensor slope = Tensor::from_f32({2, 1, 1}, {0.1f, 0.5f});
  expect_f32(run(make_node("PRelu"), {&x, &slope})[0], {1, 2, 2, 2},
             {-0.1f, 2.f, -0.3f, 4.f, -2.5f, 6.f, 0.f, -4.f});
  Tensor one = Tensor::scalar_f32(0.25f);
  expect_f32(run(make_node("PRelu"), {&x, &one})[0], {1, 2, 2, 2},
             {-0.25f, 2.f, -0.75f, 4.f, -1.25f, 6.f, 0.f, -2.f});
}

TEST(OpsElementwise, PReluSlopeMustBroadcastToX) {
  // Multidirectionally compatible, but the output would be larger than X.
  Tensor x = Tensor::from_f32({2}, {-1.f, 1.f});
  Tensor slope = Tensor::from_f32({3, 1}, {1.f, 2.f, 3.f});
  EXPECT_EQ(error_naming("PRelu_test", [&] { run(make_node("PRelu"), {&x, &slope}); }), ErrorKind::InvalidModel);
  Tensor xi = Tensor::from_i64({2}, {-1, 1});
  Tensor si = Tensor::from_i64({1}, {2});
  EXPECT_EQ(error_naming("PRelu_test", [&] { run(make_node("PRelu"), {&xi, &si}); }), ErrorKind::Unsupported);
}

// ---------------------------------------------------------------------------
// Variadic Min, Max, Mean, Sum

TEST(OpsElementwise, VariadicThreeInputsBroadcast) {
  Tensor a = Tensor::from_f32({2, 1}, {1.f, 5.f});
  Tensor b = Tensor::from_f32({3}, {4.f, 2.f, 6.f});
  Tensor c = Tensor::scalar_f32(3.f);
  expect_f32(run(make_node("Max"), {&a, &b, &c})[0], {2, 3}, {4.f, 3.f, 6.f, 5.f, 5.f, 6.f});
  expect_f32(run(make_node("Min"), {&a, &b, &c})[0], {2, 3}, {1.f, 1.f, 1.f, 3.f, 2.f, 3.f});
  expect_f32(run(make_node("Sum"), {&a, &b, &c})[0], {2, 3}, {8.f, 6.f, 10.f, 12.f, 10.f, 14.f});
  expect_f32(run(make_node("Mean"), {&a, &b, &c})[0], {2, 3},
             {8.f / 3.f, 2.f, 10.f / 3.f, 4.f, 10.f / 3.f, 14.f / 3.f});
}

TEST(OpsElementwise, VariadicOneInput) {
  Tensor a = Tensor::from_f32({3}, {1.f, -2.f, 3.f});
  for (const char* op : {"Min", "Max", "Mean", "Sum"})
    expect_f32(run(make_node(op), {&a})[0], {3}, {1.f, -2.f, 3.f});
}

TEST(OpsElementwise, VariadicMinMaxPropagateNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor a = Tensor::from_f32({2}, {nan, 1.f});
  Tensor b = Tensor::from_f32({2}, {0.f, nan});
  for (const char* op : {"Min", "Max"}) {
    Tensor out = run(make_node(op), {&a, &b})[0];
    EXPECT_TRUE(std::isnan(out.f32()[0]) && std::isnan(out.f32()[1])) << op;
  }
}

TEST(OpsElementwise, VariadicInt64) {
  Tensor a = Tensor::from_i64({3}, {1, 224, -4});
  Tensor b = Tensor::from_i64({1}, {3});
  Tensor c = Tensor::from_i64({3}, {0, 100, 2});
  expect_i64(run(make_node("Min"), {&a, &b, &c})[0], {3}, {0, 3, -4});
  expect_i64(run(make_node("Max"), {&a, &b, &c})[0], {3}, {3, 224, 3});
  expect_i64(run(make_node("Sum"), {&a, &b, &c})[0], {3}, {4, 327, 1});
  EXPECT_EQ(error_naming("Mean_test", [&] { run(make_node("Mean"), {&a, &b}); }), ErrorKind::Unsupported);
}

TEST(OpsElementwise, VariadicErrors) {
  Tensor f = Tensor::from_f32({2}, {1.f, 2.f});
  Tensor i = Tensor::from_i64({2}, {1, 2});
  EXPECT_EQ(error_naming("Max_test", [&] { run(make_node("Max"), {&f, &i}); }), ErrorKind::InvalidModel);
  Tensor g = Tensor::from_f32({3}, {1.f, 2.f, 3.f});
  EXPECT_EQ(error_naming("Sum_test", [&] { run(make_node("Sum"), {&f, &f, &g}); }), ErrorKind::InvalidModel);
  EXPECT_EQ(error_naming("Min_test", [&] { run(make_node("Min"), {}); }), ErrorKind::InvalidModel);
}

TEST(OpsElementwise, MultithreadedSumMatchesFormula) {
  // Spans several work chunks; the seed input is the one that broadcasts.
  const std::int64_t A = 4, B = 9000;
  std::vector<float> av(static_cast<std::size_t>(A));
  for (std::int64_t i = 0; i < A; ++i) av[static_cast<std::size_t>(i)] = 1000.f * static_cast<float>(i);
  Tensor a = Tensor::from_f32({A, 1}, av);
  Tensor b = Tensor::from_f32({B}, iota_f(static_cast<std::size_t>(B)));
  Tensor c = Tensor::scalar_f32(0.5f);
  auto out = run(make_node("Sum"), {&a, &b, &c}, 13, 4);
  ASSERT_EQ(out[0].shape(), (Shape{A, B}));
  for (std::int64_t i = 0; i < A; ++i)
    for (std::int64_t j = 0; j < B; ++j)
      ASSERT_EQ(out[0].f32()[i * B + j], 1000.f * static_cast<float>(i) + static_cast<float>(j) + 0.5f) << i << "," << j;
}

TEST(OpsElementwise, FusedActivationAppliedToNewOps) {
  Node n = make_node("Max");
  n.activation.kind = Activation::Kind::Relu;
  Tensor a = Tensor::from_f32({2}, {-3.f, 1.f});
  Tensor b = Tensor::from_f32({2}, {-2.f, 0.f});
  expect_f32(run(n, {&a, &b})[0], {2}, {0.f, 1.f});
  Node p = make_node("Pow");
  p.activation = Activation{Activation::Kind::Clip, 0.f, 6.f};
  Tensor two = Tensor::scalar_f32(2.f);
  Tensor x = Tensor::from_f32({2}, {1.f, 3.f});
  expect_f32(run(p, {&x, &two})[0], {2}, {1.f, 6.f});
  Node ni = make_node("Neg");
  ni.activation.kind = Activation::Kind::Relu;
  Tensor xi = Tensor::from_i64({1}, {1});
  EXPECT_EQ(error_naming("Neg_test", [&] { run(ni, {&xi}); }), ErrorKind::Unsupported);
}

// ---------------------------------------------------------------------------
// Comparisons, logic, Where (bool held as int64 0/1); expected values from
// numpy (np.equal, np.less, ..., np.where, astype(bool)).

TEST(OpsElementwise, ComparisonsBroadcastAndTreatNaNAsUnordered) {
  Tensor x = Tensor::from_f32({2, 3}, {1.f, -2.f, 3.f, std::nanf(""), 5.f, 0.f});
  Tensor y = Tensor::from_f32({3}, {1.f, 5.f, -1.f});
  expect_i64(run(make_node("Equal"), {&x, &y})[0], {2, 3}, {1, 0, 0, 0, 1, 0});
  expect_i64(run(make_node("Less"), {&x, &y})[0], {2, 3}, {0, 1, 0, 0, 0, 0});
  expect_i64(run(make_node("Greater"), {&x, &y})[0], {2, 3}, {0, 0, 1, 0, 0, 1});
  expect_i64(run(make_node("LessOrEqual"), {&x, &y})[0], {2, 3}, {1, 1, 0, 0, 1, 0});
  expect_i64(run(make_node("GreaterOrEqual"), {&x, &y})[0], {2, 3}, {1, 0, 1, 0, 1, 1});
  Tensor a = Tensor::from_i64({3}, {3, -1, 7}), b = Tensor::from_i64({}, {3});
  expect_i64(run(make_node("Equal"), {&a, &b})[0], {3}, {1, 0, 0});
  EXPECT_EQ(error_naming("Less_test", [&] { run(make_node("Less"), {&x, &a}); }), ErrorKind::InvalidModel);
}

TEST(OpsElementwise, LogicOpsAndNot) {
  Tensor a = Tensor::from_i64({2, 1}, {1, 0});
  Tensor b = Tensor::from_i64({3}, {1, 0, 5});  // any non-zero is true
  expect_i64(run(make_node("And"), {&a, &b})[0], {2, 3}, {1, 0, 1, 0, 0, 0});
  expect_i64(run(make_node("Or"), {&a, &b})[0], {2, 3}, {1, 1, 1, 1, 0, 1});
  expect_i64(run(make_node("Xor"), {&a, &b})[0], {2, 3}, {0, 1, 0, 1, 0, 1});
  expect_i64(run(make_node("Not"), {&b})[0], {3}, {0, 1, 0});
  Tensor f = Tensor::from_f32({1}, {1.f});
  EXPECT_EQ(error_naming("And_test", [&] { run(make_node("And"), {&f, &b}); }), ErrorKind::InvalidModel);
}

TEST(OpsElementwise, WhereBroadcastsAllThree) {
  Tensor c = Tensor::from_i64({2, 1}, {1, 0});
  Tensor x = Tensor::from_f32({3}, {1.f, 2.f, 3.f});
  Tensor y = Tensor::scalar_f32(-7.f);
  expect_f32(run(make_node("Where"), {&c, &x, &y})[0], {2, 3}, {1.f, 2.f, 3.f, -7.f, -7.f, -7.f});
  Tensor xi = Tensor::from_i64({3}, {4, 5, 6}), yi = Tensor::from_i64({2, 1}, {8, 9});
  expect_i64(run(make_node("Where"), {&c, &xi, &yi})[0], {2, 3}, {4, 5, 6, 9, 9, 9});
  EXPECT_EQ(error_naming("Where_test", [&] { run(make_node("Where"), {&x, &x, &y}); }), ErrorKind::InvalidModel);
  EXPECT_EQ(error_naming("Where_test", [&] { run(make_node("Where"), {&c, &x, &yi}); }), ErrorKind::InvalidModel);
}

TEST(OpsElementwise, CastToBool) {
  Attributes to_bool;
  to_bool.set("to", std::int64_t{9});
  Tensor x = Tensor::from_f32({4}, {0.f, 0.5f, -2.f, std::nanf("")});
  expect_i64(run(make_node("Cast", to_bool), {&x})[0], {4}, {0, 1, 1, 1});
  Tensor i = Tensor::from_i64({3}, {0, 3, -1});
  expect_i64(run(make_node("Cast", to_bool), {&i})[0], {3}, {0, 1, 1});
}

TEST(OpsElementwise, Registered) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish",
                         "Clip", "Pow", "PRelu", "Min", "Max", "Mean", "Sum", "Sqrt", "Exp", "Log", "Erf", "Tanh",
                         "Softplus", "Softsign", "Reciprocal", "Ceil", "Floor", "Elu", "Selu", "Neg", "Abs", "Equal", "Less",
                         "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not", "Where"})
    EXPECT_NE(find_op(op), nullptr) << op;
}

// parallel_for: every item once, on up to `threads` threads, and the first
// exception a body throws comes back to the caller (once all have stopped).
TEST(ParallelFor, RunsEveryItemOnceAndRethrows) {
  for (int threads : {1, 3, 8}) {
    std::vector<std::atomic<int>> hits(1000);
    parallel_for(threads, 1000, [&](std::int64_t i) { ++hits[static_cast<std::size_t>(i)]; });
    for (std::size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " threads, item " << i;
    std::atomic<int> ran{0};
    EXPECT_THROW(parallel_for(threads, 100,
                              [&](std::int64_t i) {
                                ++ran;
                                if (i == 7) throw std::runtime_error("item 7");
                              }),
                 std::runtime_error);
    EXPECT_GE(ran.load(), 8);  // items are taken in order: 0..7 at least ran
  }
  parallel_for(4, 0, [](std::int64_t) { ADD_FAILURE() << "no items, yet the body ran"; });
}

}  // namespace
}  // namespace vkfuse::graph
