// tests/graph/test_ops_norm_gemm.cpp — the reference BatchNormalization,
// Softmax, Gemm and MatMul kernels on small hand-computed cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {
namespace {

Node make_node(const std::string& op) {
  Node n;
  n.name = "n0";
  n.op_type = op;
  return n;
}

Tensor run(const Node& n, std::vector<const Tensor*> inputs, std::int64_t opset = 13, int threads = 1) {
  auto outs = evaluate_node(OpContext{n, opset, threads}, inputs);
  EXPECT_GE(outs.size(), 1u);
  return std::move(outs.at(0));
}

void expect_tensor(const Tensor& t, const Shape& shape, const std::vector<double>& values, double tol = 1e-6) {
  ASSERT_EQ(t.shape(), shape) << "got " << shape_string(t.shape());
  ASSERT_EQ(t.numel(), static_cast<std::int64_t>(values.size()));
  for (std::size_t i = 0; i < values.size(); ++i)
    EXPECT_NEAR(t.f32()[i], values[i], tol * std::max(1.0, std::abs(values[i]))) << "at flat index " << i;
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

// ---- BatchNormalization -----------------------------------------------------

TEST(BatchNormalization, PerChannelAffine) {
  // X [1,2,1,2]: ch0 = [1,3], ch1 = [2,4]; eps 0.
  // ch0: (x-2)/sqrt(4)*2+1 -> 0, 2 ; ch1: (x-3)/sqrt(0.25)*0.5-1 -> -2, 0
  Tensor x = Tensor::from_f32({1, 2, 1, 2}, {1, 3, 2, 4});
  Tensor scale = Tensor::from_f32({2}, {2, 0.5f});
  Tensor b = Tensor::from_f32({2}, {1, -1});
  Tensor mean = Tensor::from_f32({2}, {2, 3});
  Tensor var = Tensor::from_f32({2}, {4, 0.25f});
  Node n = make_node("BatchNormalization");
  n.attrs.set("epsilon", 0.f);
  expect_tensor(run(n, {&x, &scale, &b, &mean, &var}, 13, 2), {1, 2, 1, 2}, {0, 2, -2, 0});
  n.activation.kind = Activation::Kind::Relu;
  expect_tensor(run(n, {&x, &scale, &b, &mean, &var}), {1, 2, 1, 2}, {0, 2, 0, 0});
}

TEST(BatchNormalization, EpsilonAndRank2) {
  // X [2,2] = [[1,2],[3,4]], mean 1, var 3, eps 1 -> (x-1)/2
  Tensor x = Tensor::from_f32({2, 2}, {1, 2, 3, 4});
  Tensor one = Tensor::from_f32({2}, {1, 1});
  Tensor zero = Tensor::from_f32({2}, {0, 0});
  Tensor var = Tensor::from_f32({2}, {3, 3});
  Node n = make_node("BatchNormalization");
  n.attrs.set("epsilon", 1.f);
  expect_tensor(run(n, {&x, &one, &zero, &one, &var}), {2, 2}, {0, 0.5, 1, 1.5});
  // default epsilon 1e-5: var 0 -> x / sqrt(1e-5)
  Tensor v0 = Tensor::from_f32({2}, {0, 0});
  Node d = make_node("BatchNormalization");
  expect_tensor(run(d, {&x, &one, &zero, &zero, &v0}), {2, 2},
                {1 / std::sqrt(1e-5), 2 / std::sqrt(1e-5), 3 / std::sqrt(1e-5), 4 / std::sqrt(1e-5)}, 1e-5);
}

TEST(BatchNormalization, Errors) {
  Tensor x = Tensor::from_f32({1, 2, 1, 1}, {1, 2});
  Tensor c2 = Tensor::from_f32({2}, {1, 1});
  Tensor c3 = Tensor::from_f32({3}, {1, 1, 1});
  Node n = make_node("BatchNormalization");
  expect_error(n, {&x, &c3, &c2, &c2, &c2}, ErrorKind::InvalidModel);  // scale has 3 channels, X has 2
  expect_error(n, {&x, &c2, &c2, &c2}, ErrorKind::InvalidModel);       // var missing
  Node t = make_node("BatchNormalization");
  t.attrs.set("training_mode", std::int64_t{1});
  expect_error(t, {&x, &c2, &c2, &c2, &c2}, ErrorKind::Unsupported);
  Node o = make_node("BatchNormalization");
  o.outputs = {1, 2, 3};  // running mean/var requested
  expect_error(o, {&x, &c2, &c2, &c2, &c2}, ErrorKind::Unsupported);
  Tensor xi = Tensor::from_i64({1, 2}, {1, 2});
  expect_error(n, {&xi, &c2, &c2, &c2, &c2}, ErrorKind::Unsupported);
}

// ---- Softmax ----------------------------------------------------------------

TEST(Softmax, Opset13DefaultLastAxis) {
  // rows [0,0,0] -> 1/3 each; [1,2,3] -> e^k / (e + e^2 + e^3)
  Tensor x = Tensor::from_f32({2, 3}, {0, 0, 0, 1, 2, 3});
  const double s = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  Node n = make_node("Softmax");
  expect_tensor(run(n, {&x}), {2, 3},
                {1.0 / 3, 1.0 / 3, 1.0 / 3, std::exp(1.0) / s, std::exp(2.0) / s, std::exp(3.0) / s});
}

TEST(Softmax, Opset13Axis0) {
  // columns: [0,0] -> 0.5, 0.5 ; [1,3] -> e/(e+e^3), e^3/(e+e^3)
  Tensor x = Tensor::from_f32({2, 2}, {0, 1, 0, 3});
  const double s = std::exp(1.0) + std::exp(3.0);
  Node n = make_node("Softmax");
  n.attrs.set("axis", std::int64_t{0});
  expect_tensor(run(n, {&x}), {2, 2}, {0.5, std::exp(1.0) / s, 0.5, std::exp(3.0) / s});
}

TEST(Softmax, LegacyCoercionVersusSingleAxis) {
  // x = log([1,2,3,4]) shaped [1,2,2], so softmax is the normalised [1,2,3,4].
  Tensor x = Tensor::from_f32({1, 2, 2}, {0, std::log(2.f), std::log(3.f), std::log(4.f)});
  Node n = make_node("Softmax");
  // opset 11, default axis 1: coerced to [1, 4] -> [1,2,3,4]/10.
  expect_tensor(run(n, {&x}, 11), {1, 2, 2}, {0.1, 0.2, 0.3, 0.4});
  // opset 13, axis 1: along dim 1 only: pairs (1,3) and (2,4) -> 1/4, 3/4 and 2/6, 4/6.
  n.attrs.set("axis", std::int64_t{1});
  expect_tensor(run(n, {&x}, 13), {1, 2, 2}, {0.25, 1.0 / 3, 0.75, 2.0 / 3});
  // opset 13 default axis (-1): pairs (1,2) and (3,4).
  Node d = make_node("Softmax");
  expect_tensor(run(d, {&x}, 13), {1, 2, 2}, {1.0 / 3, 2.0 / 3, 3.0 / 7, 4.0 / 7});
  // opset 11, axis -1 (= 2): coerced to [2, 2], the same pairs.
  Node l = make_node("Softmax");
  l.attrs.set("axis", std::int64_t{-1});
  expect_tensor(run(l, {&x}, 11), {1, 2, 2}, {1.0 / 3, 2.0 / 3, 3.0 / 7, 4.0 / 7});
  // opset 11, axis 0: everything in one group.
  Node z = make_node("Softmax");
  z.attrs.set("axis", std::int64_t{0});
  expect_tensor(run(z, {&x}, 11), {1, 2, 2}, {0.1, 0.2, 0.3, 0.4});
}

TEST(Softmax, LargeValuesAreStable) {
  Tensor x = Tensor::from_f32({1, 2}, {1000, 1001});
  Node n = make_node("Softmax");
  const double e = std::exp(1.0);
  expect_tensor(run(n, {&x}), {1, 2}, {1 / (1 + e), e / (1 + e)});
}

TEST(Softmax, Errors) {
  Tensor x = Tensor::from_f32({2, 2}, {0, 0, 0, 0});
  Node n = make_node("Softmax");
  n.attrs.set("axis", std::int64_t{2});
  expect_error(n, {&x}, ErrorKind::InvalidModel);
  n.attrs.set("axis", std::int64_t{-3});
  expect_error(n, {&x}, ErrorKind::InvalidModel, 11);
  Tensor xi = Tensor::from_i64({2}, {1, 2});
  expect_error(make_node("Softmax"), {&xi}, ErrorKind::Unsupported);
}

// ---- Gemm -------------------------------------------------------------------

// A = [[1,2,3],[4,5,6]], B = [[1,0],[0,1],[1,1]]  ->  A @ B = [[4,5],[10,11]]
Tensor gemm_a() { return Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6}); }
Tensor gemm_b() { return Tensor::from_f32({3, 2}, {1, 0, 0, 1, 1, 1}); }

TEST(Gemm, PlainAndTransposed) {
  Tensor a = gemm_a(), b = gemm_b();
  Tensor at = Tensor::from_f32({3, 2}, {1, 4, 2, 5, 3, 6});  // A^T
  Tensor bt = Tensor::from_f32({2, 3}, {1, 0, 1, 0, 1, 1});  // B^T
  Node n = make_node("Gemm");
  expect_tensor(run(n, {&a, &b}), {2, 2}, {4, 5, 10, 11});
  Node ta = make_node("Gemm");
  ta.attrs.set("transA", std::int64_t{1});
  expect_tensor(run(ta, {&at, &b}), {2, 2}, {4, 5, 10, 11});
  Node tb = make_node("Gemm");
  tb.attrs.set("transB", std::int64_t{1});
  expect_tensor(run(tb, {&a, &bt}), {2, 2}, {4, 5, 10, 11});
  Node both = make_node("Gemm");
  both.attrs.set("transA", std::int64_t{1});
  both.attrs.set("transB", std::int64_t{1});
  expect_tensor(run(both, {&at, &bt}, 13, 2), {2, 2}, {4, 5, 10, 11});
}

TEST(Gemm, AlphaBetaAndBroadcastC) {
  // Y = 2 * [[4,5],[10,11]] + 0.5 * C = [[8,10],[20,22]] + 0.5 C
  Tensor a = gemm_a(), b = gemm_b();
  Node n = make_node("Gemm");
  n.attrs.set("alpha", 2.f);
  n.attrs.set("beta", 0.5f);
  Tensor row = Tensor::from_f32({2}, {10, 20});  // +[5,10] on each row
  expect_tensor(run(n, {&a, &b, &row}), {2, 2}, {13, 20, 25, 32});
  Tensor col = Tensor::from_f32({2, 1}, {10, 20});  // +5 on row 0, +10 on row 1
  expect_tensor(run(n, {&a, &b, &col}), {2, 2}, {13, 15, 30, 32});
  Tensor scalar = Tensor::scalar_f32(4);  // +2 everywhere
  expect_tensor(run(n, {&a, &b, &scalar}), {2, 2}, {10, 12, 22, 24});
  Tensor one = Tensor::from_f32({1, 1}, {4});
  expect_tensor(run(n, {&a, &b, &one}), {2, 2}, {10, 12, 22, 24});
  Tensor full = Tensor::from_f32({2, 2}, {1, 2, 3, 4});  // +[0.5,1,1.5,2]
  expect_tensor(run(n, {&a, &b, &full}), {2, 2}, {8.5, 11, 21.5, 24});
  expect_tensor(run(n, {&a, &b, nullptr}), {2, 2}, {8, 10, 20, 22});  // C omitted
  expect_tensor(run(n, {&a, &b}), {2, 2}, {8, 10, 20, 22});
}

TEST(Gemm, FusedRelu) {
  // -A@B + [5,100] = [[1,95],[-5,89]] -> relu [[1,95],[0,89]]
  Tensor a = gemm_a(), b = gemm_b();
  Tensor c = Tensor::from_f32({2}, {5, 100});
  Node n = make_node("Gemm");
  n.attrs.set("alpha", -1.f);
  n.activation.kind = Activation::Kind::Relu;
  expect_tensor(run(n, {&a, &b, &c}), {2, 2}, {1, 95, 0, 89});
}

TEST(Gemm, Errors) {
  Tensor a = gemm_a();
  Tensor b22 = Tensor::from_f32({2, 2}, {1, 2, 3, 4});
  expect_error(make_node("Gemm"), {&a, &b22}, ErrorKind::InvalidModel);  // K: 3 vs 2
  Tensor b = gemm_b();
  Tensor c3 = Tensor::from_f32({3}, {1, 2, 3});
  expect_error(make_node("Gemm"), {&a, &b, &c3}, ErrorKind::InvalidModel);  // C not broadcastable
  Tensor a3 = Tensor::from_f32({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  expect_error(make_node("Gemm"), {&a3, &b}, ErrorKind::InvalidModel);  // A not 2-D
  Tensor ai = Tensor::from_i64({2, 3}, {1, 2, 3, 4, 5, 6});
  expect_error(make_node("Gemm"), {&ai, &b}, ErrorKind::Unsupported);
}

// ---- MatMul -----------------------------------------------------------------

TEST(MatMul, TwoD) {
  Tensor a = gemm_a(), b = gemm_b();
  expect_tensor(run(make_node("MatMul"), {&a, &b}), {2, 2}, {4, 5, 10, 11});
}

TEST(MatMul, BatchedWithBroadcastB) {
  // batch 0: [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]]
  // batch 1: [[0,1],[1,0]] @ [[5,6],[7,8]] = [[7,8],[5,6]]
  Tensor a = Tensor::from_f32({2, 2, 2}, {1, 2, 3, 4, 0, 1, 1, 0});
  Tensor b = Tensor::from_f32({2, 2}, {5, 6, 7, 8});
  expect_tensor(run(make_node("MatMul"), {&a, &b}, 13, 3), {2, 2, 2}, {19, 22, 43, 50, 7, 8, 5, 6});
  // And B batched the other way round: [[5,6],[7,8]] @ each of A's matrices.
  // [[5,6],[7,8]] @ [[1,2],[3,4]] = [[23,34],[31,46]]; @ [[0,1],[1,0]] = [[6,5],[8,7]]
  expect_tensor(run(make_node("MatMul"), {&b, &a}), {2, 2, 2}, {23, 34, 31, 46, 6, 5, 8, 7});
}

TEST(MatMul, BatchedBothSides) {
  // [1,2]@[1,1]^T = 3 ; [3,4]@[2,-1]^T = 2
  Tensor a = Tensor::from_f32({2, 1, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::from_f32({2, 2, 1}, {1, 1, 2, -1});
  expect_tensor(run(make_node("MatMul"), {&a, &b}), {2, 1, 1}, {3, 2});
}

TEST(MatMul, BatchDimsBroadcastAgainstEachOther) {
  // A [2,1,1,2]: rows [1,2], [3,4]; B [1,3,2,1]: columns [1,0], [0,1], [1,1]
  // Y [2,3,1,1][a][b] = A[a] . B[b] = [[1,2,3],[3,4,7]]
  Tensor a = Tensor::from_f32({2, 1, 1, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::from_f32({1, 3, 2, 1}, {1, 0, 0, 1, 1, 1});
  expect_tensor(run(make_node("MatMul"), {&a, &b}, 13, 2), {2, 3, 1, 1}, {1, 2, 3, 3, 4, 7});
}

TEST(MatMul, OneDimensionalOperands) {
  Tensor v3 = Tensor::from_f32({3}, {1, 2, 3});
  Tensor b = gemm_b();  // [[1,0],[0,1],[1,1]]
  // [1,2,3] @ B = [1+3, 2+3]
  expect_tensor(run(make_node("MatMul"), {&v3, &b}), {2}, {4, 5});
  // A @ [1,1,1] = row sums [6, 15]
  Tensor a = gemm_a();
  Tensor ones3 = Tensor::from_f32({3}, {1, 1, 1});
  expect_tensor(run(make_node("MatMul"), {&a, &ones3}), {2}, {6, 15});
  // dot product: [1,2,3] . [4,5,6] = 32, a scalar
  Tensor w3 = Tensor::from_f32({3}, {4, 5, 6});
  expect_tensor(run(make_node("MatMul"), {&v3, &w3}), {}, {32});
  // vector @ batched matrices: [1,-1] @ [[1,2,3],[4,5,6]] = [-3,-3,-3];
  //                            [1,-1] @ [[0,0,0],[1,1,1]] = [-1,-1,-1]
  Tensor v2 = Tensor::from_f32({2}, {1, -1});
  Tensor bb = Tensor::from_f32({2, 2, 3}, {1, 2, 3, 4, 5, 6, 0, 0, 0, 1, 1, 1});
  expect_tensor(run(make_node("MatMul"), {&v2, &bb}), {2, 3}, {-3, -3, -3, -1, -1, -1});
}

TEST(MatMul, Errors) {
  Tensor a = gemm_a();
  Tensor b22 = Tensor::from_f32({2, 2}, {1, 2, 3, 4});
  expect_error(make_node("MatMul"), {&a, &b22}, ErrorKind::InvalidModel);  // K: 3 vs 2
  Tensor x = Tensor::from_f32({2, 1, 2}, {1, 2, 3, 4});
  Tensor y = Tensor::from_f32({3, 2, 1}, {1, 2, 3, 4, 5, 6});
  expect_error(make_node("MatMul"), {&x, &y}, ErrorKind::InvalidModel);  // batch 2 vs 3
  Tensor s = Tensor::scalar_f32(1);
  expect_error(make_node("MatMul"), {&s, &a}, ErrorKind::InvalidModel);
  Tensor ai = Tensor::from_i64({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = gemm_b();
  expect_error(make_node("MatMul"), {&ai, &b}, ErrorKind::Unsupported);
}

// Einsum: expected values from numpy.einsum.
Node einsum(const std::string& equation) {
  Node n = make_node("Einsum");
  n.attrs.set("equation", equation);
  return n;
}

TEST(Einsum, ExplicitAndImplicitOutputs) {
  Tensor a = Tensor::from_f32({2, 3}, {-2, -1, 0, 1, 2, 3});
  Tensor b = Tensor::from_f32({3, 2}, {1, 0.5f, 2, -1, 0, 3});
  expect_tensor(run(einsum("ij,jk->ik"), {&a, &b}), {2, 2}, {-4, 0, 5, 7.5});
  expect_tensor(run(einsum("ij -> ji"), {&a}), {3, 2}, {-2, 1, -1, 2, 0, 3});
  expect_tensor(run(einsum("ji"), {&a}), {3, 2}, {-2, 1, -1, 2, 0, 3});  // implicit: labels sorted
  expect_tensor(run(einsum("ij->"), {&a}), {}, {3});
  Tensor a0 = Tensor::from_f32({3}, {-2, -1, 0}), a1 = Tensor::from_f32({3}, {1, 2, 3});
  expect_tensor(run(einsum("i,i"), {&a1, &a0}), {}, {-4});
  expect_tensor(run(einsum("bA,Ab"), {&b, &a}), {}, {3.5});  // upper-case labels; the trace of b·a
}

TEST(Einsum, DiagonalsBatchesAndEllipses) {
  std::vector<float> cv(18);
  for (std::size_t i = 0; i < cv.size(); ++i) cv[i] = 0.5f * static_cast<float>(i);
  Tensor c = Tensor::from_f32({2, 3, 3}, cv);
  Tensor c0 = Tensor::from_f32({3, 3}, std::vector<float>(cv.begin(), cv.begin() + 9));
  expect_tensor(run(einsum("ii"), {&c0}), {}, {6});  // trace
  expect_tensor(run(einsum("...ii->...i"), {&c}), {2, 3}, {0, 2, 4, 4.5, 6.5, 8.5});
  expect_tensor(run(einsum("bij,bjk->bik"), {&c, &c}), {2, 3, 3},
                {3.75, 4.5, 5.25, 10.5, 13.5, 16.5, 17.25, 22.5, 27.75, 91.5, 99, 106.5, 118.5, 128.25, 138, 145.5,
                 157.5, 169.5});
  Tensor d = Tensor::from_f32({2, 1, 3}, {0, 1, 2, 3, 4, 5});
  Tensor e = Tensor::from_f32({4, 3}, {-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6});
  expect_tensor(run(einsum("...j,kj->...k"), {&d, &e}), {2, 1, 4}, {-10, -1, 8, 17, -46, -10, 26, 62});
  // The ellipsis broadcasts: [2, 3] against [1, 3].
  Tensor a = Tensor::from_f32({2, 3}, {-2, -1, 0, 1, 2, 3});
  Tensor r = Tensor::from_f32({1, 3}, {-2, -1, 0});
  expect_tensor(run(einsum("...i,...i->...i"), {&a, &r}), {2, 3}, {4, 1, 0, -2, -2, 0});
}

TEST(Einsum, Errors) {
  Tensor a = Tensor::from_f32({2, 3}, {-2, -1, 0, 1, 2, 3});
  Tensor b = Tensor::from_f32({2, 2}, {1, 2, 3, 4});
  expect_error(einsum("ij,jk->ik"), {&a, &b}, ErrorKind::InvalidModel);  // j: 3 vs 2
  expect_error(einsum("ijk->i"), {&a}, ErrorKind::InvalidModel);         // rank
  expect_error(einsum("ij,jk->ik"), {&a}, ErrorKind::InvalidModel);      // two terms, one input
  expect_error(einsum("ij->iz"), {&a}, ErrorKind::InvalidModel);         // z in no input
  expect_error(einsum("ij->ii"), {&a}, ErrorKind::InvalidModel);         // repeated output label
  expect_error(einsum("i1->i"), {&a}, ErrorKind::InvalidModel);          // not a label
  expect_error(einsum(""), {&a}, ErrorKind::InvalidModel);
  Tensor ai = Tensor::from_i64({2, 3}, {1, 2, 3, 4, 5, 6});
  expect_error(einsum("ij->ji"), {&ai}, ErrorKind::Unsupported);
}

}  // namespace
}  // namespace vkfuse::graph
