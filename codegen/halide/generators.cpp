// codegen/halide/generators.cpp — the Halide 14 generators of vkfuse's host
// kernels, compiled ahead of time at build time (add_halide_library).
//
// Every kernel is shape-generic: tensor shapes arrive as buffer extents and
// op attributes (strides, pads, activation) as scalar params, so one compiled
// pipeline serves every layer of its family and nothing is JIT-compiled at
// load. Layout is NCHW, which Halide sees innermost first: (x, y, c, n).
//
// Each family's algorithm is written once (the `algorithm` half of
// generate()); its schedule is separate and named (`schedule_*`). Variants of
// a schedule are GeneratorParams, instantiated in sources.cmake.
#include <Halide.h>

#include <algorithm>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kernel_activations.h"

namespace {

using namespace Halide;
using Halide::BoundaryConditions::constant_exterior;
namespace kernel_activations = vkfuse::codegen::kernel_activations;

// The fused epilogue activation. Kinds follow graph::Activation::Kind:
// 0 none, 1 Relu, 2 LeakyRelu, 3 Clip, 4 Sigmoid, 5 HardSigmoid, 6 HardSwish,
// 7 Silu, 8 Gelu (erf form), 9 GeluTanh (tanh form).
Expr activate(Expr v, Expr kind, Expr alpha, Expr beta) {
  // Sigmoid, SiLU and the tanh-form GELU share one exp: 0.5 (1 + tanh(u)) is
  // sigmoid(2u), so GeluTanh(v) = v * sigmoid(2 sqrt(2/pi) (v + 0.044715 v^3)).
  // The argument clamped to where exp is finite: Halide's exp reduces its
  // argument through an int, and far out (Sigmoid(-1e30)) returned 1, not 0.
  // Halide's exp, not fast_exp: clamped, fast_exp took EfficientNet-B0's
  // per-step minima from 6.57-6.71 to 6.24-6.47 ms (two threads, Zen 4, a
  // noisy phase) but its error against PyTorch from 1.5e-6 to 1.0e-5.
  const Expr u = select(kind == 9, v * (1.5957691f + 0.0713548f * v * v), v);
  const Expr e = exp(-clamp(u, -88.f, 88.f));
  return select(kind == 1, max(v, 0.f),                                               //
                kind == 2, select(v >= 0.f, v, alpha * v),                              //
                kind == 3, min(max(v, alpha), beta),                                    //
                kind == 4, 1.f / (1.f + e),                                             //
                kind == 5, max(0.f, min(1.f, alpha * v + beta)),                        //
                kind == 6, v * max(0.f, min(1.f, v / 6.f + 0.5f)),                      //
                kind == 7 || kind == 9, v / (1.f + e),                                  //
                kind == 8, 0.5f * v * (1.f + erf(v * 0.70710678f)),                     //
                v);
}

// The activations that get code of their own: none, Relu, Clip (ReLU6:
// MobileNet v2), HardSwish (MobileNet v3), SiLU (EfficientNet). A vector
// select computes every arm, so under the generic epilogue every output
// vector also paid for exp and erf (MobileNet v2's expansion layers, Clip:
// 1.68 -> 1.42 ms once specialized).
constexpr int kSpecializedActivations[] = {0, 1, 3, 6, 7};

// Specializes `f` on kSpecializedActivations so that their code carries no
// select chain.
void specialize_activation(Func f, Expr kind) {
  for (int k : kSpecializedActivations) f.specialize(kind == k);
}

// Register tiles. The schedules were written for AVX-512's 32 vector
// registers of 16 floats; AVX2 and SSE4.1 have 16 registers of 8 and 4, so
// there the same tiles take four to eight times the registers and spill
// (on an AVX2 Zen 3, the 3x3 layers ran at half of ONNX Runtime's rate
// with more stack moves than FMAs). On those targets a kernel computes its
// register tile in sub-tiles of at most kNarrowAccumulators vectors, each
// with its own pass over the reduction: the filters' packing and the host's
// view of the kernel (tile sizes, task shapes) stay the same.
bool wide_registers(const Target& t) { return t.has_feature(Target::AVX512); }
int float_lanes(const Target& t) {
  return wide_registers(t) ? 16 : t.has_feature(Target::AVX) ? 8 : 4;
}
constexpr int kNarrowAccumulators = 14;

// The input (x, y, c, n) with `value` outside the image, for window ops.
// constant_exterior clamps each lane's index, so every vector that straddles
// an image edge loads as a gather, and on rows 7 to 40 wide most vectors do
// (Inception's 17x17 average pools ran at ~10 GFLOP/s). Here the pure
// definition fills the rows with `value` and an update copies the image
// columns over them with dense loads; rows outside the image keep `value`.
// vectorize_dense_padded() schedules both stages; compute_at is the caller's.
struct DensePadded {
  Func f;
  RDom rx;
};
DensePadded dense_padded(Func in, Expr W, Expr H, Expr value, const std::string& name) {
  DensePadded p{Func(name), RDom(0, W, name + "_rx")};
  Var x{"x"}, y{"y"}, c{"c"}, n{"n"};
  p.f(x, y, c, n) = value;
  p.f(p.rx, y, c, n) = select(y >= 0 && y < H, in(p.rx, clamp(y, 0, H - 1), c, n), value);
  return p;
}
void vectorize_dense_padded(DensePadded p, int lanes, Expr wide = Expr()) {
  RVar rxo{"rxo"}, rxi{"rxi"};
  const Var x = p.f.args()[0];
  if (wide.defined()) {  // 16 lanes on rows where `wide` holds
    p.f.specialize(wide).vectorize(x, 16, TailStrategy::RoundUp);
    p.f.update().specialize(wide).split(p.rx.x, rxo, rxi, 16, TailStrategy::GuardWithIf).vectorize(rxi);
  }
  p.f.vectorize(x, lanes, TailStrategy::RoundUp);
  p.f.update().split(p.rx.x, rxo, rxi, lanes, TailStrategy::GuardWithIf).vectorize(rxi);
}

// The input row that window row `ry` of output row `y` reads. Wide-row
// kernels slide their padded rows down the plane (schedule_plane_rows), and
// Halide 14 slides only where it proves the rows move monotonically with y:
// a product of two runtime values (y * stride_y, ry * dil_y) defeats that
// proof, and the padded rows were made again for every output row (three
// per row under 3x3 windows). So the wide-row kernels take row strides 1 and
// 2 and no row dilation; the host picks the planar kernel for any other
// (host_kernels.cpp, wide_rows).
Expr window_row(Expr y, Expr ry, Expr stride_y, Expr dil_y, Expr pad_y, bool wide_rows) {
  if (!wide_rows) return y * stride_y + ry * dil_y - pad_y;
  return select(stride_y == 2, y * 2, y) + ry - pad_y;
}
// The input column that window column `rx` of output column `x` reads. The
// wide-row kernels take no column dilation either: with a runtime dilation
// each of a 3x3 window's taps had its own loop-invariant address, more than
// the registers hold, and the tap loop reloaded them from the stack (mov and
// lea were 70% of MobileNet v2's 112x112 depthwise layer); with dilation 1
// the taps of a row share one address and differ by constant offsets.
Expr window_col(Expr x, Expr rx, Expr stride_x, Expr dil_x, Expr pad_x, bool wide_rows) {
  return x * stride_x + (wide_rows ? rx : rx * dil_x) - pad_x;
}

// The first input channel that block mo of tile_m output channels reads, of
// a convolution with group_out output and group_in input channels per group
// (group_in 0: dense): its first group's, moved down where the block's
// `block_c` channels would run past the input's `channels` (the last blocks
// of a layer whose groups are narrower than a block). One division per
// block, outside the reduction.
Expr block_channels(Expr mo, int tile_m, Expr group_out, Expr group_in, Expr block_c, Expr channels) {
  // clamp, not min: it bounds the padded input's channels for bounds inference.
  return clamp((mo * tile_m / group_out) * group_in, 0, channels - block_c);
}

// plane_rows: the schedule of the per-plane window ops (depthwise conv,
// pooling): `out` is (x, y, c, n), `acc` the window accumulation (an init and
// one update over `r`), `padded` the input with its exterior.
//  - Tasks of 16 (channel, image) planes, which share one allocation for
//    their padded copies: one halide_malloc per plane cost more than the
//    window op itself on 7x7 to 14x14 maps.
//  - x vectorized; rows of at least one vector end in a vector shifted
//    inwards (out is pure, so the overlap is recomputed, not accumulated):
//    17- and 7-wide maps would otherwise run most pixels in a scalar tail.
//    16, 8 and 4 lanes by row width.
//  - acc lives in registers, one vector at a time; 3x3 windows, the common
//    case, unroll their taps; known square strides (1, 2) make the tap loads dense
//    or 2-strided vector loads.
void schedule_plane_rows(Func out, Func acc, const RDom& r, DensePadded padded, Expr kernel_x,
                         Expr kernel_y, Expr stride_x, Expr stride_y, Expr act, std::span<const int> act_kinds,
                         bool wide_rows) {
  const Var x = out.args()[0], y = out.args()[1], c = out.args()[2], n = out.args()[3];
  const Var ax = acc.args()[0];
  Var t{"t"}, to{"to"}, xo{"xo"}, xi{"xi"};
  const Expr OW = out.output_buffer().dim(0).extent(), OH = out.output_buffer().dim(1).extent();
  // Wide rows: a task is a band of up to kBand rows of one plane (the last
  // band shifted inwards), so that layers of few planes still fill the
  // cores: MobileNet v3's 16-plane 112x112 depthwise layer was one task of
  // 16 planes on one core (0.13 -> 0.07-0.09 ms, 2 threads, Zen 4). Each
  // band makes its own first padded rows (2 more per band under 3x3): bands
  // of 32 rows cost MobileNet v2's 32-plane layer ~5% at one thread.
  constexpr int kBand = 56, kStepRows = 8;
  Var yb{"yb"}, row = wide_rows ? Var("yr") : y;
  if (wide_rows) {
    // Images (n) stay a serial loop: fused into the task index, the plane
    // becomes a remainder, whose bounds Halide 14 does not narrow to a point.
    out.split(y, yb, row, min(OH, kBand), TailStrategy::ShiftInwards).fuse(yb, c, to).parallel(to);
  } else {
    out.fuse(c, n, t).split(t, to, t, 16, TailStrategy::GuardWithIf).parallel(to);
  }
  // Wide rows run kStepRows output rows per step: their taps form as many
  // independent FMA chains over shared input rows (a 3x3 window's input row
  // serves three of them), and the per-step work (a weight's broadcast, the
  // row addresses, loop set-up) is paid once per step. Two rows took
  // MobileNet v2's 112x112 depthwise layer from 0.33 to 0.26 ms (one thread,
  // Zen 3); eight rather than two, 0.24 -> 0.18-0.20 ms, and MobileNet v3's
  // 16-plane layer 0.11 -> 0.08 ms (one thread, Zen 4; four: 0.10). Needs
  // kStepRows output rows (the host's wide_rows()).
  Var yo{"yo"}, yi{"yi"};
  auto rows = [&](Stage st, int lanes) {
    st.split(x, xo, xi, lanes, TailStrategy::ShiftInwards).vectorize(xi);
    if (wide_rows) st.split(row, yo, yi, kStepRows, TailStrategy::ShiftInwards).reorder(xi, yi, xo, yo).unroll(yi);
    // Square strides, as CNNs use them: a known row step lets a step's
    // input rows share one address (no per-tap select of the row).
    st.specialize(stride_x == 1 && stride_y == 1);
    st.specialize(stride_x == 2 && stride_y == 2);
  };
  // Wide rows come with 16+ output columns (host_kernels.cpp, wide_rows()):
  // they need only the 16-lane schedule.
  auto widths = [&](Stage st) {
    if (wide_rows) return rows(st, 16);
    rows(st.specialize(OW >= 16), 16);
    rows(st.specialize(OW >= 8), 8);
    rows(st.specialize(OW >= 4), 4);
    st.split(x, xo, xi, 4, TailStrategy::GuardWithIf).vectorize(xi);
  };
  // A vector select computes every arm: without these the epilogue ran the
  // whole activation chain (exp included) for every output vector. Each kind
  // costs ~5 s of code generation per kernel and target, so only the ones
  // that follow these ops in practice (act_kinds) are specialized.
  for (int kind : act_kinds) widths(out.specialize(act == kind));
  widths(out);
  acc.compute_at(out, xo).vectorize(ax, wide_rows ? 16 : 8, TailStrategy::RoundUp);
  if (!wide_rows) acc.specialize(OW >= 16).vectorize(ax, 16, TailStrategy::RoundUp);
  Stage taps = acc.update();
  if (wide_rows) {
    const Var ay = acc.args()[1];
    acc.unroll(ay);
    taps.reorder(ax, ay, r.x, r.y).unroll(ay);
  } else {
    taps.reorder(ax, r.x, r.y);
  }
  auto unrolled = [&](Stage st, int lanes) {
    st.vectorize(ax, lanes, TailStrategy::RoundUp);
    st.specialize(kernel_x == 3 && kernel_y == 3).unroll(r.x).unroll(r.y);
  };
  if (!wide_rows) unrolled(taps.specialize(OW >= 16), 16);
  unrolled(taps, wide_rows ? 16 : 8);
  if (wide_rows) {
    // Rows of 64 and more: padded rows are made as the output rows need
    // them (sliding down the plane), so a row's fill and copy meet in L1; a
    // whole padded plane (16 of them per task) would be written twice
    // through L2 (ResNet's 112x112 max pool: 0.19 -> 0.15 ms).
    padded.f.store_at(out, to).compute_at(out, yo);
    vectorize_dense_padded(padded, 16);
  } else {
    // Small planes: a padded plane per plane (sliding row by row costs
    // more than it saves: 17x17 average pools 0.11 -> 0.23 ms).
    padded.f.store_at(out, to).compute_at(out, t);
    vectorize_dense_padded(padded, 8, padded.rx.x.extent() >= 32);
  }
}

// ---------------------------------------------------------------------------
// Convolution, dense or grouped.
//   out(x, y, m, n) = act(bias(m) + sum_{kx,ky,c} w(m, kx, ky, c) *
//                         in(x*sx + kx*dx - px, y*sy + ky*dy - py, c0(m) + c, n) [+ res(x, y, m, n)])
// Weights are repacked at load into blocks of tile_m output channels,
// (mi, c, kx, ky, mo) innermost first, so that one task streams its filters
// contiguously; m is padded to a multiple of tile_m, and bias likewise.
// A block reads weights.dim(1) input channels from c0 = block_channels(mo):
// 0 for a dense convolution, the first channel of its group (or groups) for
// a grouped one, whose filters hold zeros for the channels of other groups
// (hk::PackedConv::pack).
class Conv2D : public Generator<Conv2D> {
 public:
  GeneratorParam<bool> residual{"residual", false};
  GeneratorParam<int> tile_x{"tile_x", 16};  // output columns per tile (one AVX-512 vector)
  GeneratorParam<int> tile_y{"tile_y", 2};   // output rows per tile
  GeneratorParam<int> tile_m{"tile_m", 8};   // output channels per tile

  Input<Buffer<float, 4>> input{"input"};
  Input<Buffer<float, 5>> weights{"weights"};  // (mi, c, kx, ky, mo): blocks of tile_m channels
  Input<Buffer<float, 1>> bias{"bias"};
  Input<Buffer<float, 4>> res{"res"};
  Input<int> stride_x{"stride_x"}, stride_y{"stride_y"};
  Input<int> pad_x{"pad_x"}, pad_y{"pad_y"};
  Input<int> dil_x{"dil_x"}, dil_y{"dil_y"};
  Input<int> group_out{"group_out"}, group_in{"group_in"};  // channels per group; group_in 0: dense
  Input<bool> rows_outer{"rows_outer"};  // which loop nest: see schedule_register_tiled
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 4>> out{"out"};

  Var x{"x"}, y{"y"}, m{"m"}, n{"n"}, mi{"mi"}, mo{"mo"};
  DensePadded padded;  // the input with zeros outside
  Func conv{"conv"}, tile{"tile"};
  RDom r;

  void generate() {
    // Algorithm. Output channel m = mo * tile_m + mi.
    const int tm = tile_m;
    padded = dense_padded(input, input.dim(0).extent(), input.dim(1).extent(), 0.f, "padded");
    // r: (c, kx, ky), input channels innermost.
    r = RDom(0, weights.dim(1).extent(), 0, weights.dim(2).extent(), 0, weights.dim(3).extent(), "r");
    conv(mi, x, y, mo, n) = bias(mo * tm + mi);
    const Expr c0 = block_channels(mo, tm, group_out, group_in, weights.dim(1).extent(), input.dim(2).extent());
    conv(mi, x, y, mo, n) += weights(mi, r.x, r.y, r.z, mo) * padded.f(x * stride_x + r.y * dil_x - pad_x,
                                                                       y * stride_y + r.z * dil_y - pad_y, c0 + r.x, n);
    // The whole register tile leaves through `tile`, unguarded, so that the
    // accumulators stay in registers even where the output's last tile is
    // partial (there only the stores to `out` are predicated).
    tile(x, y, m, n) = conv(m % tm, x, y, m / tm, n);
    Expr v = tile(x, y, m, n);
    if (residual) v += res(x, y, m, n);
    out(x, y, m, n) = activate(v, act, alpha, beta);
    // Channel tiles start at multiples of tile_m, so m % tile_m is a constant
    // in each unrolled lane of the epilogue.
    out.dim(2).set_min(0);

    schedule_register_tiled();
  }

  // conv_tiled: a tile_x (vectorized) x tile_y x tile_m register tile of
  // accumulators per task; the reduction runs over (kx, ky, c) inside it.
  // Tasks are (channel block, row block) pairs, channel blocks outermost so
  // that a block's weights stay in cache across rows.
  void schedule_register_tiled() {
    const int tx = tile_x, ty = tile_y, tm = tile_m;
    Var xo{"xo"}, xi{"xi"}, yo{"yo"}, yi{"yi"}, mto{"mto"}, mti{"mti"}, task{"task"};
    // The output loop nest, per variant:
    //   conv_tiled_channels_outer: tasks walk rows within a channel block, so
    //     a block's filters stay in cache (large filters, small maps);
    //   conv_tiled_rows_outer: tasks walk channel blocks within a row block,
    //     so input rows stay in cache (small filters, large maps).
    auto schedule_out = [&](Stage st, bool rows_outer) {
      st.split(x, xo, xi, tx, TailStrategy::GuardWithIf)
          .split(y, yo, yi, ty, TailStrategy::GuardWithIf)
          .split(m, mto, mti, tm, TailStrategy::GuardWithIf);
      if (rows_outer) {
        st.reorder(xi, yi, mti, xo, mto, yo, n).fuse(mto, yo, task);
      } else {
        st.reorder(xi, yi, mti, xo, yo, mto, n).fuse(yo, mto, task);
      }
      st.parallel(task).vectorize(xi).unroll(yi).unroll(mti);
    };
    // Known strides turn the input loads into dense (or 2-strided) vector
    // loads; Relu and no activation get code without the activation select,
    // and so do the mobile stems' (kConvTiledStem) in the one nest stems run.
    // The host passes no other activation (it runs them as a pass after the
    // kernel, host_kernels.cpp), so only other strides reach the generic
    // loop nests below: known strides with other activations got none (four
    // loop nests that never ran, a quarter of this kernel's generation).
    std::vector<Expr> conds;
    for (int stride : {1, 2})
      for (int kind : kernel_activations::kConvTiled) conds.push_back(stride_x == stride && act == kind);
    for (const Expr& cond : conds) {
      schedule_out(out.specialize(cond && rows_outer), true);
      schedule_out(out.specialize(cond && !rows_outer), false);
    }
    if (!residual)
      for (int kind : kernel_activations::kConvTiledStem)
        schedule_out(out.specialize(act == kind && kernel_activations::in_stem_nest(stride_x, rows_outer)), true);
    schedule_out(out.specialize(rows_outer), true);
    schedule_out(out, false);

    tile.compute_at(out, xo).bound_extent(x, tx).bound_extent(y, ty).bound_extent(m, tm);
    tile.vectorize(x).unroll(y).unroll(m);
    conv.compute_at(out, xo);
    conv.bound_extent(mi, tm).bound_extent(x, tx).bound_extent(y, ty).bound_extent(mo, 1);
    conv.reorder(x, y, mi, mo, n).vectorize(x).unroll(y).unroll(mi);
    conv.update()
        .reorder(x, y, mi, r.x, r.y, r.z, mo, n)
        .vectorize(x)
        .unroll(y)
        .unroll(mi);
    conv.store_in(MemoryType::Register);
    // The padded copy in bands of rows (all channels), as the tasks above
    // read it: a copy in channel planes made each core read rows the other
    // had copied, and a 3-channel stem split into 3 tasks for 2 threads.
    {
      const std::vector<Var> pa = padded.f.args();
      Var pyo{"pyo"}, pyi{"pyi"};
      padded.f.compute_root()
          .split(pa[1], pyo, pyi, 8, TailStrategy::GuardWithIf)
          .reorder(pa[0], pyi, pa[2], pyo, pa[3])
          .parallel(pyo);
      padded.f.update()
          .split(pa[1], pyo, pyi, 8, TailStrategy::GuardWithIf)
          .reorder(padded.rx.x, pyi, pa[2], pyo, pa[3])
          .parallel(pyo);
    }
    vectorize_dense_padded(padded, 16);
  }
};

// The task loops of a kernel whose output is (p, m, n): tasks are (pixel
// tile, channel block) pairs, channel blocks innermost where channels_inner
// holds and pixel tiles innermost otherwise; both orders are specialized on
// kSpecializedActivations. The vector runs along the pixels or along the
// channels, `lanes` wide; the whole register tile is unrolled. `task` names
// the fused loop.
// A register tile narrower than the task's (sub_p x sub_m, see
// wide_registers) runs as a loop of sub-tiles inside the task, the last
// pixel sub-tile shifted inwards; `at` names the loop whose iteration
// computes one sub-tile (`task` where the sub-tile is the task's tile).
void schedule_tile_tasks(Func out, int tile_p, int tile_m, Expr channels_inner, Expr act, bool pixels_in_vector,
                         Var task, int sub_p, int sub_m, Var& at, int lanes) {
  const Var p = out.args()[0], m = out.args()[1], n = out.args()[2];
  Var po{"po"}, pi{"pi"}, mto{"mto"}, mti{"mti"}, pr{"pr"}, pri{"pri"}, mr{"mr"}, mri{"mri"};
  at = sub_m < tile_m ? mr : sub_p < tile_p ? pr : task;  // the innermost of the sub-tile loops
  auto order = [&](Stage st, bool inner_channels) {
    st.split(p, po, pi, tile_p, TailStrategy::ShiftInwards).split(m, mto, mti, tile_m, TailStrategy::GuardWithIf);
    Var pv = pi, mv = mti;
    std::vector<VarOrRVar> subs;
    if (sub_m < tile_m) {
      st.split(mti, mr, mri, sub_m);
      mv = mri;
      subs.push_back(mr);
    }
    if (sub_p < tile_p) {
      st.split(pi, pr, pri, sub_p, TailStrategy::ShiftInwards);
      pv = pri;
      subs.push_back(pr);
    }
    const Var first = pixels_in_vector ? pv : mv, second = pixels_in_vector ? mv : pv;
    std::vector<VarOrRVar> loops{first, second};
    loops.insert(loops.end(), subs.begin(), subs.end());
    if (inner_channels) {
      loops.insert(loops.end(), {mto, po, n});
      st.reorder(loops).fuse(mto, po, task);
    } else {
      loops.insert(loops.end(), {po, mto, n});
      st.reorder(loops).fuse(po, mto, task);
    }
    st.parallel(task).vectorize(first, lanes).unroll(first).unroll(second);
  };
  for (int kind : kSpecializedActivations) {
    const Expr cond = act == kind;
    order(out.specialize(cond && channels_inner), true);
    order(out.specialize(cond && !channels_inner), false);
  }
  order(out.specialize(channels_inner), true);
  order(out, false);
}

// The padded input of the channel-vector kernels, stored channels innermost:
// their reductions walk c innermost, so the pixels they broadcast for 16
// consecutive channels share one cache line instead of touching 16.
void schedule_channels_innermost(Func padded) {
  const std::vector<Var> pa = padded.args();
  padded.compute_root()
      .reorder_storage(pa[2], pa[0], pa[1], pa[3])
      .reorder(pa[2], pa[0], pa[1], pa[3])
      .parallel(pa[1])
      .vectorize(pa[2], 16, TailStrategy::GuardWithIf);
}

// ---------------------------------------------------------------------------
// Convolution (dense or grouped) vectorized over output channels
// (conv_channel_vector): the same algorithm as Conv2D, for small maps (7x7,
// 8x8, 17x17, ...) where a 16-wide row vector would mostly be padding. The
// output plane is a list of pixels p = y * out_w + x, cut into tiles of
// tile_p consecutive pixels that may span rows, so no map size wastes more
// than part of one tile (the last tile is shifted inwards; the host calls
// this for planes of at least tile_p pixels). Register tile: tile_p pixels x
// tile_m channels (two AVX-512 vectors, or one for the grouped convolutions
// whose groups have 16 output channels); input pixels are broadcast. Weights
// are packed in blocks of tile_m output channels, (mi, c, kx, ky, mo); out
// and res are (p, m, n).
class Conv2DChannelVector : public Generator<Conv2DChannelVector> {
 public:
  GeneratorParam<bool> residual{"residual", false};
  GeneratorParam<int> tile_p{"tile_p", 8};
  GeneratorParam<int> tile_m{"tile_m", 32};  // 32, or 16 for grouped convolutions of 16 channels per group

  Input<Buffer<float, 4>> input{"input"};
  Input<Buffer<float, 5>> weights{"weights"};
  Input<Buffer<float, 1>> bias{"bias"};
  Input<Buffer<float, 3>> res{"res"};
  Input<int> out_w{"out_w"};
  Input<int> stride_x{"stride_x"}, stride_y{"stride_y"};
  Input<int> pad_x{"pad_x"}, pad_y{"pad_y"};
  Input<int> dil_x{"dil_x"}, dil_y{"dil_y"};
  Input<int> group_out{"group_out"}, group_in{"group_in"};  // as Conv2D's
  Input<bool> channels_inner{"channels_inner"};  // task order: see the schedule
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 3>> out{"out"};

  Var p{"p"}, m{"m"}, n{"n"}, mi{"mi"}, mo{"mo"};

  void generate() {
    const int TM = tile_m, TP = tile_p;
    // Register tile RM channels x RP pixels (the whole TM x TP tile on
    // AVX-512; see wide_registers). conv's blocks are of RM channels, block
    // mo within packed block mo / (TM / RM).
    const int RM = wide_registers(get_target()) ? TM : std::min(TM, 2 * float_lanes(get_target()));
    const int RP = wide_registers(get_target()) || (RM / float_lanes(get_target())) * TP <= kNarrowAccumulators
                       ? TP
                       : (TP + 1) / 2;
    const int ratio = TM / RM;
    Func padded = constant_exterior(input, 0.f,
                                    {{0, input.dim(0).extent()}, {0, input.dim(1).extent()}, {Expr(), Expr()},
                                     {Expr(), Expr()}});
    Func conv{"conv"}, tile{"tile"};
    Expr x = p % out_w, y = p / out_w;
    conv(mi, p, mo, n) = bias(mo * RM + mi);
    RDom r(0, weights.dim(1).extent(), 0, weights.dim(2).extent(), 0, weights.dim(3).extent(), "r");
    const Expr c0 =
        block_channels(mo / ratio, TM, group_out, group_in, weights.dim(1).extent(), input.dim(2).extent());
    conv(mi, p, mo, n) += weights(mi + RM * (mo % ratio), r.x, r.y, r.z, mo / ratio) *
                          padded(x * stride_x + r.y * dil_x - pad_x, y * stride_y + r.z * dil_y - pad_y, c0 + r.x, n);
    tile(mi, p, mo, n) = conv(mi, p, mo, n);
    Expr v = tile(m % RM, p, m / RM, n);
    if (residual) v += res(p, m, n);
    out(p, m, n) = activate(v, act, alpha, beta);
    out.dim(1).set_min(0);

    // Tasks are (pixel tile, channel block) pairs. Threads take consecutive
    // tasks, and two neighbouring 8-pixel tiles share the cache lines of
    // every output row, so with tiles innermost the threads write the same
    // lines at once (false sharing); with channel blocks innermost every
    // task streams a different block of filters. The host picks
    // channels_inner where all the filters fit in L2.
    Var task{"task"}, at;
    const int vec = std::min(16, RM);
    schedule_tile_tasks(out, TP, TM, channels_inner, act, /*pixels_in_vector=*/false, task, RP, RM, at, vec);
    tile.compute_at(out, at).bound_extent(mi, RM).bound_extent(p, RP).bound_extent(mo, 1);
    tile.vectorize(mi, vec).unroll(mi).unroll(p);
    conv.compute_at(out, at).bound_extent(mi, RM).bound_extent(p, RP).bound_extent(mo, 1);
    conv.vectorize(mi, vec).unroll(mi).unroll(p);
    conv.update().reorder(mi, p, r.x, r.y, r.z, mo, n).vectorize(mi, vec).unroll(mi).unroll(p);
    conv.store_in(MemoryType::Register);
    schedule_channels_innermost(padded);
  }
};

// conv_channel_chunks: Conv2DChannelVector's algorithm and filters, with a
// task per block of 32 output channels over a run of run_p pixels (a
// multiple of tile_p; a block's runs are consecutive tasks), and the
// reduction in chunks of chunk_c input channels (all taps), each chunk over
// every tile of the run before the next: a chunk's filters (chunk_c x taps x
// 32 floats) stay in L1 across the run, so a layer's filters are read from
// memory once, at the rate the arithmetic consumes them, instead of in a
// burst at each block's first tile. In a whole network the small-map
// layers' filters come from memory (ResNet-18's 7x7 512->512: 9.4 MB each),
// and there this wins; with the filters in cache (one layer timed alone) the
// partial sums' round trips make it slower than Conv2DChannelVector. A
// tile's partial sums over one chunk (`part`) stay in registers and are
// added into the block's sums in memory. The input channels must be a
// multiple of chunk_c. (Halide's prefetch of the next chunk's filters made
// the 7x7 layers 2x slower.)
class Conv2DChannelChunks : public Generator<Conv2DChannelChunks> {
 public:
  GeneratorParam<bool> residual{"residual", false};
  GeneratorParam<int> tile_p{"tile_p", 7};
  GeneratorParam<int> chunk_c{"chunk_c", 16};

  Input<Buffer<float, 4>> input{"input"};
  Input<Buffer<float, 5>> weights{"weights"};  // (mi, c, kx, ky, mo), as Conv2DChannelVector's
  Input<Buffer<float, 1>> bias{"bias"};
  Input<Buffer<float, 3>> res{"res"};
  Input<int> out_w{"out_w"};
  Input<int> stride_x{"stride_x"}, stride_y{"stride_y"};
  Input<int> pad_x{"pad_x"}, pad_y{"pad_y"};
  Input<int> dil_x{"dil_x"}, dil_y{"dil_y"};
  Input<int> run_p{"run_p"};  // output pixels per task, a multiple of tile_p
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 3>> out{"out"};

  Var p{"p"}, m{"m"}, n{"n"}, mi{"mi"}, mo{"mo"}, k{"k"};

  void generate() {
    // conv's blocks are of TM channels (32 on AVX-512, 16 on AVX2: see
    // wide_registers), block mo within packed block mo / ratio; a task per
    // packed block, whose register blocks take turns on each pixel tile (so
    // that the task reads whole cache lines of the filters).
    const int TM = wide_registers(get_target()) ? 32 : 2 * float_lanes(get_target()), TP = tile_p, KC = chunk_c;
    const int ratio = 32 / TM;
    Func padded = constant_exterior(input, 0.f,
                                    {{0, input.dim(0).extent()}, {0, input.dim(1).extent()}, {Expr(), Expr()},
                                     {Expr(), Expr()}});
    Expr x = p % out_w, y = p / out_w;
    RDom rc(0, KC, 0, weights.dim(2).extent(), 0, weights.dim(3).extent(), "rc");
    // The filters keep conv_channel_vector's packing, (mi, c, kx, ky, mo):
    // a chunk reads one short run per tap, and the taps' runs are as many
    // streams for the hardware prefetchers (packed chunk by chunk, one
    // stream, the gain on the 7x7 512->512 layers shrank from ~12% to ~4%).
    RDom rk(0, weights.dim(1).extent() / KC, "rk");
    Func part{"part"}, conv{"conv"};
    Expr c = k * KC + rc.x;
    part(mi, p, mo, n, k) = 0.f;
    part(mi, p, mo, n, k) += weights(mi + TM * (mo % ratio), c, rc.y, rc.z, mo / ratio) *
                             padded(x * stride_x + rc.y * dil_x - pad_x, y * stride_y + rc.z * dil_y - pad_y, c, n);
    conv(mi, p, mo, n) = bias(mo * TM + mi);
    conv(mi, p, mo, n) += part(mi, p, mo, n, rk);
    Expr v = conv(m % TM, p, m / TM, n);
    if (residual) v += res(p, m, n);
    out(p, m, n) = activate(v, act, alpha, beta);
    out.dim(1).set_min(0);

    Var mto{"mto"}, mti{"mti"}, pr{"pr"}, pj{"pj"}, po{"po"}, pi{"pi"}, runs{"runs"}, task{"task"};
    auto order = [&](Stage st) {
      st.split(m, mto, mti, 32, TailStrategy::GuardWithIf)
          .split(p, pr, pj, run_p, TailStrategy::GuardWithIf)
          .reorder(mti, pj, pr, mto, n)
          .fuse(pr, mto, runs)
          .fuse(runs, n, task)
          .parallel(task)
          .vectorize(mti, 16)
          .unroll(mti);
    };
    for (int kind : kSpecializedActivations) order(out.specialize(act == kind));
    order(out);
    const int vec = std::min(16, TM);
    conv.compute_at(out, task).bound_extent(mi, TM).bound_extent(mo, ratio);
    conv.vectorize(mi, vec).unroll(mi);
    conv.update()
        .split(p, po, pi, TP, TailStrategy::RoundUp)
        .reorder(mi, pi, mo, po, rk.x, n)
        .vectorize(mi, vec)
        .unroll(mi)
        .unroll(pi);
    part.compute_at(conv, mo).bound_extent(mi, TM).bound_extent(p, TP).bound_extent(mo, 1).bound_extent(k, 1);
    part.vectorize(mi, vec).unroll(mi).unroll(p);
    part.update().reorder(mi, p, rc.x, rc.y, rc.z, mo, n, k).vectorize(mi, vec).unroll(mi).unroll(p);
    part.store_in(MemoryType::Register);
    schedule_channels_innermost(padded);
  }
};

// ---------------------------------------------------------------------------
// Pointwise (1x1, stride 1, unpadded) convolution as a GEMM over the flattened
// image plane: out(p, m, n) = act(bias(m) + sum_c w(m, c) * in(p, c, n)
// [+ res(p, m, n)]). Register tile: tile_p pixels (AVX-512 vectors along the
// plane) x tile_m output channels (broadcast filter taps). The plane's last
// tile is shifted inwards (recomputing a few pixels) instead of guarded, so
// every tile is full; the host calls this only for planes of at least tile_p
// pixels. Weights are packed in blocks of tile_m output channels, (mi, c, mo).
class PointwiseConv : public Generator<PointwiseConv> {
 public:
  GeneratorParam<bool> residual{"residual", false};
  GeneratorParam<int> tile_p{"tile_p", 48};
  GeneratorParam<int> tile_m{"tile_m", 8};

  Input<Buffer<float, 3>> input{"input"};      // (p, c, n)
  Input<Buffer<float, 3>> weights{"weights"};  // (mi, c, mo)
  Input<Buffer<float, 1>> bias{"bias"};
  Input<Buffer<float, 3>> res{"res"};  // (p, m, n)
  Input<bool> channels_inner{"channels_inner"};  // task order: see the schedule
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 3>> out{"out"};  // (p, m, n)

  Var p{"p"}, m{"m"}, n{"n"}, mi{"mi"}, mo{"mo"};

  void generate() {
    const int TM = tile_m, TP = tile_p;
    // Register tile RP pixels x RM channels: the whole tile on AVX-512; on
    // AVX2 vectors of 8 pixels, RM = 4 (see wide_registers). conv's blocks
    // are of RM channels, block mo within packed block mo / (TM / RM).
    const int lanes = float_lanes(get_target());
    const int RM = wide_registers(get_target()) ? TM : std::min(TM, 4);
    int RP = wide_registers(get_target()) ? TP : (kNarrowAccumulators / RM) * lanes;
    while (TP % RP != 0) RP -= lanes;
    const int ratio = TM / RM;
    RDom r(0, weights.dim(1).extent(), "r");
    Func conv{"conv"}, tile{"tile"};
    conv(p, mi, mo, n) = bias(mo * RM + mi);
    conv(p, mi, mo, n) += weights(mi + RM * (mo % ratio), r, mo / ratio) * input(p, r, n);
    tile(p, m, n) = conv(p, m % RM, m / RM, n);
    Expr v = tile(p, m, n);
    if (residual) v += res(p, m, n);
    out(p, m, n) = activate(v, act, alpha, beta);
    out.dim(1).set_min(0);

    // pointwise_tiled: tasks are (channel block, pixel tile) pairs. Pixel
    // tiles innermost keep a block's filters in L1 across tiles but stream
    // the whole input once per block (from L3 where it outgrows L2); with
    // channels_inner a pixel tile's inputs stay in L1/L2 across the blocks
    // and the filters are read from L2 once per tile: 5-10% faster where
    // they fit there (Inception's 35x35 and MobileNet's layers), 20% slower
    // on 7x7 maps with 4 MB of filters. The host picks.
    Var task{"task"}, at;
    const int vec = wide_registers(get_target()) ? 16 : lanes;
    schedule_tile_tasks(out, TP, TM, channels_inner, act, /*pixels_in_vector=*/true, task, RP, RM, at, vec);
    tile.compute_at(out, at).bound_extent(p, RP).bound_extent(m, RM);
    tile.vectorize(p, vec).unroll(p).unroll(m);
    conv.compute_at(out, at).bound_extent(p, RP).bound_extent(mi, RM).bound_extent(mo, 1);
    conv.vectorize(p, vec).unroll(p).unroll(mi);
    conv.update().reorder(p, mi, r, mo, n).vectorize(p, vec).unroll(p).unroll(mi);
    conv.store_in(MemoryType::Register);
  }
};

// ---------------------------------------------------------------------------
// Winograd F(4x4, 3x3) convolution, stride 1, dilation 1, group 1:
//   V = B^T d B  per 6x6 input tile d and channel,
//   M = sum_c U(c) . V(c)  (36 independent GEMMs; U = G g G^T repacked at load),
//   out = act(A^T M A + bias [+ res]).
// Tiles are numbered t = ty * NTX + tx. Filters arrive as (mi, c, p, mo) with
// p = i + 6 j (i along x, j along y) and blocks of 32 output channels.
namespace winograd {
const float BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                        {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
const float AT[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
// sum_k coef[k] * term(k), skipping zero coefficients.
template <int N, class F>
Expr dot(const float (&coef)[N], F term) {
  Expr e;
  for (int k = 0; k < N; ++k) {
    if (coef[k] == 0.f) continue;
    Expr t = coef[k] == 1.f ? term(k) : coef[k] == -1.f ? -term(k) : coef[k] * term(k);
    e = e.defined() ? e + t : t;
  }
  return e;
}
}  // namespace winograd

class WinogradConv : public Generator<WinogradConv> {
 public:
  GeneratorParam<bool> residual{"residual", false};
  // wino_f4x3_staged instead of wino_f4x3 (see the schedules).
  GeneratorParam<bool> staged{"staged", false};

  Input<Buffer<float, 4>> input{"input"};
  Input<Buffer<float, 4>> weights{"weights"};  // (mi, c, p, mo), mi = 32
  Input<Buffer<float, 1>> bias{"bias"};
  Input<Buffer<float, 4>> res{"res"};
  Input<int> pad_x{"pad_x"}, pad_y{"pad_y"};
  Input<int> tiles_x{"tiles_x"};  // ceil(output width / 4)
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 4>> out{"out"};

  Var x{"x"}, y{"y"}, m{"m"}, n{"n"}, c{"c"}, p{"p"}, tx{"tx"}, ty{"ty"}, i{"i"}, l{"l"}, mi{"mi"}, mo{"mo"},
      xi{"xi"}, yi{"yi"}, j{"j"};

  void generate() {
    using namespace winograd;
    if (staged) {
      padded_ = constant_exterior(input, 0.f,
                                  {{0, input.dim(0).extent()}, {0, input.dim(1).extent()}, {Expr(), Expr()},
                                   {Expr(), Expr()}});
    } else {
      dense_ = dense_padded(input, input.dim(0).extent(), input.dim(1).extent(), 0.f, "padded");
      padded_ = dense_.f;
    }
    // Input transform, along x then along y.
    t1_(i, l, tx, ty, c, n) = mux(i, [&] {
      std::vector<Expr> rows;
      for (int ii = 0; ii < 6; ++ii)
        rows.push_back(dot(BT[ii], [&](int k) { return padded_(tx * 4 + k - pad_x, ty * 4 + l - pad_y, c, n); }));
      return rows;
    }());
    V_(tx, ty, c, p, n) = mux(p, [&] {
      std::vector<Expr> vs;
      for (int jj = 0; jj < 6; ++jj)
        for (int ii = 0; ii < 6; ++ii) vs.push_back(dot(BT[jj], [&](int ll) { return t1_(ii, ll, tx, ty, c, n); }));
      return vs;
    }());
    // The 36 GEMMs.
    rc = RDom(0, weights.dim(1).extent(), "rc");
    acc_(mi, tx, ty, p, mo, n) = 0.f;
    acc_(mi, tx, ty, p, mo, n) += weights(mi, rc, p, mo) * V_(tx, ty, rc, p, n);
    M_(mi, tx, ty, p, mo, n) = acc_(mi, tx, ty, p, mo, n);
    // Output transform, along x then along y, per block of 32 channels.
    s1_(mi, xi, j, tx, ty, mo, n) = mux(xi, [&] {
      std::vector<Expr> vs;
      for (int a = 0; a < 4; ++a)
        vs.push_back(dot(AT[a], [&](int ii) { return M_(mi, tx, ty, ii + 6 * j, mo, n); }));
      return vs;
    }());
    Y_(mi, xi, yi, tx, ty, mo, n) = mux(yi, [&] {
      std::vector<Expr> vs;
      for (int b = 0; b < 4; ++b) vs.push_back(dot(AT[b], [&](int jj) { return s1_(mi, xi, jj, tx, ty, mo, n); }));
      return vs;
    }());
    Expr v = Y_(m % TM, x % 4, y % 4, x / 4, y / 4, m / TM, n) + bias(m);
    if (residual) v += res(x, y, m, n);
    out(x, y, m, n) = activate(v, act, alpha, beta);
    out.dim(2).set_min(0);
    out.dim(0).set_min(0);
    out.dim(1).set_min(0);
    if (staged) {
      schedule_staged();
    } else {
      schedule_winograd();
    }
  }

  // wino_f4x3: one task per row of 4x4 output tiles, all channels: its padded
  // input rows, transformed input, GEMM results and output transform stay in
  // the core's L2 (a whole-layer stage per step moved ~7 MB through L3 on a
  // 56x56 layer and handed every stage's data to the other core). Tasks are
  // image rows, so with the pool's contiguous parts each thread reads input
  // rows the previous layer's row-parallel kernels wrote on the same core.
  // The GEMM register tile is 32 channels x TX tiles of the row (TX divides
  // the tiles across when it can: 14 = 2 x 7 on 56x56, 7 on 28x28, 9, 18).
  void schedule_winograd() {
    Var yo{"yo"}, yr{"yr"}, xo{"xo"}, xv{"xv"}, txo{"txo"}, txi{"txi"};
    out.split(y, yo, yr, 4, TailStrategy::GuardWithIf)
        .split(x, xo, xv, 16, TailStrategy::GuardWithIf)
        .reorder(xv, xo, yr, m, yo, n)
        .vectorize(xv)
        .parallel(yo);
    padded_.compute_at(out, yo);
    vectorize_dense_padded(dense_, 8);
    V_.compute_at(out, yo).reorder(p, tx, ty, c, n).unroll(p).vectorize(tx, 16);
    t1_.compute_at(V_, tx).reorder_storage(tx, i, l).vectorize(tx).unroll(i).unroll(l);
    M_.compute_at(out, yo);
    // On AVX2 (see wide_registers) the register tile is 16 channels (mh:
    // the block's halves) x TX tiles, TX from 7, 6, 4, 3 (6 rounded up).
    const bool wide = wide_registers(get_target());
    const int RM = wide ? TM : 16;
    Var mh{"mh"};
    acc_.compute_at(M_, wide ? txo : mh).store_in(MemoryType::Register);
    const std::vector<int> widths = wide ? std::vector<int>{7, 9, 6, 8} : std::vector<int>{7, 6, 4, 3, 6};
    for (std::size_t w = 0; w < widths.size(); ++w) {
      const int tw = widths[w];
      Stage ms = w + 1 == widths.size() ? Stage(M_) : Stage(M_.specialize(tiles_x % tw == 0));
      ms.split(tx, txo, txi, tw, TailStrategy::RoundUp);
      if (wide) {
        ms.reorder(mi, txi, txo, ty, p, mo, n);
      } else {
        ms.split(mi, mh, mi, RM).reorder(mi, txi, mh, txo, ty, p, mo, n);
      }
      ms.vectorize(mi, 16).unroll(mi).unroll(txi);
    }
    acc_.bound_extent(mi, RM).vectorize(mi, 16).unroll(mi).unroll(tx);
    acc_.update().reorder(mi, tx, rc, ty, p, mo, n).vectorize(mi, 16).unroll(mi).unroll(tx);
    Y_.compute_at(out, yo).reorder(mi, xi, yi, tx, ty, mo, n).vectorize(mi, 16).unroll(xi).unroll(yi);
    s1_.compute_at(Y_, tx).vectorize(mi, 16).unroll(xi).unroll(j);
    specialize_activation(out, act);
  }

  // wino_f4x3_staged, for small maps with many channels (14x14 256 -> 256,
  // 28x28 128 -> 128): a task per row of tiles would stream all of the
  // transformed filters (36 x C x M) once per row. Here the input transform
  // runs once per layer, in parallel over rows of tiles, and each task is a
  // block of 32 output channels: its slice of the filters is read once, and
  // its GEMM, output transform and output rows stay on one core. GEMM
  // register tile: 32 channels x 4 x 2 tiles.
  void schedule_staged() {
    Var xo{"xo"}, xv{"xv"}, mb{"mb"}, mc{"mc"}, txo{"txo"}, txi{"txi"}, tyo{"tyo"}, tyi{"tyi"}, co{"co"}, ci{"ci"};
    // A few tiles across but many channels: the input transform runs with
    // channels in the vector, on a channel-innermost padded copy (one
    // transposition of the input; 4-lane tile vectors ran 16x slower).
    const std::vector<Var> pa = padded_.args();
    padded_.compute_root()
        .reorder_storage(pa[2], pa[0], pa[1], pa[3])
        .reorder(pa[2], pa[0], pa[1], pa[3])
        .vectorize(pa[2], 16, TailStrategy::ShiftInwards)
        .parallel(pa[1]);
    V_.compute_root()
        .reorder_storage(c, tx, ty, p, n)
        .split(c, co, ci, 16, TailStrategy::ShiftInwards)
        .reorder(ci, p, co, tx, ty, n)
        .vectorize(ci)
        .unroll(p)
        .parallel(ty);
    t1_.compute_at(V_, co).reorder_storage(c, i, l, tx, ty, n).vectorize(c).unroll(i).unroll(l);
    out.split(m, mb, mc, TM, TailStrategy::GuardWithIf)
        .split(x, xo, xv, 16, TailStrategy::GuardWithIf)
        .reorder(xv, xo, y, mc, mb, n)
        .vectorize(xv)
        .parallel(mb);
    // On AVX2 (see wide_registers) the register tile is 16 channels (mh:
    // the block's halves) x 4 x 1 tiles.
    const bool wide = wide_registers(get_target());
    const int RM = wide ? TM : 16, TY = wide ? 2 : 1;
    Var mh{"mh"};
    M_.compute_at(out, mb)
        .split(tx, txo, txi, 4, TailStrategy::RoundUp)
        .split(ty, tyo, tyi, TY, TailStrategy::RoundUp);
    if (wide) {
      M_.reorder(mi, txi, tyi, txo, tyo, p, mo, n);
    } else {
      M_.split(mi, mh, mi, RM).reorder(mi, txi, tyi, mh, txo, tyo, p, mo, n);
    }
    M_.vectorize(mi, 16).unroll(mi).unroll(txi).unroll(tyi);
    acc_.compute_at(M_, wide ? txo : mh).store_in(MemoryType::Register);
    acc_.bound_extent(mi, RM).vectorize(mi, 16).unroll(mi).unroll(tx).unroll(ty);
    acc_.update().reorder(mi, tx, ty, rc, p, mo, n).vectorize(mi, 16).unroll(mi).unroll(tx).unroll(ty);
    Y_.compute_at(out, mb).reorder(mi, xi, yi, tx, ty, mo, n).vectorize(mi, 16).unroll(xi).unroll(yi);
    s1_.compute_at(Y_, tx).vectorize(mi, 16).unroll(xi).unroll(j);
    specialize_activation(out, act);
  }

 private:
  static constexpr int TM = 32;  // output channels per weight block (kWinogradTileM)
  Func padded_{"padded"}, t1_{"t1"}, V_{"V"}, acc_{"acc"}, M_{"M"}, s1_{"s1"}, Y_{"Y"};
  DensePadded dense_;  // padded_'s stages (tile-row schedule)
  RDom rc;
};

// ---------------------------------------------------------------------------
// Depthwise convolution (group == channels, one filter per channel):
//   out(x, y, c, n) = act(bias(c) + sum_{kx,ky} w(kx, ky, c) * in(x*sx + kx*dx - px, ..., c, n))
// Weights are (kx, ky, c), as ONNX stores them for one input channel per group.
class DepthwiseConv2D : public Generator<DepthwiseConv2D> {
 public:
  GeneratorParam<bool> wide_rows{"wide_rows", false};  // input rows of 64 and more (schedule_plane_rows)
  Input<Buffer<float, 4>> input{"input"};
  Input<Buffer<float, 3>> weights{"weights"};
  Input<Buffer<float, 1>> bias{"bias"};
  Input<int> stride_x{"stride_x"}, stride_y{"stride_y"};
  Input<int> pad_x{"pad_x"}, pad_y{"pad_y"};
  Input<int> dil_x{"dil_x"}, dil_y{"dil_y"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 4>> out{"out"};

  Var x{"x"}, y{"y"}, c{"c"}, n{"n"};

  void generate() {
    DensePadded padded = dense_padded(input, input.dim(0).extent(), input.dim(1).extent(), 0.f, "padded");
    RDom r(0, weights.dim(0).extent(), 0, weights.dim(1).extent(), "r");
    Func conv{"dwconv"};
    conv(x, y, c, n) = bias(c);
    conv(x, y, c, n) += weights(r.x, r.y, c) *
                        padded.f(window_col(x, r.x, stride_x, dil_x, pad_x, wide_rows),
                                 window_row(y, r.y, stride_y, dil_y, pad_y, wide_rows), c, n);
    out(x, y, c, n) = activate(conv(x, y, c, n), act, alpha, beta);

    // Depthwise layers end in ReLU, ReLU6 (Clip) or SiLU (EfficientNet).
    schedule_plane_rows(out, conv, r, padded, weights.dim(0).extent(), weights.dim(1).extent(), stride_x, stride_y, act,
                        kernel_activations::kPlanarDepthwise, wide_rows);
  }
};

// ---------------------------------------------------------------------------
// Depthwise convolution vectorized over channels (depthwise_channel_vector),
// for small maps: the planar kernel vectorizes along a row, and on 7x7 to
// 28x28 maps most of each vector is an overlap shifted inwards or a short
// tail (EfficientNet-B0's 7x7 5x5 layers ran at ~9 GFLOP/s). A task is one
// block of 16 channels (one AVX-512 vector) of one image: it gathers the
// block's planes into a padded block stored channels innermost, then
// computes tiles of 8 consecutive output pixels (spanning rows; the last
// tile shifted inwards) in 8 vector accumulators, one FMA per tap and pixel,
// and scatters them back to the planes. Weights are packed at load as
// (ci, kx, ky, cb), zero beyond the channels; bias likewise. out is
// (p, c, n) over the flattened plane, which must hold at least 8 pixels.
class DepthwiseConv2DChannelVector : public Generator<DepthwiseConv2DChannelVector> {
 public:
  Input<Buffer<float, 4>> input{"input"};
  Input<Buffer<float, 4>> weights{"weights"};
  Input<Buffer<float, 1>> bias{"bias"};
  Input<int> out_w{"out_w"};
  Input<int> stride_x{"stride_x"}, stride_y{"stride_y"};
  Input<int> pad_x{"pad_x"}, pad_y{"pad_y"};
  Input<int> dil_x{"dil_x"}, dil_y{"dil_y"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 3>> out{"out"};

  Var p{"p"}, c{"c"}, n{"n"}, ci{"ci"}, cb{"cb"}, x{"x"}, y{"y"};

  void generate() {
    constexpr int B = 16, TP = 8;  // kDepthwiseChannelBlock, kDepthwiseChannelVectorTileP
    const Expr W = input.dim(0).extent(), H = input.dim(1).extent(), C = input.dim(2).extent();
    Func block{"block"};
    block(ci, x, y, cb, n) = select(x >= 0 && x < W && y >= 0 && y < H,
                                    input(clamp(x, 0, W - 1), clamp(y, 0, H - 1), min(cb * B + ci, C - 1), n), 0.f);
    RDom r(0, weights.dim(1).extent(), 0, weights.dim(2).extent(), "r");
    Func conv{"conv"};
    const Expr ox = p % out_w, oy = p / out_w;
    conv(ci, p, cb, n) = bias(cb * B + ci);
    conv(ci, p, cb, n) += weights(ci, r.x, r.y, cb) *
                          block(ci, ox * stride_x + r.x * dil_x - pad_x, oy * stride_y + r.y * dil_y - pad_y, cb, n);
    out(p, c, n) = activate(conv(c % B, p, c / B, n), act, alpha, beta);
    out.dim(1).set_min(0);

    // One task per (channel block, image); the activations that follow
    // depthwise layers (none, ReLU, ReLU6, HardSwish, SiLU) without the
    // select chain's other arms.
    Var po{"po"}, pi{"pi"}, co{"co"}, cv{"cv"}, task{"task"};
    auto order = [&](Stage st) {
      st.split(p, po, pi, TP, TailStrategy::ShiftInwards)
          .split(c, co, cv, B, TailStrategy::GuardWithIf)
          .reorder(cv, pi, po, co, n)
          .fuse(co, n, task)
          .parallel(task)
          .vectorize(cv, B)
          .unroll(pi);
    };
    for (int kind : kSpecializedActivations) order(out.specialize(act == kind));
    order(out);
    conv.compute_at(out, po).bound_extent(ci, B).bound_extent(p, TP).bound_extent(cb, 1).bound_extent(n, 1);
    conv.vectorize(ci, B).unroll(p);
    conv.update().reorder(ci, p, r.x, r.y, cb, n).vectorize(ci, B).unroll(p);
    conv.store_in(MemoryType::Register);
    block.compute_at(out, task).bound_extent(ci, B).vectorize(ci, B);
  }
};

// ---------------------------------------------------------------------------
// Depthwise convolution over flattened planes (depthwise_flat), for stride 1
// with the output plane the input's size (MobileNet and EfficientNet blocks'
// "same" padding) on small maps. A plane of H rows of W is one row of P = H*W
// pixels, so every vector is 16 whole lanes wherever rows end: the planar
// kernel's 7- and 14-wide rows are mostly overlap and tail, and the channel
// vector kernel gathers planes into channel blocks and scatters them back.
// A tap (kx, ky) reads the plane shifted by dy*W + dx; the rows above and
// below are zeros (a padded copy of the plane), and the columns a shift
// carries across a row's end are zeroed once per tap column in `shifted`
// (kw copies of the plane), so the taps themselves are plain dense loads.
// input and out are (p, c, n); weights (kx, ky, c) as ONNX stores them.
class DepthwiseConv2DFlat : public Generator<DepthwiseConv2DFlat> {
 public:
  Input<Buffer<float, 3>> input{"input"};
  Input<Buffer<float, 3>> weights{"weights"};
  Input<Buffer<float, 1>> bias{"bias"};
  Input<int> width{"width"};
  Input<int> pad_x{"pad_x"}, pad_y{"pad_y"};
  Input<int> dil_x{"dil_x"}, dil_y{"dil_y"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 3>> out{"out"};

  Var q{"q"}, kx{"kx"}, p{"p"}, c{"c"}, n{"n"};

  void generate() {
    const Expr P = input.dim(0).extent();
    const Expr KW = weights.dim(0).extent(), KH = weights.dim(1).extent();
    RDom rp(0, P, "rp");
    Func plane{"plane"};
    plane(q, c, n) = 0.f;
    plane(rp, c, n) = input(rp, c, n);
    // The column of flattened position q (also above and below the plane),
    // once per call: a vector integer division by a run-time width would be
    // 16 scalar ones. Exact in float for planes of up to millions of pixels.
    Func column{"column"};
    column(q) = q - width * cast<int>(floor((cast<float>(q) + 0.5f) / cast<float>(width)));
    Func shifted{"shifted"};
    const Expr dx = kx * dil_x - pad_x;
    shifted(q, kx, c, n) = select(column(q) + dx >= 0 && column(q) + dx < width, plane(q + dx, c, n), 0.f);
    RDom r(0, KW, 0, KH, "r");
    Func conv{"conv"};
    conv(p, c, n) = bias(c);
    conv(p, c, n) += weights(r.x, r.y, c) * shifted(p + (r.y * dil_y - pad_y) * width, r.x, c, n);
    out(p, c, n) = activate(conv(p, c, n), act, alpha, beta);
    out.dim(1).set_min(0);

    // Tasks of 8 planes; in a plane, tiles of 32 pixels (two vectors, the
    // last tile shifted inwards; 16 on planes below 32 pixels, which must
    // hold at least 16) accumulated in registers over the unrolled taps.
    constexpr int kPlanes = 8;
    Var t{"t"}, to{"to"}, po{"po"}, pi{"pi"}, pv{"pv"};
    auto tiles = [&](Stage st, int tile) {
      st.split(p, po, pi, tile, TailStrategy::ShiftInwards).split(pi, pi, pv, 16).vectorize(pv).unroll(pi);
    };
    auto order = [&](Stage st) {
      st.fuse(c, n, t).split(t, to, t, kPlanes, TailStrategy::GuardWithIf).parallel(to);
      tiles(st.specialize(P >= 32), 32);
      tiles(st, 16);
    };
    for (int kind : kSpecializedActivations) order(out.specialize(act == kind));
    order(out);
    // Registers need a constant extent: 32 (on planes below 32 pixels the
    // second vector is computed and dropped).
    conv.compute_at(out, po).bound_extent(p, 32).bound_extent(c, 1).bound_extent(n, 1).vectorize(p, 16).unroll(p);
    Stage taps = conv.update();
    taps.reorder(p, r.x, r.y).vectorize(p, 16).unroll(p);
    taps.specialize(KW == 3 && KH == 3).unroll(r.x).unroll(r.y);
    taps.specialize(KW == 5 && KH == 5).unroll(r.x).unroll(r.y);
    conv.store_in(MemoryType::Register);
    // Per plane, on the stack: storage hoisted out of a task's planes would
    // give each plane its own copies (c is a dimension of them), out of L1.
    shifted.compute_at(out, t).store_in(MemoryType::Stack).vectorize(q, 16, TailStrategy::RoundUp);
    plane.compute_at(out, t).store_in(MemoryType::Stack).vectorize(q, 16, TailStrategy::RoundUp);
    RVar rpo{"rpo"}, rpi{"rpi"};
    plane.update().split(rp, rpo, rpi, 16, TailStrategy::GuardWithIf).vectorize(rpi);
    column.compute_root().vectorize(q, 16, TailStrategy::RoundUp);
  }
};

// ---------------------------------------------------------------------------
// Blocked channels (host_kernels.h, Blocked): between mobile layers the host
// holds [N, C, H, W] as (ci, x, y, cb, n), channel c = 16 cb + ci. Depthwise
// and pointwise kernels then load whole channel vectors: no row tails on 7-
// to 28-wide maps, no 2-strided loads at stride 2, no gathers into channel
// blocks and back (depthwise_channel_vector spent ~70% of its time there).

// Pointwise (1x1, stride 1, unpadded) convolution into blocked channels:
// out(mi, p, mb, n) = act(bias(m) + sum_c w(m, c) * in(c, p, n) [+ res]),
// m = 16 mb + mi, over the flattened plane p. The input is blocked (ci, p,
// cb, n) or, for the first layer of a blocked run, planar (p, c, n, 1).
// Register tile: kBlockedTile pixels (broadcast) x two channel vectors; the
// plane's last tile is shifted inwards (the plane holds at least one tile).
// Filters are PackedConv blocks of 32 output channels, (mi, c, mo).
class PointwiseBlocked : public Generator<PointwiseBlocked> {
 public:
  GeneratorParam<bool> blocked_input{"blocked_input", true};
  GeneratorParam<bool> residual{"residual", false};
  // Maps up to 28x28: a task is one group of output blocks over a run of
  // tiles_per_task pixel tiles, so that the group's filters are loaded once
  // per run rather than once per tile, and each thread reads only its groups'
  // filters (pixel tiles alone also make just 7 tasks of a 7x7 map). Where
  // AVX-512's 32 registers hold it the group is 3 blocks (7 px x 48 ch, 21
  // accumulators; 10-25% faster than 2 blocks on 7x7 layers, one thread,
  // filters in L3 or memory) and the last group shifts inwards, so the output
  // has at least 3 blocks; elsewhere a pair, and on AVX2 one block (7 px x
  // 16 ch: 14 of its 16 registers; a pair spilled, see wide_registers).
  GeneratorParam<bool> channels_outer{"channels_outer", false};

  Input<Buffer<float, 4>> input{"input"};
  Input<Buffer<float, 3>> weights{"weights"};
  Input<Buffer<float, 1>> bias{"bias"};
  Input<Buffer<float, 4>> res{"res"};  // (mi, p, mb, n)
  Input<int> tiles_per_task{"tiles_per_task"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 4>> out{"out"};  // (mi, p, mb, n)

  Var mi{"mi"}, p{"p"}, mb{"mb"}, n{"n"};

  void generate() {
    constexpr int B = 16, TP = 7;  // kChannelBlock, kBlockedTile
    const int NB = !wide_registers(get_target()) ? 1 : channels_outer ? 3 : 2;
    RDom r(0, weights.dim(1).extent(), "r");
    const Expr x = blocked_input ? input(r % B, p, r / B, n) : input(p, r, n, 0);
    Func conv{"conv"};
    conv(mi, p, mb, n) = bias(mb * B + mi);
    conv(mi, p, mb, n) += weights(mi + (mb % 2) * B, r, mb / 2) * x;
    Expr v = conv(mi, p, mb, n);
    if (residual) v += res(mi, p, mb, n);
    out(mi, p, mb, n) = activate(v, act, alpha, beta);
    // Strides known when compiled (blocks of B channels pixel after pixel,
    // filters in pairs of blocks): a tile's loads and stores sit at constant
    // offsets from one address.
    out.dim(0).set_bounds(0, B);
    out.dim(1).set_stride(B);
    if (blocked_input) {
      input.dim(0).set_bounds(0, B);
      input.dim(1).set_stride(B);
    }
    res.dim(0).set_bounds(0, B);
    res.dim(1).set_stride(B);
    weights.dim(0).set_bounds(0, 2 * B);
    weights.dim(1).set_stride(2 * B);

    // Tasks are runs of tiles_per_task pixel tiles; a task walks every
    // output block for one tile before the next, so the tile's inputs stay
    // in L1 while the filters stream from L2. One task per tile spent more
    // time handing out tasks than computing on 14x14 maps.
    Var po{"po"}, pi{"pi"}, mbo{"mbo"}, mbi{"mbi"}, pt{"pt"}, task{"task"};
    auto order = [&](Stage st) {
      st.split(p, po, pi, TP, TailStrategy::ShiftInwards)
          .split(mb, mbo, mbi, NB, channels_outer ? TailStrategy::ShiftInwards : TailStrategy::GuardWithIf);
      if (channels_outer) {
        st.reorder(mi, pi, mbi, po, mbo, n)
            .split(po, pt, po, tiles_per_task, TailStrategy::GuardWithIf)
            .reorder(mi, pi, mbi, po, mbo, pt, n)
            .fuse(mbo, pt, task)
            .fuse(task, n, task);
      } else {
        st.reorder(mi, pi, mbi, mbo, po, n)
            .split(po, pt, po, tiles_per_task, TailStrategy::GuardWithIf)
            .fuse(pt, n, task);
      }
      st.parallel(task).vectorize(mi, B).unroll(pi).unroll(mbi);
    };
    for (int kind : kSpecializedActivations) order(out.specialize(act == kind));
    order(out);
    conv.compute_at(out, channels_outer ? po : mbo)
        .bound_extent(mi, B)
        .bound_extent(p, TP)
        .bound_extent(mb, NB)
        .bound_extent(n, 1);
    conv.vectorize(mi, B).unroll(p).unroll(mb);
    // Input channels 16 at a time, unrolled: each step's broadcasts and
    // filter loads at constant offsets (one at a time, every step computed
    // r % 16 and r / 16 and an address per pixel: 37 instructions for 14 FMAs).
    RVar ro{"ro"}, ri{"ri"};
    conv.update()
        .split(r, ro, ri, B, TailStrategy::GuardWithIf)
        .reorder(mi, p, mb, ri, ro, n)
        .vectorize(mi, B)
        .unroll(p)
        .unroll(mb)
        .unroll(ri);
    conv.store_in(MemoryType::Register);
  }
};

// Depthwise convolution on blocked channels: out(ci, x, y, cb, n) =
// act(bias(c) + sum_{kx,ky} w(ci, kx, ky, cb) * in(ci, x*sx + kx*dx - px,
// y*sy + ky*dy - py, cb, n)), zero outside the image. Every tap is one
// dense channel-vector load at any stride; the padding is not a copy (a
// padded copy of each plane cost as much as the taps): rows outside the image
// are left out of the tap-row loop (its bounds trimmed per output row, no test
// per tap; before, a select and four compares per tap made MobileNet v2's
// blocked depthwise layers 1.25x slower), columns outside are a select.
// Tiles of kBlockedTile pixels along a row (the row's last shifted inwards:
// rows hold at least one tile) in registers; tasks of rows_per_task rows of
// one block, blocks innermost (the host's threads take bands of rows). Filters are PackedDepthwise's (ci, kx, ky, cb).
class DepthwiseBlocked : public Generator<DepthwiseBlocked> {
 public:
  // 0: any window, stride and dilation. 3 or 5: a k x k window at stride 2
  // without dilation, known when compiled (the stride and dilation inputs are
  // then ignored): strided taps at constant offsets, in code of their own
  // without multiplying the specializations of the generic kernel.
  GeneratorParam<int> stride2_window{"stride2_window", 0};

  Input<Buffer<float, 5>> input{"input"};
  Input<Buffer<float, 4>> weights{"weights"};
  Input<Buffer<float, 1>> bias{"bias"};
  Input<int> stride_x{"stride_x"}, stride_y{"stride_y"};
  Input<int> pad_x{"pad_x"}, pad_y{"pad_y"};
  Input<int> dil_x{"dil_x"}, dil_y{"dil_y"};
  Input<int> rows_per_task{"rows_per_task"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 5>> out{"out"};

  Var ci{"ci"}, x{"x"}, y{"y"}, cb{"cb"}, n{"n"};

  void generate() {
    constexpr int B = 16, TX = 7;
    const Expr W = input.dim(1).extent(), H = input.dim(2).extent();
    const int k2 = stride2_window;
    const Expr KW = k2 ? Expr(k2) : weights.dim(1).extent(), KH = k2 ? Expr(k2) : weights.dim(2).extent();
    const Expr sx = k2 ? Expr(2) : Expr(stride_x), sy = k2 ? Expr(2) : Expr(stride_y);
    const Expr dx = k2 ? Expr(1) : Expr(dil_x), dy = k2 ? Expr(1) : Expr(dil_y);
    Func padded{"padded"};
    padded(ci, x, y, cb, n) = select(x >= 0 && x < W, input(ci, clamp(x, 0, W - 1), clamp(y, 0, H - 1), cb, n), 0.f);
    RDom r(0, KW, 0, KH, "r");
    const Expr iy = y * sy + r.y * dy - pad_y;
    r.where(iy >= 0 && iy < H);
    Func conv{"conv"};
    conv(ci, x, y, cb, n) = bias(cb * B + ci);
    conv(ci, x, y, cb, n) += weights(ci, r.x, r.y, cb) * padded(ci, x * sx + r.x * dx - pad_x, iy, cb, n);
    if (k2) {
      weights.dim(1).set_bounds(0, k2);
      weights.dim(2).set_bounds(0, k2);
    }
    out(ci, x, y, cb, n) = activate(conv(ci, x, y, cb, n), act, alpha, beta);
    // Blocks of B channels, pixel after pixel: strides known when compiled,
    // so a tile's loads and stores sit at constant offsets from one address.
    out.dim(0).set_bounds(0, B);
    out.dim(1).set_stride(B);
    input.dim(0).set_bounds(0, B);
    input.dim(1).set_stride(B);
    weights.dim(0).set_bounds(0, B);
    weights.dim(1).set_stride(B);

    Var xo{"xo"}, xi{"xi"}, yo{"yo"}, yi{"yi"}, task{"task"};
    auto order = [&](Stage st) {
      st.split(x, xo, xi, TX, TailStrategy::ShiftInwards)
          .split(y, yo, yi, rows_per_task, TailStrategy::GuardWithIf)
          .reorder(ci, xi, xo, yi, cb, yo, n)
          .fuse(cb, yo, task)
          .fuse(task, n, task)
          .parallel(task)
          .vectorize(ci, B)
          .unroll(xi);
    };
    for (int kind : kSpecializedActivations) order(out.specialize(act == kind));
    order(out);
    padded.compute_inline();
    conv.compute_at(out, xo).bound_extent(ci, B).bound_extent(x, TX).bound_extent(y, 1).bound_extent(cb, 1);
    conv.bound_extent(n, 1).vectorize(ci, B).unroll(x);
    conv.store_in(MemoryType::Register);
    // 3x3 and 5x5 windows unroll the taps of one window row, a loop over
    // the rows: at stride 1 neighbouring pixels' taps load the same vectors
    // once, and a row's 7 accumulators, inputs and filters fit the registers
    // (fully unrolled, a 5x5 window's 55 inputs were loaded ahead and spilled
    // to the stack: 1.1-1.5x the time on a Zen 4).
    Stage taps = conv.update();
    taps.reorder(ci, x, r.x, r.y, y, cb, n).vectorize(ci, B).unroll(x);
    if (k2) {
      taps.unroll(r.x);
      return;
    }
    taps.specialize(KW == 3 && KH == 3 && stride_x == 1 && dil_x == 1).unroll(r.x);
    taps.specialize(KW == 3 && KH == 3).unroll(r.x);
    taps.specialize(KW == 5 && KH == 5 && stride_x == 1 && dil_x == 1).unroll(r.x);
    taps.specialize(KW == 5 && KH == 5).unroll(r.x);
  }
};

// ---------------------------------------------------------------------------
// Max / average pooling, 2-D, with pads, dilations and ceil_mode windows.
// The window of output (x, y) starts at x*sx - px; taps outside the input
// never count for max; for average the divisor is the number of taps inside
// [lo, hi) per axis, where [lo, hi) is the input ([0, W)) or the padded input
// ([-px, W + px_end)) with count_include_pad.
class Pool2D : public Generator<Pool2D> {
 public:
  GeneratorParam<bool> is_max{"is_max", true};
  GeneratorParam<bool> wide_rows{"wide_rows", false};  // input rows of 64 and more (schedule_plane_rows)

  Input<Buffer<float, 4>> input{"input"};
  Input<int> kernel_x{"kernel_x"}, kernel_y{"kernel_y"};
  Input<int> stride_x{"stride_x"}, stride_y{"stride_y"};
  Input<int> pad_x{"pad_x"}, pad_y{"pad_y"};
  Input<int> pad_x_end{"pad_x_end"}, pad_y_end{"pad_y_end"};
  Input<int> dil_x{"dil_x"}, dil_y{"dil_y"};
  Input<bool> count_include_pad{"count_include_pad"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 4>> out{"out"};

  Var x{"x"}, y{"y"}, c{"c"}, n{"n"};

  void generate() {
    const Expr W = input.dim(0).extent(), H = input.dim(1).extent();
    const float lowest = -std::numeric_limits<float>::max();
    DensePadded padded = dense_padded(input, W, H, is_max ? lowest : 0.f, "padded");
    RDom r(0, kernel_x, 0, kernel_y, "r");
    Expr ix = window_col(x, r.x, stride_x, dil_x, pad_x, wide_rows);
    Expr iy = window_row(y, r.y, stride_y, dil_y, pad_y, wide_rows);
    Func pooled{"pooled"};
    if (is_max) {
      pooled(x, y, c, n) = lowest;
      pooled(x, y, c, n) = max(pooled(x, y, c, n), padded.f(ix, iy, c, n));
      out(x, y, c, n) = activate(pooled(x, y, c, n), act, alpha, beta);
    } else {
      // Taps of the window at `start` along one axis inside [lo, hi).
      RDom kx(0, kernel_x, "kx"), ky(0, kernel_y, "ky");
      Func count_x{"count_x"}, count_y{"count_y"};
      Expr lo_x = select(count_include_pad, -pad_x, 0), hi_x = select(count_include_pad, W + pad_x_end, W);
      Expr lo_y = select(count_include_pad, -pad_y, 0), hi_y = select(count_include_pad, H + pad_y_end, H);
      Expr px = x * stride_x + kx * dil_x - pad_x, py = y * stride_y + ky * dil_y - pad_y;
      count_x(x) = 0;
      count_x(x) += select(px >= lo_x && px < hi_x, 1, 0);
      count_y(y) = 0;
      count_y(y) += select(py >= lo_y && py < hi_y, 1, 0);
      pooled(x, y, c, n) = 0.f;
      pooled(x, y, c, n) += padded.f(ix, iy, c, n);
      // 1 / taps per axis (0 for a window wholly outside): a multiply per
      // output vector instead of a division.
      Func inv_x{"inv_x"}, inv_y{"inv_y"};
      inv_x(x) = select(count_x(x) > 0, 1.f / cast<float>(count_x(x)), 0.f);
      inv_y(y) = select(count_y(y) > 0, 1.f / cast<float>(count_y(y)), 0.f);
      out(x, y, c, n) = activate(pooled(x, y, c, n) * inv_x(x) * inv_y(y), act, alpha, beta);
      count_x.compute_root();
      count_y.compute_root();
      inv_x.compute_root();
      inv_y.compute_root();
    }
    // CNNs pool after their activation, so a pool's own is almost always
    // none; any other runs correctly in the generic epilogue.
    schedule_plane_rows(out, pooled, r, padded, kernel_x, kernel_y, stride_x, stride_y, act, kernel_activations::kPool,
                        wide_rows);
  }
};

// ---------------------------------------------------------------------------
// Global average pooling over the (flattened) spatial plane: in (p, c, n).
class GlobalAvgPool : public Generator<GlobalAvgPool> {
 public:
  Input<Buffer<float, 3>> input{"input"};
  Output<Buffer<float, 2>> out{"out"};
  Var c{"c"}, n{"n"}, l{"l"};

  void generate() {
    const Expr P = input.dim(0).extent();
    // Sum in 8 lanes, then across lanes.
    Func partial{"partial"};
    RDom r(0, (P + 7) / 8, "r");
    Func clamped = constant_exterior(input, 0.f, {{0, P}, {Expr(), Expr()}, {Expr(), Expr()}});
    partial(l, c, n) = 0.f;
    partial(l, c, n) += clamped(r * 8 + l, c, n);
    RDom lanes(0, 8, "lanes");
    out(c, n) = sum(partial(lanes, c, n)) / cast<float>(P);
    Var co{"co"}, ci{"ci"};
    out.split(c, co, ci, 16, TailStrategy::GuardWithIf).parallel(co);
    partial.compute_at(out, ci).bound_extent(l, 8).vectorize(l);
    partial.update().vectorize(l);
  }
};

// ---------------------------------------------------------------------------
// GEMM with a bias and an activation: out(j, i) = act(bias(j, i) +
// sum_k a(k, i) * b(j, k)). a is [N, K], b is [K, M] (repacked at load,
// alpha folded in), bias is [N, M] with any strides (0 to broadcast).
class Gemm : public Generator<Gemm> {
 public:
  // Rows of accumulators per task: 4 for a classifier's few rows; 12 (24
  // AVX-512 accumulators) for a linear layer over many tokens, where 4 rows
  // made the kernel wait on loads of b.
  GeneratorParam<int> tile_rows{"tile_rows", 4};
  Input<Buffer<float, 2>> a{"a"};
  Input<Buffer<float, 3>> b{"b"};  // (j % 32, k, j / 32): one contiguous panel per 32 columns
  Input<Buffer<float, 2>> bias{"bias"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 2>> out{"out"};
  Var j{"j"}, i{"i"};

  void generate() {
    // a packed once per call, each tile of tile_rows rows as [k][row]: the
    // inner loop then reads its rows' values at constant offsets from one
    // pointer. (Read from the rows in place, the rows' twelve addresses
    // were computed with vector integer ops each k, on the FMA ports.) Rows
    // past the end of a (the last row tile) read its last row.
    RDom k(0, a.dim(0).extent(), "k");
    Func acc{"acc"}, a_tiles{"a_tiles"};
    Var jc{"jc"}, jp{"jp"};  // column within its panel, panel
    Var r{"r"}, kk{"kk"}, tile{"tile"};
    a_tiles(r, kk, tile) = a(kk, min(tile * tile_rows + r, a.dim(1).max()));
    acc(jc, jp, i) = bias(jp * 32 + jc, min(i, bias.dim(1).max()));
    acc(jc, jp, i) += a_tiles(i % tile_rows, k, i / tile_rows) * b(jc, k, jp);
    out(j, i) = activate(acc(j % 32, j / 32, i), act, alpha, beta);
    bias.dim(0).set_stride(Expr());
    out.dim(0).set_min(0);
    out.dim(1).set_min(0);  // row tiles start at multiples of tile_rows
    b.dim(0).set_extent(32);

    // gemm_tiled: 32 columns (one panel of b, read front to back) x
    // tile_rows rows of accumulators per task. (b as [k, m] was strided by a
    // whole row per k: a classifier's 8 MB of weights read at ~20 GB/s, a
    // page per k.) Consecutive tasks walk down the rows of one panel, so a
    // panel (K x 32 floats) is read from memory once and then from cache; a
    // walk along the columns re-read all of b (MBs) for every row tile.
    Var jo{"jo"}, ji{"ji"}, io{"io"}, ii{"ii"}, t{"t"};
    out.split(j, jo, ji, 32, TailStrategy::GuardWithIf)
        .split(i, io, ii, tile_rows, TailStrategy::GuardWithIf)
        .reorder(ji, ii, io, jo)
        .fuse(io, jo, t)
        .parallel(t)
        .vectorize(ji, 16);
    // One panel per task: with the panel's extent known, the accumulators'
    // addresses are constants and LLVM keeps all of them in registers
    // (without it, every FMA loaded and stored its accumulator).
    acc.compute_at(out, t).bound_extent(jc, 32).bound_extent(jp, 1).bound_extent(i, tile_rows);
    a_tiles.compute_root().bound(r, 0, tile_rows).parallel(tile).unroll(r);
    acc.vectorize(jc, 16).unroll(jc).unroll(i);
    acc.update().reorder(jc, i, k, jp).vectorize(jc, 16).unroll(jc).unroll(i);
    specialize_activation(out, act);
    out.specialize(act == 8);  // GELU: the MLPs of ConvNeXt and the transformers
  }
};

// out(j, 0) = act(bias(j) + sum_k a(k, 0) * b(j % 32, k, j / 32)): one row,
// a classifier at batch 1 (MobileNet's 1280 -> 1000). Its filters (5 MB)
// are the whole cost, streamed once per inference; the GEMM's tiles of 4
// rows repeat the one row 4 times and chain each panel's 2 accumulators
// through every k. Here a task walks one panel (the GEMM's packing) with k
// split by 4 into 4 partial sums (8 accumulators, independent chains),
// added at the end.
class Gemv : public Generator<Gemv> {
 public:
  Input<Buffer<float, 2>> a{"a"};
  Input<Buffer<float, 3>> b{"b"};  // (j % 32, k, j / 32), as Gemm's
  Input<Buffer<float, 2>> bias{"bias"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 2>> out{"out"};
  Var j{"j"}, i{"i"}, jc{"jc"}, jp{"jp"}, q{"q"};

  void generate() {
    RDom k(0, a.dim(0).extent(), "k");
    Func partial{"partial"};
    partial(jc, q, jp, i) = 0.f;
    partial(jc, k % 4, jp, i) += a(k, i) * b(jc, k, jp);
    const Expr jc_of = j % 32, jp_of = j / 32;
    const Expr sum = partial(jc_of, 0, jp_of, i) + partial(jc_of, 1, jp_of, i) + partial(jc_of, 2, jp_of, i) +
                     partial(jc_of, 3, jp_of, i);
    out(j, i) = activate(bias(j, 0) + sum, act, alpha, beta);
    bias.dim(0).set_stride(Expr());
    out.dim(0).set_min(0);
    b.dim(0).set_extent(32);

    Var jo{"jo"}, ji{"ji"};
    out.split(j, jo, ji, 32, TailStrategy::GuardWithIf).reorder(ji, i, jo).parallel(jo).vectorize(ji, 16);
    partial.compute_at(out, jo).bound_extent(jc, 32).bound_extent(q, 4).bound_extent(jp, 1).bound_extent(i, 1);
    partial.vectorize(jc, 16).unroll(jc).unroll(q);
    RVar ko{"ko"}, ki{"ki"};
    partial.update()
        .split(k, ko, ki, 4, TailStrategy::GuardWithIf)
        .reorder(jc, ki, ko, jp, i)
        .vectorize(jc, 16)
        .unroll(jc)
        .unroll(ki);
    partial.store_in(MemoryType::Register);
    specialize_activation(out, act);
  }
};

// ---------------------------------------------------------------------------
// Broadcasting binary op with an activation, rank <= 4; operands broadcast
// through zero strides. op: 0 Add, 1 Sub, 2 Mul, 3 Div.
class Binary : public Generator<Binary> {
 public:
  Input<Buffer<float, 4>> a{"a"};
  Input<Buffer<float, 4>> b{"b"};
  Input<int> op{"op"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 4>> out{"out"};
  Var x{"x"}, y{"y"}, z{"z"}, w{"w"};

  void generate() {
    Expr va = a(x, y, z, w), vb = b(x, y, z, w);
    Expr v = select(op == 0, va + vb, op == 1, va - vb, op == 2, va * vb, va / vb);
    out(x, y, z, w) = activate(v, act, alpha, beta);
    a.dim(0).set_stride(Expr());
    b.dim(0).set_stride(Expr());

    // binary_rows: rows in parallel, x vectorized. Specialized on the
    // operands' strides along x (both dense, or one constant along the rows:
    // a scalar, a per-channel value; the generic path loads element by
    // element), and within those on the op and on no activation or ReLU: a
    // vector select computes every arm, so the generic code divided and ran
    // the activation chain (exp, erf) for every vector.
    Var xo{"xo"}, xi{"xi"}, t{"t"};
    out.fuse(y, z, t).fuse(t, w, t).parallel(t, 8, TailStrategy::GuardWithIf).split(x, xo, xi, 16, TailStrategy::GuardWithIf).vectorize(xi);
    auto ops = [&](Stage st) {
      for (int k = 0; k < 4; ++k) {
        Stage one = st.specialize(op == k);
        one.specialize(act == 0);
        one.specialize(act == 1);
      }
    };
    ops(out.specialize(a.dim(0).stride() == 1 && b.dim(0).stride() == 1));
    ops(out.specialize(a.dim(0).stride() == 1 && b.dim(0).stride() == 0));
    ops(out.specialize(a.dim(0).stride() == 0 && b.dim(0).stride() == 1));
  }
};

// ---------------------------------------------------------------------------
// Per-channel affine with an activation: out = act(in * scale(c) + shift(c)).
// Standalone BatchNormalization, standalone activations (scale 1, shift 0),
// and squeeze-and-excitation gates (the plane as one row, shift 0).
class ChannelAffine : public Generator<ChannelAffine> {
 public:
  Input<Buffer<float, 4>> input{"input"};
  Input<Buffer<float, 1>> scale{"scale"};
  Input<Buffer<float, 1>> shift{"shift"};
  Input<int> act{"act"};
  Input<float> alpha{"alpha"}, beta{"beta"};
  Output<Buffer<float, 4>> out{"out"};
  Var x{"x"}, y{"y"}, c{"c"}, n{"n"};

  void generate() {
    out(x, y, c, n) = activate(input(x, y, c, n) * scale(c) + shift(c), act, alpha, beta);
    Var xo{"xo"}, xi{"xi"}, t{"t"};
    out.fuse(y, c, t).fuse(t, n, t).parallel(t, 8, TailStrategy::GuardWithIf).split(x, xo, xi, 16, TailStrategy::GuardWithIf).vectorize(xi);
    // Squeeze-and-excitation gates have no activation; unspecialized, they
    // ran the whole select chain (exp and erf included) for every vector.
    specialize_activation(out, act);
  }
};

// ---------------------------------------------------------------------------
// Pad, rank <= 4: out(x, ...) = in(x - begin_x, ...) with the input extended
// by mode: 0 constant `value`, 1 reflect (ONNX: mirror without repeating the
// edge), 2 edge.
class Pad : public Generator<Pad> {
 public:
  Input<Buffer<float, 4>> input{"input"};
  Input<int> b0{"b0"}, b1{"b1"}, b2{"b2"}, b3{"b3"};
  Input<int> mode{"mode"};
  Input<float> value{"value"};
  Output<Buffer<float, 4>> out{"out"};
  Var x{"x"}, y{"y"}, z{"z"}, w{"w"};

  void generate() {
    Region all = {{0, input.dim(0).extent()}, {0, input.dim(1).extent()}, {0, input.dim(2).extent()},
                  {0, input.dim(3).extent()}};
    Func c = BoundaryConditions::constant_exterior(input, value, all);
    Func r = BoundaryConditions::mirror_interior(input, all);
    Func e = BoundaryConditions::repeat_edge(input, all);
    Expr ix = x - b0, iy = y - b1, iz = z - b2, iw = w - b3;
    out(x, y, z, w) = select(mode == 0, c(ix, iy, iz, iw), mode == 1, r(ix, iy, iz, iw), e(ix, iy, iz, iw));
    Var xo{"xo"}, xi{"xi"}, t{"t"};
    out.fuse(y, z, t).fuse(t, w, t).parallel(t, 8, TailStrategy::GuardWithIf)
        .split(x, xo, xi, 8, TailStrategy::GuardWithIf).vectorize(xi);
    out.specialize(mode == 0);
  }
};

// A reduction along a row of n positions in 16 lanes: lanes(l, args...)
// takes every 16th position (term(at) for at = chunk * 16 + l; positions past
// the end are clamped for a max, masked for a sum), `total` reduces across
// the lanes. One scalar chain per row took most of a row op's time.
enum class LaneOp { sum, max };
struct Lanes {
  Func lanes;
  Expr total;
};
Lanes reduce_in_lanes(const std::string& name, LaneOp op, Expr n, const std::vector<Var>& args,
                      const std::function<Expr(Expr at)>& term) {
  RDom chunk(0, (n + 15) / 16, name + "_chunk"), lane(0, 16, name + "_lane");
  Var l{name + "_l"};
  std::vector<Var> lv{l};
  lv.insert(lv.end(), args.begin(), args.end());
  std::vector<Expr> across{lane};
  across.insert(across.end(), args.begin(), args.end());
  Func f{name};
  const Expr at = chunk * 16 + l;
  if (op == LaneOp::max) {
    f(lv) = term(min(l, n - 1));
    f(lv) = max(f(lv), term(min(at, n - 1)));
  } else {
    f(lv) = 0.f;
    f(lv) += select(at < n, term(min(at, n - 1)), 0.f);
  }
  f.vectorize(l);
  f.update().vectorize(l);
  return {f, op == LaneOp::max ? maximum(f(across)) : sum(f(across))};
}

// ---------------------------------------------------------------------------
// LayerNormalization over rows of `len` contiguous elements (a transformer's
// or ConvNeXt's tokens): out = (x - mean) / sqrt(var + eps) * scale + bias,
// mean and variance (of the deviations, two passes) reduced in 16 lanes.
// It ran as a scalar loop on one thread (0.4 ms per ConvNeXt block).
class LayerNormRows : public Generator<LayerNormRows> {
 public:
  Input<Buffer<float, 2>> input{"input"};  // (x, row)
  Input<Buffer<float, 1>> scale{"scale"};
  Input<Buffer<float, 1>> bias{"bias"};
  Input<float> eps{"eps"};
  Output<Buffer<float, 2>> out{"out"};
  Var x{"x"}, r{"r"};

  void generate() {
    const Expr n = input.dim(0).extent();
    Func mean{"mean"}, inv{"inv"};
    const Lanes sum16 = reduce_in_lanes("sum16", LaneOp::sum, n, {r}, [&](Expr at) { return input(at, r); });
    mean(r) = sum16.total / cast<float>(n);
    const Lanes sq16 = reduce_in_lanes("sq16", LaneOp::sum, n, {r}, [&](Expr at) {
      const Expr d = input(at, r) - mean(r);
      return d * d;
    });
    inv(r) = 1.f / sqrt(sq16.total / cast<float>(n) + eps);
    out(x, r) = (input(x, r) - mean(r)) * inv(r) * scale(x) + bias(x);

    Var ro{"ro"}, ri{"ri"};
    out.split(r, ro, ri, 4, TailStrategy::GuardWithIf).parallel(ro).vectorize(x, 16, TailStrategy::GuardWithIf);
    for (Func f : {sum16.lanes, sq16.lanes, mean, inv}) f.compute_at(out, ri);
  }
};

// ---------------------------------------------------------------------------
// Softmax along the middle axis of (inner, axis, outer).
class Softmax : public Generator<Softmax> {
 public:
  // rows: the axis is innermost (a classifier's logits, attention's rows),
  // vectorized along it, reductions included; else vectorized across the
  // inner positions (a segmentation map's channels). Scalar, attention's
  // softmax took 3 ms of every ViT-B/16 layer.
  GeneratorParam<bool> rows{"rows", false};
  Input<Buffer<float, 3>> input{"input"};
  Output<Buffer<float, 3>> out{"out"};
  Var i{"i"}, a{"a"}, o{"o"};

  void generate() {
    const Expr n = input.dim(1).extent();
    Func mx{"mx"}, e{"e"}, total{"total"};
    if (rows) {
      // The row's max and sum in 16 lanes (reduce_in_lanes): one scalar
      // chain each took ~2/3 of the time.
      const Lanes mx16 = reduce_in_lanes("mx16", LaneOp::max, n, {i, o}, [&](Expr at) { return input(i, at, o); });
      mx(i, o) = mx16.total;
      e(i, a, o) = exp(input(i, a, o) - mx(i, o));
      const Lanes sum16 = reduce_in_lanes("sum16", LaneOp::sum, n, {i, o}, [&](Expr at) { return e(i, at, o); });
      total(i, o) = sum16.total;
      out(i, a, o) = e(i, a, o) * (1.f / total(i, o));
      // Rows are dense (stride 1): without saying so, every vector along a
      // row was a gather.
      input.dim(0).set_extent(1);
      input.dim(1).set_stride(1);
      out.dim(0).set_extent(1);
      out.dim(1).set_stride(1);
      out.parallel(o).vectorize(a, 16, TailStrategy::GuardWithIf);
      for (Func f : {mx, e, total, mx16.lanes, sum16.lanes}) f.compute_at(out, o);
      e.vectorize(a, 16, TailStrategy::GuardWithIf);
      return;
    }
    RDom r(0, n, "r");
    mx(i, o) = maximum(input(i, r, o));
    e(i, a, o) = exp(input(i, a, o) - mx(i, o));
    total(i, o) = sum(e(i, r, o));
    out(i, a, o) = e(i, a, o) / total(i, o);
    out.parallel(o);
    mx.compute_at(out, o);
    e.compute_at(out, o);
    total.compute_at(out, o);
    out.vectorize(i, 16, TailStrategy::GuardWithIf);
    e.vectorize(i, 16, TailStrategy::GuardWithIf);
    mx.vectorize(i, 16, TailStrategy::GuardWithIf);
    total.vectorize(i, 16, TailStrategy::GuardWithIf);
  }
};

}  // namespace

HALIDE_REGISTER_GENERATOR(Conv2D, vkf_conv2d)
HALIDE_REGISTER_GENERATOR(Conv2DChannelVector, vkf_conv2d_mvec)
HALIDE_REGISTER_GENERATOR(Conv2DChannelChunks, vkf_conv2d_chunks)
HALIDE_REGISTER_GENERATOR(PointwiseConv, vkf_pointwise_conv)
HALIDE_REGISTER_GENERATOR(WinogradConv, vkf_winograd_f4x3)
HALIDE_REGISTER_GENERATOR(DepthwiseConv2D, vkf_dwconv2d)
HALIDE_REGISTER_GENERATOR(DepthwiseConv2DChannelVector, vkf_dwconv2d_cvec)
HALIDE_REGISTER_GENERATOR(DepthwiseConv2DFlat, vkf_dwconv2d_flat)
HALIDE_REGISTER_GENERATOR(PointwiseBlocked, vkf_pointwise_blocked)
HALIDE_REGISTER_GENERATOR(DepthwiseBlocked, vkf_dwconv2d_blocked)
HALIDE_REGISTER_GENERATOR(Pool2D, vkf_pool2d)
HALIDE_REGISTER_GENERATOR(GlobalAvgPool, vkf_global_avgpool)
HALIDE_REGISTER_GENERATOR(Gemm, vkf_gemm)
HALIDE_REGISTER_GENERATOR(Gemv, vkf_gemv)
HALIDE_REGISTER_GENERATOR(Binary, vkf_binary)
HALIDE_REGISTER_GENERATOR(ChannelAffine, vkf_channel_affine)
HALIDE_REGISTER_GENERATOR(Softmax, vkf_softmax)
HALIDE_REGISTER_GENERATOR(LayerNormRows, vkf_layer_norm)
HALIDE_REGISTER_GENERATOR(Pad, vkf_pad4d)
