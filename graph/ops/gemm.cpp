// graph/ops/gemm.cpp — Gemm and MatMul: shape inference and naive reference
// kernels.
//
// Gemm: Y = alpha * op(A) @ op(B) + beta * C, with A and B 2-D, op() an
// optional transpose, and C optional and unidirectionally broadcastable to
// [M, N]. MatMul: numpy semantics — 1-D operands are promoted (a leading 1 on
// A, a trailing 1 on B) and dropped from the result; batch dims broadcast.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {

void require_f32(const Node& node, std::span<const InputInfo> in, std::size_t i, const char* what) {
  if (in[i].dtype != DType::f32)
    unsupported_node(node, std::string(what) + " has dtype " + dtype_name(in[i].dtype) +
                               "; only float32 " + node.op_type + " is supported");
}

// ---- Gemm -------------------------------------------------------------------

struct GemmDims {
  std::int64_t M = 0, K = 0, N = 0;
};

GemmDims gemm_dims(const Node& node, const Shape& a, const Shape& b) {
  if (a.size() != 2) fail_node(node, "input A of shape " + shape_string(a) + " must be 2-D");
  if (b.size() != 2) fail_node(node, "input B of shape " + shape_string(b) + " must be 2-D");
  const bool ta = node.attrs.get_int("transA", 0) != 0, tb = node.attrs.get_int("transB", 0) != 0;
  GemmDims d;
  d.M = ta ? a[1] : a[0];
  d.K = ta ? a[0] : a[1];
  const std::int64_t kb = tb ? b[1] : b[0];
  d.N = tb ? b[0] : b[1];
  if (d.K != kb)
    fail_node(node, "inner dimensions do not match: A " + shape_string(a) + (ta ? " (transposed)" : "") + " and B " +
                        shape_string(b) + (tb ? " (transposed)" : "") + " give K=" + std::to_string(d.K) + " vs " +
                        std::to_string(kb));
  return d;
}

bool has_c(std::span<const InputInfo> in) { return in.size() > 2 && in[2].present; }

std::vector<OutputInfo> infer_gemm(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() < 2 || in.size() > 3 || !in[0].present || !in[1].present)
    fail_node(node, "Gemm takes inputs A, B and optional C, got " + std::to_string(in.size()) + " input(s)");
  require_f32(node, in, 0, "input A");
  require_f32(node, in, 1, "input B");
  const GemmDims d = gemm_dims(node, in[0].shape, in[1].shape);
  if (has_c(in)) {
    require_f32(node, in, 2, "input C");
    const Shape& c = in[2].shape;
    const Shape mn{d.M, d.N};
    bool ok = c.size() <= 2;
    for (std::size_t i = 0; ok && i < c.size(); ++i) {
      const std::int64_t target = mn[2 - c.size() + i];
      ok = c[i] == 1 || c[i] == target;
    }
    if (!ok)
      fail_node(node, "input C of shape " + shape_string(c) + " cannot be broadcast to the result " +
                          shape_string(mn));
  }
  return {OutputInfo{DType::f32, Shape{d.M, d.N}}};
}

void eval_gemm(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Node& node = ctx.node;
  const Tensor& A = *in[0];
  const Tensor& B = *in[1];
  const Tensor* C = in.size() > 2 ? in[2] : nullptr;
  Tensor& Y = out[0];
  const GemmDims d = gemm_dims(node, A.shape(), B.shape());
  const std::int64_t M = d.M, K = d.K, N = d.N;
  const bool ta = node.attrs.get_int("transA", 0) != 0, tb = node.attrs.get_int("transB", 0) != 0;
  const double alpha = node.attrs.get_float("alpha", 1.f), beta = node.attrs.get_float("beta", 1.f);

  // Row-major copies of op(A) [M, K] and op(B) [K, N], so the kernel below is
  // the plain i-k-j loop with a contiguous innermost axis.
  std::vector<float> a(static_cast<std::size_t>(M * K)), b(static_cast<std::size_t>(K * N));
  const float* ap = A.f32();
  const float* bp = B.f32();
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = 0; k < K; ++k) a[static_cast<std::size_t>(i * K + k)] = ta ? ap[k * M + i] : ap[i * K + k];
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t j = 0; j < N; ++j) b[static_cast<std::size_t>(k * N + j)] = tb ? bp[j * K + k] : bp[k * N + j];

  // Broadcast strides of C over [M, N] (0 along broadcast axes).
  std::int64_t c_si = 0, c_sj = 0;
  const float* cp = C ? C->f32() : nullptr;
  if (C) {
    const Shape& cs = C->shape();
    const std::int64_t cm = cs.size() == 2 ? cs[0] : 1;
    const std::int64_t cn = cs.empty() ? 1 : cs.back();
    c_si = cm == 1 ? 0 : cn;
    c_sj = cn == 1 ? 0 : 1;
  }
  float* y = Y.f32();
  parallel_for(ctx.threads, M, [&](std::int64_t i) {
    std::vector<double> acc(static_cast<std::size_t>(N), 0.0);
    for (std::int64_t k = 0; k < K; ++k) {
      const double av = a[static_cast<std::size_t>(i * K + k)];
      const float* brow = b.data() + k * N;
      for (std::int64_t j = 0; j < N; ++j) acc[static_cast<std::size_t>(j)] += av * static_cast<double>(brow[j]);
    }
    for (std::int64_t j = 0; j < N; ++j) {
      double v = alpha * acc[static_cast<std::size_t>(j)];
      if (cp) v += beta * static_cast<double>(cp[i * c_si + j * c_sj]);
      y[i * N + j] = static_cast<float>(v);
    }
  });
  apply_activation(node, Y);
}

// ---- MatMul -----------------------------------------------------------------

struct MatMulDims {
  Shape batch;             // broadcast batch dims of the result
  Shape a_batch, b_batch;  // each operand's batch dims, left-padded with 1s to batch.size()
  std::int64_t M = 1, K = 1, N = 1;
  Shape out;
};

MatMulDims matmul_dims(const Node& node, const Shape& a, const Shape& b) {
  if (a.empty() || b.empty())
    fail_node(node, "inputs must have rank >= 1, got " + shape_string(a) + " and " + shape_string(b));
  MatMulDims d;
  Shape a2 = a, b2 = b;
  if (a.size() == 1) a2.insert(a2.begin(), 1);
  if (b.size() == 1) b2.push_back(1);
  d.M = a2[a2.size() - 2];
  d.K = a2.back();
  d.N = b2.back();
  const std::int64_t kb = b2[b2.size() - 2];
  if (d.K != kb)
    fail_node(node, "inner dimensions do not match: A " + shape_string(a) + " and B " + shape_string(b) + " (" +
                        std::to_string(d.K) + " vs " + std::to_string(kb) + ")");
  Shape ab(a2.begin(), a2.end() - 2), bb(b2.begin(), b2.end() - 2);
  d.batch = broadcast_shapes(node, ab, bb);
  d.a_batch = Shape(d.batch.size() - ab.size(), 1);
  d.a_batch.insert(d.a_batch.end(), ab.begin(), ab.end());
  d.b_batch = Shape(d.batch.size() - bb.size(), 1);
  d.b_batch.insert(d.b_batch.end(), bb.begin(), bb.end());
  d.out = d.batch;
  if (a.size() != 1) d.out.push_back(d.M);
  if (b.size() != 1) d.out.push_back(d.N);
  return d;
}

std::vector<OutputInfo> infer_matmul(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() != 2 || !in[0].present || !in[1].present)
    fail_node(node, "MatMul takes exactly two inputs, got " + std::to_string(in.size()));
  require_f32(node, in, 0, "input A");
  require_f32(node, in, 1, "input B");
  return {OutputInfo{DType::f32, matmul_dims(node, in[0].shape, in[1].shape).out}};
}

void eval_matmul(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Node& node = ctx.node;
  const Tensor& A = *in[0];
  const Tensor& B = *in[1];
  Tensor& Y = out[0];
  const MatMulDims d = matmul_dims(node, A.shape(), B.shape());
  const std::int64_t M = d.M, K = d.K, N = d.N;
  const std::int64_t batches = element_count(d.batch);
  const std::size_t nb = d.batch.size();
  const float* ap = A.f32();
  const float* bp = B.f32();
  float* y = Y.f32();

  // Offset (in matrices) of batch index `bi` into an operand with batch dims `ob`.
  auto operand_matrix = [&](std::int64_t bi, const Shape& ob) {
    std::int64_t idx = 0, stride = 1;
    for (std::size_t r = nb; r-- > 0;) {
      const std::int64_t coord = bi % d.batch[r];
      bi /= d.batch[r];
      if (ob[r] != 1) idx += coord * stride;
      stride *= ob[r];
    }
    return idx;
  };

  parallel_for(ctx.threads, batches * M, [&](std::int64_t task) {
    const std::int64_t bi = task / M, i = task % M;
    const float* arow = ap + (operand_matrix(bi, d.a_batch) * M + i) * K;
    const float* bm = bp + operand_matrix(bi, d.b_batch) * K * N;
    std::vector<double> acc(static_cast<std::size_t>(N), 0.0);
    for (std::int64_t k = 0; k < K; ++k) {
      const double av = arow[k];
      const float* brow = bm + k * N;
      for (std::int64_t j = 0; j < N; ++j) acc[static_cast<std::size_t>(j)] += av * static_cast<double>(brow[j]);
    }
    float* yrow = y + (bi * M + i) * N;
    for (std::int64_t j = 0; j < N; ++j) yrow[j] = static_cast<float>(acc[static_cast<std::size_t>(j)]);
  });
  apply_activation(node, Y);
}

}  // namespace

void register_gemm_ops(std::vector<OpDef>& table) {
  table.push_back(OpDef{"Gemm", infer_gemm, eval_gemm});
  table.push_back(OpDef{"MatMul", infer_matmul, eval_matmul});
}

}  // namespace vkfuse::graph
