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
// SiLU. As a pass over the stem's output they cost 0.03-0.15 ms a network.
inline constexpr int kConvTiledStem[] = {3, 6, 7};
// The planar depthwise kernels (schedule_plane_rows): the ReLU and ReLU6
// that follow MobileNet's depthwise layers, the SiLU after EfficientNet's
// first.
inline constexpr int kPlanarDepthwise[] = {0, 1, 3, 7};
// The pools (schedule_plane_rows): graph/canonicalize fuses no activation
// into a pool, so none.
inline constexpr int kPool[] = {0};

}  // namespace vkfuse::codegen::kernel_activations
