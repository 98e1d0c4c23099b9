// tests/graph/test_ops_reduce.cpp — the reference Reduce* kernels and the
// normalisations InstanceNormalization, LayerNormalization and LRN, on small
// hand-computed cases; the reductions also against a brute-force fold over
// every axis subset of a rank-4 tensor.
//
// Run: ctest -R test_ops_reduce (or build-dev/tests/graph/test_ops_reduce).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kInfF = std::numeric_limits<float>::infinity();

Node make_node(const std::string& op) {
  Node n;
  n.name = "n0";
  n.op_type = op;
  return n;
}

Node reduce_node(const std::string& op, std::vector<std::int64_t> axes, std::int64_t keepdims = 1) {
  Node n = make_node(op);
  n.attrs.set("axes", std::move(axes));
  n.attrs.set("keepdims", keepdims);
  return n;
}

std::vector<Tensor> run_all(const Node& n, std::vector<const Tensor*> inputs, std::int64_t opset = 13,
                            int threads = 1) {
  return evaluate_node(OpContext{n, opset, threads}, inputs);
}

Tensor run(const Node& n, std::vector<const Tensor*> inputs, std::int64_t opset = 13, int threads = 1) {
  auto outs = run_all(n, inputs, opset, threads);
  EXPECT_GE(outs.size(), 1u);
  return std::move(outs.at(0));
}

// Values compared with a relative tolerance; NaN matches NaN, inf the same inf.
void expect_tensor(const Tensor& t, const Shape& shape, const std::vector<double>& values, double tol = 1e-6) {
  ASSERT_EQ(t.shape(), shape) << "got " << shape_string(t.shape());
  ASSERT_EQ(t.numel(), static_cast<std::int64_t>(values.size()));
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double got = t.f32()[i], want = values[i];
    if (std::isnan(want)) EXPECT_TRUE(std::isnan(got)) << "at flat index " << i << ": got " << got;
    else if (std::isinf(want)) EXPECT_EQ(got, want) << "at flat index " << i;
    else EXPECT_NEAR(got, want, tol * std::max(1.0, std::abs(want))) << "at flat index " << i;
  }
}

void expect_ints(const Tensor& t, const Shape& shape, const std::vector<std::int64_t>& values) {
  ASSERT_EQ(t.dtype(), DType::i64);
  ASSERT_EQ(t.shape(), shape) << "got " << shape_string(t.shape());
  EXPECT_EQ(t.to_ints(), values);
}

void expect_error(const Node& n, std::vector<const Tensor*> inputs, ErrorKind kind, std::int64_t opset = 13) {
  try {
    evaluate_node(OpContext{n, opset, 1}, inputs);
    ADD_FAILURE() << "expected vkfuse::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find("n0"), std::string::npos) << "message should name the node: " << e.what();
  }
}

// Deterministic values in [-2, 2) (no two equal, so that Max/Min are unambiguous).
std::vector<float> ramp(std::int64_t n, float offset = 0.f) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)] = -2.f + 4.f * static_cast<float>((i * 37) % n) / static_cast<float>(n) + offset;
  return v;
}

// ---- Reductions: hand-computed --------------------------------------------------

// X [2, 3] = [[1, -2, 3], [4, 5, -6]], every op over axis 1 and over all axes.
TEST(Reduce, EveryOpOnAMatrix) {
  Tensor x = Tensor::from_f32({2, 3}, {1, -2, 3, 4, 5, -6});
  struct Case {
    const char* op;
    std::vector<double> rows;  // over axis 1
    double all;                // over all axes
  };
  const double lse0 = std::log(std::exp(1.0) + std::exp(-2.0) + std::exp(3.0));
  const double lse1 = std::log(std::exp(4.0) + std::exp(5.0) + std::exp(-6.0));
  const Case cases[] = {
      {"ReduceSum", {2, 3}, 5},
      {"ReduceMean", {2.0 / 3, 1}, 5.0 / 6},
      {"ReduceMax", {3, 5}, 5},
      {"ReduceMin", {-2, -6}, -6},
      {"ReduceProd", {-6, -120}, 720},
      {"ReduceL1", {6, 15}, 21},
      {"ReduceL2", {std::sqrt(14.0), std::sqrt(77.0)}, std::sqrt(91.0)},
      {"ReduceSumSquare", {14, 77}, 91},
      {"ReduceLogSum", {std::log(2.0), std::log(3.0)}, std::log(5.0)},
      {"ReduceLogSumExp", {lse0, lse1}, std::log(std::exp(lse0) + std::exp(lse1))},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.op);
    const std::int64_t opset = std::string(c.op) == "ReduceSum" ? 11 : 13;  // axes as an attribute
    expect_tensor(run(reduce_node(c.op, {1}), {&x}, opset), {2, 1}, c.rows);
    expect_tensor(run(reduce_node(c.op, {-1}, 0), {&x}, opset), {2}, c.rows);
    Node all = make_node(c.op);  // no axes: all of them, keepdims default 1
    expect_tensor(run(all, {&x}, opset), {1, 1}, {c.all});
    all.attrs.set("keepdims", std::int64_t{0});
    expect_tensor(run(all, {&x}, opset), {}, {c.all});
  }
}

TEST(Reduce, MiddleAndOuterAxes) {
  // X [2, 2, 2] = 0..7: axis 1 -> [[2, 4], [10, 12]]; axes {0, 2} -> [1+0+4+5, 2+3+6+7]; axis 0 -> [4, 6, 8, 10].
  Tensor x = Tensor::from_f32({2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  expect_tensor(run(reduce_node("ReduceSum", {1}), {&x}, 11), {2, 1, 2}, {2, 4, 10, 12});
  expect_tensor(run(reduce_node("ReduceSum", {2, 0}, 0), {&x}, 11), {2}, {10, 18});
  expect_tensor(run(reduce_node("ReduceMax", {0}, 0), {&x}), {2, 2}, {4, 5, 6, 7});
  expect_tensor(run(reduce_node("ReduceMean", {-3, -2}), {&x}), {1, 1, 2}, {3, 4});
}

TEST(Reduce, ScalarAndSizeOneDims) {
  Tensor s = Tensor::scalar_f32(-3);
  expect_tensor(run(make_node("ReduceL2"), {&s}), {}, {3});
  expect_tensor(run(make_node("ReduceSumSquare"), {&s}), {}, {9});
  // Size-1 dims, reduced or kept, change no value.
  Tensor x = Tensor::from_f32({1, 3, 1}, {1, 2, 3});
  expect_tensor(run(reduce_node("ReduceProd", {0, 2}), {&x}), {1, 3, 1}, {1, 2, 3});
  expect_tensor(run(reduce_node("ReduceProd", {1}, 0), {&x}), {1, 1}, {6});
}

TEST(Reduce, EmptySetFollowsOnnx) {
  Tensor x(DType::f32, {2, 0});
  const std::pair<const char*, double> cases[] = {
      {"ReduceSum", 0},   {"ReduceProd", 1},       {"ReduceMax", -kInf},     {"ReduceMin", kInf},
      {"ReduceL1", 0},    {"ReduceL2", 0},         {"ReduceSumSquare", 0},   {"ReduceLogSum", -kInf},
      {"ReduceLogSumExp", -kInf}, {"ReduceMean", std::nan("")},
  };
  for (const auto& [op, v] : cases) {
    SCOPED_TRACE(op);
    expect_tensor(run(reduce_node(op, {1}), {&x}, 11), {2, 1}, {v, v});
  }
  // Reducing the non-empty axis of an empty tensor gives an empty tensor.
  expect_tensor(run(reduce_node("ReduceSum", {0}, 0), {&x}, 11), {0}, {});
}

TEST(Reduce, LogSumExpIsStableAndMaxPropagatesNan) {
  Tensor big = Tensor::from_f32({3}, {1000, 1000, -kInfF});
  expect_tensor(run(make_node("ReduceLogSumExp"), {&big}), {1}, {1000 + std::log(2.0)});
  Tensor inf = Tensor::from_f32({3}, {1, kInfF, kInfF});
  expect_tensor(run(make_node("ReduceLogSumExp"), {&inf}), {1}, {kInf});
  Tensor nan = Tensor::from_f32({3}, {1, std::nanf(""), 5});
  for (const char* op : {"ReduceMax", "ReduceMin", "ReduceLogSumExp", "ReduceSum"}) {
    SCOPED_TRACE(op);
    expect_tensor(run(make_node(op), {&nan}, 11), {1}, {std::nan("")});
  }
}

TEST(Reduce, Int64ShapeArithmetic) {
  Tensor x = Tensor::from_i64({2, 3}, {2, 3, 4, -1, 5, 7});
  expect_ints(run(reduce_node("ReduceProd", {1}, 0), {&x}), {2}, {24, -35});
  expect_ints(run(make_node("ReduceProd"), {&x}), {1, 1}, {24 * -35});
  expect_ints(run(reduce_node("ReduceSum", {0}), {&x}, 11), {1, 3}, {1, 8, 11});
  expect_ints(run(reduce_node("ReduceMax", {1}, 0), {&x}), {2}, {4, 7});
  expect_ints(run(reduce_node("ReduceMin", {0, 1}, 0), {&x}), {}, {-1});
  // Exact beyond float's 24 bits.
  Tensor big = Tensor::from_i64({2}, {(std::int64_t{1} << 40) + 1, 1});
  expect_ints(run(make_node("ReduceSum"), {&big}, 11), {1}, {(std::int64_t{1} << 40) + 2});
  for (const char* op : {"ReduceMean", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"}) {
    SCOPED_TRACE(op);
    expect_error(make_node(op), {&x}, ErrorKind::Unsupported);
  }
}

TEST(Reduce, FusedActivationOnOutput0) {
  Tensor x = Tensor::from_f32({2, 2}, {1, -3, 2, 4});
  Node n = reduce_node("ReduceSum", {1}, 0);
  n.activation.kind = Activation::Kind::Relu;
  expect_tensor(run(n, {&x}, 11), {2}, {0, 6});
}

// ---- Reductions: axes as an input ----------------------------------------------

TEST(Reduce, SumAxesInputFromOpset13) {
  Tensor x = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor axis1 = Tensor::from_i64({1}, {1});
  Tensor neg = Tensor::from_i64({2}, {-1, 0});
  Tensor none = Tensor::from_i64({0}, {});
  Node n = make_node("ReduceSum");
  expect_tensor(run(n, {&x, &axis1}), {2, 1}, {6, 15});
  expect_tensor(run(n, {&x, &neg}), {1, 1}, {21});
  expect_tensor(run(n, {&x, &none}), {1, 1}, {21});  // empty axes: all of them
  expect_tensor(run(n, {&x}), {1, 1}, {21});          // absent axes: all of them
  expect_tensor(run(n, {&x, nullptr}), {1, 1}, {21});
  n.attrs.set("keepdims", std::int64_t{0});
  expect_tensor(run(n, {&x, &axis1}), {2}, {6, 15});
  // noop_with_empty_axes: no axes leave the input as it is.
  n.attrs.set("noop_with_empty_axes", std::int64_t{1});
  expect_tensor(run(n, {&x, &none}), {2, 3}, {1, 2, 3, 4, 5, 6});
  expect_tensor(run(n, {&x}), {2, 3}, {1, 2, 3, 4, 5, 6});
  expect_tensor(run(n, {&x, &axis1}), {2}, {6, 15});
  // The 'axes' attribute is not ReduceSum's from opset 13.
  expect_error(reduce_node("ReduceSum", {1}), {&x}, ErrorKind::InvalidModel);
  // Before opset 13 a second input is an error.
  expect_error(make_node("ReduceSum"), {&x, &axis1}, ErrorKind::InvalidModel, 11);
  // The other ops keep the attribute until opset 18, and take the input from there.
  expect_error(make_node("ReduceMean"), {&x, &axis1}, ErrorKind::InvalidModel, 17);
  expect_tensor(run(make_node("ReduceMean"), {&x, &axis1}, 18), {2, 1}, {2, 5});
  expect_error(reduce_node("ReduceMax", {1}), {&x}, ErrorKind::InvalidModel, 18);
}

TEST(Reduce, AxesInputMustBeConstantInt64) {
  Node n = make_node("ReduceSum");
  InputInfo x{DType::f32, {2, 3}, nullptr, true};
  InputInfo axes{DType::i64, {1}, nullptr, true};  // a runtime value
  std::vector<InputInfo> in{x, axes};
  try {
    infer_node(OpContext{n, 13, 1}, in);
    ADD_FAILURE() << "expected vkfuse::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("constant"), std::string::npos) << e.what();
  }
  Tensor xt = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor fa = Tensor::from_f32({1}, {1});
  expect_error(n, {&xt, &fa}, ErrorKind::InvalidModel);
}

TEST(Reduce, BadAxes) {
  Tensor x = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  expect_error(reduce_node("ReduceMean", {2}), {&x}, ErrorKind::InvalidModel);
  expect_error(reduce_node("ReduceMean", {-3}), {&x}, ErrorKind::InvalidModel);
  expect_error(reduce_node("ReduceMean", {1, -1}), {&x}, ErrorKind::InvalidModel);  // duplicate
  Tensor dup = Tensor::from_i64({2}, {0, 0});
  expect_error(make_node("ReduceSum"), {&x, &dup}, ErrorKind::InvalidModel);
  expect_error(make_node("ReduceSum"), {}, ErrorKind::InvalidModel);
}

// ---- Reductions: against a brute-force fold --------------------------------------

// op over the elements of x whose index differs from `o`'s only in reduced dims.
std::vector<double> brute_force(const std::string& op, const Tensor& x, const std::vector<bool>& reduced,
                                const Shape& out_shape) {
  const Shape& s = x.shape();
  std::vector<std::vector<double>> groups(static_cast<std::size_t>(element_count(out_shape)));
  std::vector<std::int64_t> idx(s.size(), 0);
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    std::int64_t rem = i, o = 0, ostride = 1;
    for (std::size_t k = s.size(); k-- > 0;) {
      idx[k] = rem % s[k];
      rem /= s[k];
    }
    for (std::size_t k = s.size(); k-- > 0;) {
      if (reduced[k]) continue;
      o += idx[k] * ostride;
      ostride *= s[k];
    }
    groups[static_cast<std::size_t>(o)].push_back(x.f32()[i]);
  }
  std::vector<double> out;
  for (const auto& g : groups) {
    double sum = 0, l1 = 0, sq = 0, prod = 1, mx = -kInf, mn = kInf, se = 0;
    for (double v : g) {
      sum += v, l1 += std::abs(v), sq += v * v, prod *= v, mx = std::max(mx, v), mn = std::min(mn, v);
      se += std::exp(v);
    }
    const double n = static_cast<double>(g.size());
    if (op == "ReduceSum") out.push_back(sum);
    else if (op == "ReduceMean") out.push_back(sum / n);
    else if (op == "ReduceMax") out.push_back(mx);
    else if (op == "ReduceMin") out.push_back(mn);
    else if (op == "ReduceProd") out.push_back(prod);
    else if (op == "ReduceL1") out.push_back(l1);
    else if (op == "ReduceL2") out.push_back(std::sqrt(sq));
    else if (op == "ReduceSumSquare") out.push_back(sq);
    else if (op == "ReduceLogSum") out.push_back(std::log(sum));
    else out.push_back(std::log(se));
  }
  return out;
}

TEST(Reduce, EveryAxisSubsetMatchesBruteForce) {
  // Dims of 1 between others, an inner dim wider than one accumulator tile
  // (256), and a positive offset so that LogSum sees positive sums.
  const Shape shapes[] = {{2, 3, 1, 4}, {3, 1, 2, 300}, {1, 5, 4, 1}};
  const char* ops[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                       "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"};
  for (const Shape& shape : shapes) {
    Tensor x = Tensor::from_f32(shape, ramp(element_count(shape), 2.5f));
    for (int mask = 1; mask < 16; ++mask) {
      std::vector<std::int64_t> axes;
      std::vector<bool> reduced(4);
      Shape out_shape;
      for (std::size_t k = 0; k < 4; ++k) {
        reduced[k] = (mask >> k) & 1;
        if (reduced[k]) axes.push_back(static_cast<std::int64_t>(k) - (k % 2 ? 4 : 0));  // some negative
        out_shape.push_back(reduced[k] ? 1 : shape[k]);
      }
      for (const char* op : ops) {
        SCOPED_TRACE(std::string(op) + " of " + shape_string(shape) + " over " + ints_string(axes));
        if (std::string(op) == "ReduceProd" && element_count(shape) > 64) continue;  // overflows to inf
        const auto want = brute_force(op, x, reduced, out_shape);
        expect_tensor(run(reduce_node(op, axes), {&x}, 11, 1), out_shape, want, 1e-5);
        expect_tensor(run(reduce_node(op, axes), {&x}, 11, 3), out_shape, want, 1e-5);
      }
    }
  }
}

// ---- InstanceNormalization -------------------------------------------------------

TEST(InstanceNormalization, PerSampleAndChannel) {
  // X [2, 2, 2]: (n0,c0) = [1, 3] -> mean 2, var 1; (n0,c1) = [2, 2] -> var 0;
  // (n1,c0) = [0, 4] -> mean 2, var 4; (n1,c1) = [-1, 1] -> var 1. eps 0 where var > 0.
  Tensor x = Tensor::from_f32({2, 2, 2}, {1, 3, 2, 2, 0, 4, -1, 1});
  Tensor scale = Tensor::from_f32({2}, {2, 3});
  Tensor b = Tensor::from_f32({2}, {1, -1});
  Node n = make_node("InstanceNormalization");
  n.attrs.set("epsilon", 0.f);
  auto y = run(n, {&x, &scale, &b}, 13, 2);
  // (n0,c1) has var 0 and eps 0: 0/0.
  EXPECT_FLOAT_EQ(y.f32()[0], -1);
  EXPECT_FLOAT_EQ(y.f32()[1], 3);
  EXPECT_TRUE(std::isnan(y.f32()[2]));
  expect_tensor(Tensor::from_f32({4}, {y.f32()[4], y.f32()[5], y.f32()[6], y.f32()[7]}), {4}, {-1, 3, -4, 2});
  // Default epsilon 1e-5: var 1 -> (x - mean) / sqrt(1 + 1e-5).
  Tensor x1 = Tensor::from_f32({1, 1, 2}, {1, 3});
  Tensor one = Tensor::from_f32({1}, {1});
  Tensor zero = Tensor::from_f32({1}, {0});
  const double k = 1 / std::sqrt(1 + 1e-5);
  expect_tensor(run(make_node("InstanceNormalization"), {&x1, &one, &zero}), {1, 1, 2}, {-k, k});
}

TEST(InstanceNormalization, Errors) {
  Tensor x = Tensor::from_f32({1, 2, 2}, {1, 2, 3, 4});
  Tensor s2 = Tensor::from_f32({2}, {1, 1});
  Tensor s3 = Tensor::from_f32({3}, {1, 1, 1});
  Node n = make_node("InstanceNormalization");
  expect_error(n, {&x, &s3, &s2}, ErrorKind::InvalidModel);
  expect_error(n, {&x, &s2}, ErrorKind::InvalidModel);
  Tensor xi = Tensor::from_i64({1, 2, 1}, {1, 2});
  expect_error(n, {&xi, &s2, &s2}, ErrorKind::Unsupported);
}

// ---- LayerNormalization ----------------------------------------------------------

TEST(LayerNormalization, LastAxisWithStatistics) {
  // X [2, 2] = [[1, 3], [2, 6]]: rows mean 2 and 4, var 1 and 4 (eps 0).
  Tensor x = Tensor::from_f32({2, 2}, {1, 3, 2, 6});
  Tensor scale = Tensor::from_f32({2}, {1, 2});
  Tensor b = Tensor::from_f32({2}, {0, 1});
  Node n = make_node("LayerNormalization");
  n.attrs.set("epsilon", 0.f);
  n.outputs = {0, 1, 2};
  auto outs = run_all(n, {&x, &scale, &b}, 17, 2);
  ASSERT_EQ(outs.size(), 3u);
  expect_tensor(outs[0], {2, 2}, {-1, 3, -1, 3});
  expect_tensor(outs[1], {2, 1}, {2, 4});
  expect_tensor(outs[2], {2, 1}, {1, 0.5});
  // Without B, at opset 13, Y only.
  Node y_only = make_node("LayerNormalization");
  y_only.attrs.set("epsilon", 0.f);
  auto ys = run_all(y_only, {&x, &scale}, 13);
  ASSERT_EQ(ys.size(), 1u);
  expect_tensor(ys[0], {2, 2}, {-1, 2, -1, 2});
}

TEST(LayerNormalization, AxisAndBroadcastScale) {
  // X [2, 2, 2], axis 1: each sample normalised over its 4 values.
  // n0 = [0, 1, 2, 3]: mean 1.5, var 1.25; n1 = [4, 4, 4, 8]: mean 5, var 3.
  Tensor x = Tensor::from_f32({2, 2, 2}, {0, 1, 2, 3, 4, 4, 4, 8});
  Tensor scale = Tensor::from_f32({2, 1}, {1, 10});  // broadcast over the last dim
  Tensor b = Tensor::from_f32({2}, {0, 100});         // broadcast over dim 1
  Node n = make_node("LayerNormalization");
  n.attrs.set("axis", std::int64_t{-2});
  n.attrs.set("epsilon", 0.f);
  n.outputs = {0, kNoValue, 2};
  auto outs = run_all(n, {&x, &scale, &b}, 17);
  const double a = 1 / std::sqrt(1.25), c = 1 / std::sqrt(3.0);
  expect_tensor(outs[0], {2, 2, 2},
                {-1.5 * a, -0.5 * a + 100, 10 * 0.5 * a, 10 * 1.5 * a + 100, -c, -c + 100, -10 * c, 10 * 3 * c + 100},
                1e-5);
  expect_tensor(outs[2], {2, 1, 1}, {a, c}, 1e-5);
  // axis 0 normalises everything: one row.
  n.attrs.set("axis", std::int64_t{0});
  Tensor s8 = Tensor::from_f32({1}, {1});
  outs = run_all(n, {&x, &s8}, 17);
  expect_tensor(outs[2], {1, 1, 1}, {1 / std::sqrt(5.1875)}, 1e-5);  // mean 3.25, var 5.1875
}

TEST(LayerNormalization, Errors) {
  Tensor x = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor s2 = Tensor::from_f32({2}, {1, 1});
  Tensor s3 = Tensor::from_f32({3}, {1, 1, 1});
  Node n = make_node("LayerNormalization");
  expect_error(n, {&x, &s2}, ErrorKind::InvalidModel);  // Scale does not broadcast to [3]
  expect_error(n, {&x}, ErrorKind::InvalidModel);
  n.attrs.set("axis", std::int64_t{2});
  expect_error(n, {&x, &s3}, ErrorKind::InvalidModel);
  Node stash = make_node("LayerNormalization");
  stash.attrs.set("stash_type", std::int64_t{16});
  stash.outputs = {0, 1};
  expect_error(stash, {&x, &s3}, ErrorKind::Unsupported, 17);
  stash.outputs = {0};
  EXPECT_EQ(run(stash, {&x, &s3}, 17).shape(), (Shape{2, 3}));
  Node four = make_node("LayerNormalization");
  four.outputs = {0, 1, 2, 3};
  expect_error(four, {&x, &s3}, ErrorKind::InvalidModel, 17);
}

// ---- LRN ---------------------------------------------------------------------------

TEST(LRN, ChannelWindow) {
  // X [1, 4, 1, 1] = [1, 2, 3, 4], size 3 (window c-1..c+1), alpha 3 (alpha/size 1), beta 1, bias 1:
  // y_c = x_c / (1 + sum of squares in the window).
  Tensor x = Tensor::from_f32({1, 4, 1, 1}, {1, 2, 3, 4});
  Node n = make_node("LRN");
  n.attrs.set("size", std::int64_t{3});
  n.attrs.set("alpha", 3.f);
  n.attrs.set("beta", 1.f);
  expect_tensor(run(n, {&x}, 13, 2), {1, 4, 1, 1}, {1.0 / 6, 2.0 / 15, 3.0 / 30, 4.0 / 26});
  // size 2: window [c, c+1] (floor(1/2) = 0 before, ceil(1/2) = 1 after); alpha 2.
  n.attrs.set("size", std::int64_t{2});
  n.attrs.set("alpha", 2.f);
  expect_tensor(run(n, {&x}), {1, 4, 1, 1}, {1.0 / 6, 2.0 / 14, 3.0 / 26, 4.0 / 17});
}

TEST(LRN, DefaultsAndSpatial) {
  // Defaults alpha 1e-4, beta 0.75, bias 1; size 1: y = x / (1 + 1e-4 x^2)^0.75.
  Tensor x = Tensor::from_f32({1, 1, 1, 2}, {10, -20});
  Node n = make_node("LRN");
  n.attrs.set("size", std::int64_t{1});
  expect_tensor(run(n, {&x}), {1, 1, 1, 2}, {10 / std::pow(1.01, 0.75), -20 / std::pow(1.04, 0.75)});
  expect_error(make_node("LRN"), {&x}, ErrorKind::InvalidModel);  // size is required
}

}  // namespace
}  // namespace vkfuse::graph
