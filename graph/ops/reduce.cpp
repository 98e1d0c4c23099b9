// graph/ops/reduce.cpp — ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
// ReduceSumSquare, ReduceLogSum, ReduceLogSumExp: shape inference and naive reference kernels.
//
// Every op is one fold (an accumulator's init, step and finish) run by one
// generic routine, reduce_fold. float32 accumulates in double; int64 (Sum,
// Max, Min, Prod: shape arithmetic) accumulates exactly, wrapping on overflow.
//
// Axes: the `axes` attribute, except ReduceSum from opset 13 and every
// Reduce op from opset 18, where they are the optional input 1 and must be a
// constant; with them comes `noop_with_empty_axes` (no axes and noop = the
// input unchanged, no axes otherwise = all axes). Negative axes count from
// the end; duplicates are an error. `keepdims` (default 1) keeps reduced
// dims as 1. Reducing an empty set gives the fold's init finished (Sum 0,
// Prod 1, Max -inf, Min +inf, LogSum and LogSumExp -inf, Mean NaN).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {

// ---- The folds ----------------------------------------------------------------
// Each has Acc, init(), step(acc, x) and finish(acc, n) (n = elements reduced).

struct SumF {
  using Acc = double;
  static Acc init() { return 0.0; }
  static Acc step(Acc a, double x) { return a + x; }
  static double finish(Acc a, std::int64_t) { return a; }
};
struct MeanF : SumF {
  static double finish(Acc a, std::int64_t n) { return a / static_cast<double>(n); }  // n = 0: NaN
};
struct MaxF {
  using Acc = double;
  static Acc init() { return -std::numeric_limits<double>::infinity(); }
  static Acc step(Acc a, double x) { return (x > a || std::isnan(x)) ? x : a; }  // NaN propagates
  static double finish(Acc a, std::int64_t) { return a; }
};
struct MinF {
  using Acc = double;
  static Acc init() { return std::numeric_limits<double>::infinity(); }
  static Acc step(Acc a, double x) { return (x < a || std::isnan(x)) ? x : a; }
  static double finish(Acc a, std::int64_t) { return a; }
};
struct ProdF {
  using Acc = double;
  static Acc init() { return 1.0; }
  static Acc step(Acc a, double x) { return a * x; }
  static double finish(Acc a, std::int64_t) { return a; }
};
struct L1F : SumF {
  static Acc step(Acc a, double x) { return a + std::abs(x); }
};
struct SumSquareF : SumF {
  static Acc step(Acc a, double x) { return a + x * x; }
};
struct L2F : SumSquareF {
  static double finish(Acc a, std::int64_t) { return std::sqrt(a); }
};
struct LogSumF : SumF {
  static double finish(Acc a, std::int64_t) { return std::log(a); }
};
// log(sum(exp(x))) computed online: the running max m and sum(exp(x - m)),
// so that large inputs do not overflow.
struct LogSumExpF {
  struct Acc {
    double m, s;
  };
  static Acc init() { return {-std::numeric_limits<double>::infinity(), 0.0}; }
  static Acc step(Acc a, double x) {
    if (std::isnan(a.m)) return a;
    if (std::isnan(x)) return {x, 1.0};
    if (x > a.m) return {x, a.s * std::exp(a.m - x) + 1.0};
    if (x == -std::numeric_limits<double>::infinity() || a.m == std::numeric_limits<double>::infinity()) return a;
    return {a.m, a.s + std::exp(x - a.m)};
  }
  static double finish(Acc a, std::int64_t) { return a.m + std::log(a.s); }
};

// int64 folds, for shape arithmetic: exact, wrapping on overflow (no UB).
struct SumI {
  using Acc = std::uint64_t;
  static Acc init() { return 0; }
  static Acc step(Acc a, std::int64_t x) { return a + static_cast<std::uint64_t>(x); }
  static std::int64_t finish(Acc a, std::int64_t) { return static_cast<std::int64_t>(a); }
};
struct ProdI {
  using Acc = std::uint64_t;
  static Acc init() { return 1; }
  static Acc step(Acc a, std::int64_t x) { return a * static_cast<std::uint64_t>(x); }
  static std::int64_t finish(Acc a, std::int64_t) { return static_cast<std::int64_t>(a); }
};
struct MaxI {
  using Acc = std::int64_t;
  static Acc init() { return std::numeric_limits<std::int64_t>::min(); }
  static Acc step(Acc a, std::int64_t x) { return std::max(a, x); }
  static std::int64_t finish(Acc a, std::int64_t) { return a; }
};
struct MinI {
  using Acc = std::int64_t;
  static Acc init() { return std::numeric_limits<std::int64_t>::max(); }
  static Acc step(Acc a, std::int64_t x) { return std::min(a, x); }
  static std::int64_t finish(Acc a, std::int64_t) { return a; }
};

// ---- The generic routine --------------------------------------------------------

struct Dim {
  std::int64_t extent, stride;
};

// The input seen as kept and reduced dims. Adjacent dims of the same kind are
// merged and dims of extent 1 dropped, so that the loops below are as few and
// as long as possible. The output is row-major over the kept dims, whose last
// one becomes `inner` when it is the input's innermost (stride 1) dim: the
// kernel then accumulates `inner` contiguous outputs at once.
struct ReduceLayout {
  std::vector<Dim> outer;    // kept dims but `inner`, outermost first
  std::vector<Dim> reduced;  // reduced dims, outermost first
  std::int64_t inner = 1;    // contiguous kept elements (1 if the innermost dim is reduced)
  std::int64_t n_outer = 1, n_reduced = 1;
};

ReduceLayout reduce_layout(const Shape& x, const std::vector<bool>& is_reduced) {
  // Runs of (extent, reduced?), size-1 dims dropped.
  struct Run {
    std::int64_t extent;
    bool reduced;
  };
  std::vector<Run> runs;  // outermost first
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (x[i] == 1) continue;
    if (!runs.empty() && runs.back().reduced == is_reduced[i]) runs.back().extent *= x[i];
    else runs.push_back({x[i], is_reduced[i]});
  }
  ReduceLayout l;
  std::vector<Dim> dims(runs.size());
  std::int64_t stride = 1;
  for (std::size_t k = runs.size(); k-- > 0;) {
    dims[k] = {runs[k].extent, stride};
    stride *= runs[k].extent;
  }
  std::size_t kept_end = runs.size();
  if (!runs.empty() && !runs.back().reduced) {
    l.inner = runs.back().extent;
    kept_end = runs.size() - 1;
  }
  for (std::size_t k = 0; k < kept_end; ++k) (runs[k].reduced ? l.reduced : l.outer).push_back(dims[k]);
  for (const auto& d : l.outer) l.n_outer *= d.extent;
  for (const auto& d : l.reduced) l.n_reduced *= d.extent;
  return l;
}

// Outputs handled by one work item when `inner` > 1 (bounds the accumulators).
constexpr std::int64_t kTile = 256;

// y[o] = finish(fold of x over the reduced positions of o). x and y may not alias.
template <class F, class In, class Out>
void reduce_fold(const ReduceLayout& l, const In* x, Out* y, int threads) {
  using Acc = typename F::Acc;
  const std::int64_t tiles = (l.inner + kTile - 1) / kTile;
  const std::int64_t items = l.n_outer * tiles;
  if (items == 0) return;
  const std::int64_t n_red = l.n_reduced;
  const std::size_t nr = l.reduced.size();
  // Work items in contiguous chunks, a few per thread.
  const std::int64_t chunks = std::min<std::int64_t>(items, std::max(1, threads) * 4);
  parallel_for(threads, chunks, [&](std::int64_t chunk) {
    const std::int64_t begin = items * chunk / chunks, end = items * (chunk + 1) / chunks;
    std::vector<Acc> acc(static_cast<std::size_t>(std::min(l.inner, kTile)));
    std::vector<std::int64_t> idx(nr);
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t o = item / tiles, t = item % tiles;
      const std::int64_t i0 = t * kTile, width = std::min(kTile, l.inner - i0);
      // Offset of this output group's first element in x.
      std::int64_t base = i0, rem = o;
      for (std::size_t k = l.outer.size(); k-- > 0;) {
        base += (rem % l.outer[k].extent) * l.outer[k].stride;
        rem /= l.outer[k].extent;
      }
      std::fill(acc.begin(), acc.begin() + width, F::init());
      // Odometer over the reduced positions; the innermost reduced dim is the inner loop.
      std::fill(idx.begin(), idx.end(), 0);
      const std::int64_t last_extent = nr ? l.reduced[nr - 1].extent : 1;
      const std::int64_t last_stride = nr ? l.reduced[nr - 1].stride : 0;
      for (std::int64_t r = 0; r < n_red; r += last_extent) {
        std::int64_t off = base;
        for (std::size_t k = 0; k + 1 < nr; ++k) off += idx[k] * l.reduced[k].stride;
        if (width == 1) {
          Acc a = acc[0];
          for (std::int64_t j = 0; j < last_extent; ++j) a = F::step(a, x[off + j * last_stride]);
          acc[0] = a;
        } else {
          for (std::int64_t j = 0; j < last_extent; ++j) {
            const In* xp = x + off + j * last_stride;
            for (std::int64_t i = 0; i < width; ++i) acc[i] = F::step(acc[i], xp[i]);
          }
        }
        // Advance the odometer over all but the innermost reduced dim.
        for (std::size_t k = nr > 0 ? nr - 1 : 0; k-- > 0;) {
          if (++idx[k] < l.reduced[k].extent) break;
          idx[k] = 0;
        }
      }
      Out* yp = y + o * l.inner + i0;
      for (std::int64_t i = 0; i < width; ++i) yp[i] = static_cast<Out>(F::finish(acc[i], n_red));
    }
  });
}

// ---- The ops ----------------------------------------------------------------------

// How one Reduce op folds each dtype it takes (nullptr: dtype not supported).
struct ReduceKind {
  const char* op;
  void (*f32)(const ReduceLayout&, const float*, float*, int);
  void (*i64)(const ReduceLayout&, const std::int64_t*, std::int64_t*, int);
};

const ReduceKind kKinds[] = {
    {"ReduceMean", reduce_fold<MeanF, float, float>, nullptr},
    {"ReduceSum", reduce_fold<SumF, float, float>, reduce_fold<SumI, std::int64_t, std::int64_t>},
    {"ReduceMax", reduce_fold<MaxF, float, float>, reduce_fold<MaxI, std::int64_t, std::int64_t>},
    {"ReduceMin", reduce_fold<MinF, float, float>, reduce_fold<MinI, std::int64_t, std::int64_t>},
    {"ReduceProd", reduce_fold<ProdF, float, float>, reduce_fold<ProdI, std::int64_t, std::int64_t>},
    {"ReduceL1", reduce_fold<L1F, float, float>, nullptr},
    {"ReduceL2", reduce_fold<L2F, float, float>, nullptr},
    {"ReduceSumSquare", reduce_fold<SumSquareF, float, float>, nullptr},
    {"ReduceLogSum", reduce_fold<LogSumF, float, float>, nullptr},
    {"ReduceLogSumExp", reduce_fold<LogSumExpF, float, float>, nullptr},
};

const ReduceKind& kind_of(const Node& node) {
  for (const auto& k : kKinds)
    if (node.op_type == k.op) return k;
  unsupported_node(node, "not a Reduce op");
}

// Whether the axes are input 1 (ReduceSum from opset 13, all from opset 18).
bool axes_from_input(const Node& node, std::int64_t opset) {
  return opset >= 18 || (node.op_type == "ReduceSum" && opset >= 13);
}

}  // namespace

ReducePlan reduce_plan(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  const ReduceKind& kind = kind_of(node);
  if (in.empty() || !in[0].present) fail_node(node, "missing required input 0 (data)");
  const InputInfo& x = in[0];
  if (x.dtype == DType::i64 ? kind.i64 == nullptr : x.dtype != DType::f32)
    unsupported_node(node, std::string("input has dtype ") + dtype_name(x.dtype) + "; " + node.op_type +
                               " supports float32" + (kind.i64 ? " and int64" : ""));
  ReducePlan p;
  p.keepdims = node.attrs.get_int("keepdims", 1) != 0;
  std::vector<std::int64_t> axes;
  if (axes_from_input(node, ctx.opset)) {
    if (in.size() > 2) fail_node(node, "takes at most 2 inputs (data, axes), got " + std::to_string(in.size()));
    if (node.attrs.has("axes"))
      fail_node(node, "the 'axes' attribute is not allowed at opset " + std::to_string(ctx.opset) +
                          "; axes are input 1");
    if (const InputInfo* a = opt_info(in, 1)) {
      if (a->dtype != DType::i64)
        fail_node(node, std::string("axes (input 1) have dtype ") + dtype_name(a->dtype) + ", expected int64");
      if (a->shape.size() > 1)
        fail_node(node, "axes (input 1) of shape " + shape_string(a->shape) + " must be 1-D");
      if (!a->constant) unsupported_node(node, "the axes (input 1) are not a constant; vkfuse needs static shapes");
      axes = a->constant->to_ints();
    }
    if (axes.empty() && node.attrs.get_int("noop_with_empty_axes", 0) != 0) {
      p.identity = true;
      return p;
    }
  } else {
    if (in.size() > 1)
      fail_node(node, "takes one input at opset " + std::to_string(ctx.opset) + " (axes are an attribute), got " +
                          std::to_string(in.size()));
    axes = node.attrs.get_ints("axes");
  }
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  p.reduced.assign(x.shape.size(), axes.empty());  // no axes: all of them
  for (std::int64_t a : axes) {
    if (a < -rank || a >= rank)
      fail_node(node, "axis " + std::to_string(a) + " of axes " + ints_string(axes) + " is out of range for input " +
                          shape_string(x.shape));
    const auto k = static_cast<std::size_t>(a < 0 ? a + rank : a);
    if (p.reduced[k]) fail_node(node, "axes " + ints_string(axes) + " name axis " + std::to_string(k) + " twice");
    p.reduced[k] = true;
  }
  return p;
}

bool contiguous_reduction(const ReducePlan& plan, const Shape& x, ContiguousReduction& out) {
  out = {};
  const auto rank = static_cast<std::int64_t>(x.size());
  std::int64_t first = -1, last = -1;
  for (std::int64_t k = 0; k < rank; ++k)
    if (plan.reduced[static_cast<std::size_t>(k)] && x[static_cast<std::size_t>(k)] != 1) {
      if (first < 0) first = k;
      last = k;
    }
  if (first < 0) {  // only axes of size 1: each group is one element
    out.outer = element_count(x);
    return true;
  }
  for (std::int64_t k = first; k <= last; ++k)
    if (!plan.reduced[static_cast<std::size_t>(k)] && x[static_cast<std::size_t>(k)] != 1) return false;
  for (std::int64_t k = 0; k < rank; ++k) {
    const std::int64_t d = x[static_cast<std::size_t>(k)];
    (k < first ? out.outer : k > last ? out.inner : out.len) *= d;
  }
  return true;
}

namespace {

std::vector<OutputInfo> infer_reduce(const OpContext& ctx, std::span<const InputInfo> in) {
  const ReducePlan p = reduce_plan(ctx, in);
  const Shape& x = in[0].shape;
  if (p.identity) return {OutputInfo{in[0].dtype, x}};
  Shape y;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!p.reduced[i]) y.push_back(x[i]);
    else if (p.keepdims) y.push_back(1);
  }
  return {OutputInfo{in[0].dtype, y}};
}

void eval_reduce(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  std::vector<InputInfo> infos(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    infos[i].present = in[i] != nullptr;
    if (!in[i]) continue;
    infos[i].dtype = in[i]->dtype();
    infos[i].shape = in[i]->shape();
    infos[i].constant = in[i];
  }
  const ReducePlan p = reduce_plan(ctx, infos);
  const Tensor& X = *in[0];
  Tensor& Y = out[0];
  if (p.identity) {
    if (X.byte_size()) std::memcpy(Y.bytes(), X.bytes(), X.byte_size());
  } else {
    const ReduceLayout l = reduce_layout(X.shape(), p.reduced);
    const ReduceKind& kind = kind_of(ctx.node);
    if (X.dtype() == DType::i64) kind.i64(l, X.i64(), Y.i64(), ctx.threads);
    else kind.f32(l, X.f32(), Y.f32(), ctx.threads);
  }
  if (Y.dtype() == DType::f32) apply_activation(ctx.node, Y);
}

}  // namespace

void register_reduce_ops(std::vector<OpDef>& table) {
  for (const auto& k : kKinds) table.push_back(OpDef{k.op, infer_reduce, eval_reduce});
}

}  // namespace vkfuse::graph
