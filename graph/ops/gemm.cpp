// graph/ops/gemm.cpp — Gemm, MatMul and Einsum: shape inference and naive reference
// kernels.
//
// Gemm: Y = alpha * op(A) @ op(B) + beta * C, with A and B 2-D, op() an
// optional transpose, and C optional and unidirectionally broadcastable to
// [M, N]. MatMul: numpy semantics — 1-D operands are promoted (a leading 1 on
// A, a trailing 1 on B) and dropped from the result; batch dims broadcast.
// Einsum: any equation (explicit or implicit output, ellipses, repeated labels
// for diagonals), float32, by brute force over every label's values.
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

// ---- Einsum -----------------------------------------------------------------

// An Einsum equation resolved against its operands' shapes: per operand and
// dimension its label, the output's labels, and each label's extent. Letters
// are labels 0–51; the dimensions an ellipsis stands for are labels 52 and
// up, right-aligned across the operands (numpy broadcasting: an extent of 1
// stretches).
struct EinsumPlan {
  std::vector<std::vector<int>> operand_labels;
  std::vector<int> out_labels;
  std::vector<std::int64_t> extent;  // per label; -1: unused
};

constexpr int kEllipsisLabel = 52;

EinsumPlan einsum_plan(const Node& node, std::span<const Shape> shapes) {
  std::string eq;
  for (char c : node.attrs.get_string("equation", "")) {
    if (c != ' ') eq.push_back(c);
  }
  if (eq.empty()) fail_node(node, "has no 'equation' attribute");
  const auto arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  // A term's letters (as labels) and where its ellipsis is (-1: none).
  struct Term {
    std::vector<int> letters;
    int ellipsis_at = -1;
  };
  auto parse_term = [&](const std::string& t) {
    Term term;
    for (std::size_t i = 0; i < t.size(); ++i) {
      const char c = t[i];
      if (c == '.') {
        if (t.compare(i, 3, "...") != 0 || term.ellipsis_at >= 0)
          fail_node(node, "equation '" + eq + "': a stray '.' or two ellipses in one term");
        term.ellipsis_at = static_cast<int>(term.letters.size());
        i += 2;
      } else if (c >= 'a' && c <= 'z') {
        term.letters.push_back(c - 'a');
      } else if (c >= 'A' && c <= 'Z') {
        term.letters.push_back(26 + (c - 'A'));
      } else {
        fail_node(node, "equation '" + eq + "': '" + std::string(1, c) + "' is not a label (a-z, A-Z or ...)");
      }
    }
    return term;
  };
  std::vector<Term> terms;
  for (std::size_t start = 0;;) {
    const auto comma = lhs.find(',', start);
    terms.push_back(parse_term(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != shapes.size())
    fail_node(node, "equation '" + eq + "' has " + std::to_string(terms.size()) + " operand terms for " +
                        std::to_string(shapes.size()) + " inputs");
  // The ellipsis' dimensions per operand, and the most of any.
  std::vector<int> ell_rank(terms.size(), 0);
  int ell = 0;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const auto rank = static_cast<int>(shapes[i].size()), letters = static_cast<int>(terms[i].letters.size());
    if (terms[i].ellipsis_at < 0 ? letters != rank : letters > rank)
      fail_node(node, "equation '" + eq + "': term " + std::to_string(i) + " has " + std::to_string(letters) +
                          " labels for an input of rank " + std::to_string(rank));
    if (terms[i].ellipsis_at >= 0) ell_rank[i] = rank - letters;
    ell = std::max(ell, ell_rank[i]);
  }
  EinsumPlan plan;
  plan.extent.assign(static_cast<std::size_t>(kEllipsisLabel + ell), -1);
  std::vector<int> count(plan.extent.size(), 0);
  for (std::size_t i = 0; i < terms.size(); ++i) {
    std::vector<int> labels;
    for (std::size_t k = 0; k <= terms[i].letters.size(); ++k) {
      if (static_cast<int>(k) == terms[i].ellipsis_at)
        for (int e = 0; e < ell_rank[i]; ++e) labels.push_back(kEllipsisLabel + ell - ell_rank[i] + e);
      if (k < terms[i].letters.size()) labels.push_back(terms[i].letters[k]);
    }
    for (std::size_t d = 0; d < labels.size(); ++d) {
      const auto l = static_cast<std::size_t>(labels[d]);
      const std::int64_t n = shapes[i][d];
      ++count[l];
      std::int64_t& x = plan.extent[l];
      if (x < 0 || x == n) {
        x = n;
      } else if (labels[d] >= kEllipsisLabel && (x == 1 || n == 1)) {
        x = std::max(x, n);
      } else {
        fail_node(node, "equation '" + eq + "': a label's dimensions differ (" + std::to_string(x) + " and " +
                            std::to_string(n) + ")");
      }
    }
    plan.operand_labels.push_back(std::move(labels));
  }
  if (arrow == std::string::npos) {
    // Implicit output: the ellipsis' dimensions, then the letters that occur
    // once, in alphabetical order.
    for (int e = 0; e < ell; ++e) plan.out_labels.push_back(kEllipsisLabel + e);
    std::vector<int> once;
    for (int l = 0; l < kEllipsisLabel; ++l)
      if (count[static_cast<std::size_t>(l)] == 1) once.push_back(l);
    // ASCII order: upper case (labels 26–51) before lower case.
    std::stable_partition(once.begin(), once.end(), [](int l) { return l >= 26; });
    plan.out_labels.insert(plan.out_labels.end(), once.begin(), once.end());
  } else {
    const Term out = parse_term(eq.substr(arrow + 2));
    for (std::size_t k = 0; k <= out.letters.size(); ++k) {
      if (static_cast<int>(k) == out.ellipsis_at)
        for (int e = 0; e < ell; ++e) plan.out_labels.push_back(kEllipsisLabel + e);
      if (k < out.letters.size()) plan.out_labels.push_back(out.letters[k]);
    }
    std::vector<char> seen(plan.extent.size(), 0);
    for (int l : plan.out_labels) {
      if (count[static_cast<std::size_t>(l)] == 0 || seen[static_cast<std::size_t>(l)]++)
        fail_node(node, "equation '" + eq + "': an output label occurs twice or in no input");
    }
  }
  return plan;
}

std::vector<OutputInfo> infer_einsum(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.empty()) fail_node(node, "Einsum takes at least one input");
  std::vector<Shape> shapes;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (!in[i].present) fail_node(node, "an Einsum input is missing");
    require_f32(node, in, i, "an input");
    shapes.push_back(in[i].shape);
  }
  const EinsumPlan plan = einsum_plan(node, shapes);
  Shape out;
  for (int l : plan.out_labels) out.push_back(plan.extent[static_cast<std::size_t>(l)]);
  return {OutputInfo{DType::f32, out}};
}

// Every combination of the labels' values, one after another (an odometer
// over the used labels); each adds the product of the operands' elements
// there to the output element there, in double.
void eval_einsum(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Node& node = ctx.node;
  std::vector<Shape> shapes;
  for (const Tensor* t : in) shapes.push_back(t->shape());
  const EinsumPlan plan = einsum_plan(node, shapes);
  std::vector<int> used;
  for (std::size_t l = 0; l < plan.extent.size(); ++l)
    if (plan.extent[l] >= 0) used.push_back(static_cast<int>(l));
  // Per operand (and the output, last) the stride of each used label: the sum
  // over its dimensions with that label (a repeated label walks a diagonal),
  // 0 where a dimension of 1 is broadcast.
  const std::size_t ops = in.size();
  std::vector<std::vector<std::int64_t>> stride(ops + 1, std::vector<std::int64_t>(plan.extent.size(), 0));
  for (std::size_t i = 0; i < ops; ++i) {
    const auto rm = row_major_strides(shapes[i]);
    for (std::size_t d = 0; d < plan.operand_labels[i].size(); ++d)
      if (shapes[i][d] != 1) stride[i][static_cast<std::size_t>(plan.operand_labels[i][d])] += rm[d];
  }
  Shape out_shape;
  for (int l : plan.out_labels) out_shape.push_back(plan.extent[static_cast<std::size_t>(l)]);
  const auto out_rm = row_major_strides(out_shape);
  for (std::size_t d = 0; d < plan.out_labels.size(); ++d)
    stride[ops][static_cast<std::size_t>(plan.out_labels[d])] = out_rm[d];

  Tensor& y = out[0];
  std::vector<double> acc(static_cast<std::size_t>(y.numel()), 0.0);
  bool empty = false;
  for (int l : used) empty = empty || plan.extent[static_cast<std::size_t>(l)] == 0;
  if (!empty) {
    std::vector<std::int64_t> idx(used.size(), 0), at(ops + 1, 0);
    for (;;) {
      double p = 1.0;
      for (std::size_t i = 0; i < ops; ++i) p *= static_cast<double>(in[i]->f32()[at[i]]);
      acc[static_cast<std::size_t>(at[ops])] += p;
      std::size_t k = used.size();
      for (; k-- > 0;) {
        const auto l = static_cast<std::size_t>(used[k]);
        ++idx[k];
        for (std::size_t i = 0; i <= ops; ++i) at[i] += stride[i][l];
        if (idx[k] < plan.extent[l]) break;
        for (std::size_t i = 0; i <= ops; ++i) at[i] -= stride[i][l] * idx[k];
        idx[k] = 0;
      }
      if (k == static_cast<std::size_t>(-1)) break;  // every label wrapped around: done
    }
  }
  for (std::size_t i = 0; i < acc.size(); ++i) y.f32()[i] = static_cast<float>(acc[i]);
  apply_activation(node, y);
}

}  // namespace

void register_gemm_ops(std::vector<OpDef>& table) {
  table.push_back(OpDef{"Gemm", infer_gemm, eval_gemm});
  table.push_back(OpDef{"MatMul", infer_matmul, eval_matmul});
  table.push_back(OpDef{"Einsum", infer_einsum, eval_einsum});
}

}  // namespace vkfuse::graph
