// codegen/halide/kernel_activations.h — which activations each host kernel
// family has code of its own for, in the numbering of the kernels' `act`
// input (0 none, 1 ReLU, 3 Clip, 6 HardSwish, 7 SiLU; generators.cpp's
// activate()). The generators specialize on these lists; the host runs any
// other activation after such a kernel as a second pass over its output
// (host_kernels.cpp, epilogue_in_kernel), so the two sides read one list.
// Each kind costs seconds of code generation per kernel and target.
#pragma once

namespace vkfuse::codegen::kernel_activations {

// conv_tiled (Conv2D's register-tiled schedule): none, ReLU (residual blocks).
inline constexpr int kConvTiled[] = {0, 1};
// conv_tiled without a residual, at stride 2 with rows outermost, as mobile
// stems run (3 input channels, 224x224): also their ReLU6, HardSwish and
// SiLU (the stems 5-8% faster than with the activation as a second pass,
// two threads, Zen 4).
inline constexpr int kConvTiledStem[] = {3, 6, 7};
// Whether conv_tiled (no residual) runs in that stem nest: one condition for
// the generator (Halide Exprs) and the host (ints and bools).
template <class Stride, class Flag>
auto in_stem_nest(const Stride& stride_x, const Flag& rows_outer) {
  return stride_x == 2 && rows_outer;
}
// The planar depthwise kernels (schedule_plane_rows): the ReLU and ReLU6
// that follow MobileNet's depthwise layers, the SiLU after EfficientNet's
// first.
inline constexpr int kPlanarDepthwise[] = {0, 1, 3, 7};
// The pools (schedule_plane_rows): graph/canonicalize fuses no activation
// into a pool, so none.
inline constexpr int kPool[] = {0};

}  // namespace vkfuse::codegen::kernel_activations
