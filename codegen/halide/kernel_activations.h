// codegen/halide/kernel_activations.h — which activations each host kernel
// family has code of its own for, in the numbering of the kernels' `act`
// input (0 none, 1 ReLU, 3 Clip, 6 HardSwish, 7 SiLU; generators.cpp's
// activate()). The generators specialize on these lists; the host runs any
// other activation after such a kernel as a second pass over its output
// (host_kernels.cpp, epilogue_in_kernel), so the two sides read one list.
// Each kind costs seconds of code generation per kernel and target.
#pragma once

namespace vkfuse::codegen::kernel_activations {

// conv_tiled (Conv2D's register-tiled schedule): none, ReLU (residual blocks;
// mobile stems' ReLU6, HardSwish, SiLU run as the pass).
inline constexpr int kConvTiled[] = {0, 1};
// The planar depthwise kernels (schedule_plane_rows): the ReLU and ReLU6
// that follow MobileNet's depthwise layers.
inline constexpr int kPlanarDepthwise[] = {0, 1, 3};
// The pools (schedule_plane_rows): graph/canonicalize fuses no activation
// into a pool, so none.
inline constexpr int kPool[] = {0};

}  // namespace vkfuse::codegen::kernel_activations
