// Reference kernels of graph/ops/elementwise.cpp: Add, Sub, Mul, Div, the
// activations and Clip. Expected values are written out by hand (or by an
// explicit index formula), never produced by the kernel under test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
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

TEST(OpsElementwise, Registered) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish",
                         "Clip"})
    EXPECT_NE(find_op(op), nullptr) << op;
}

}  // namespace
}  // namespace vkfuse::graph
