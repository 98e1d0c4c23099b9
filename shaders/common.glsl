// shaders/common.glsl — prepended to every vkfuse kernel, after the generated
// #defines (WG, GX, TOTAL, ...) and the activation functions act1/act2.
//
// Binding 0: the activation arena (every runtime tensor), once per operand
// slot: ARENA(k) is what slot k's offset pc.ok indexes. Each is the whole
// arena, unless it is larger than one storage buffer can address
// (maxStorageBufferRange): then each a window of it that holds the operand,
// pc.ok relative to the window. Binding 1: the
// weight block holding this kernel's packed parameters (each template
// declares the view it needs). Bindings 2 and 3: the same two buffers as
// uniform texel buffers (arena as R32F, weights as RGBA32F): on lavapipe a
// texel fetch is a branch-free gather, far cheaper than an SSBO load, so the
// hot loads of convolutions go through them where the device allows (TEXEL_X
// for the arena's, TEXEL_W for the weights').
// Binding 4: the weight block as RGBA16F, for kernels whose weights are
// stored in fp16 (--fp16; fp32 arithmetic).
// Push constants: element offsets o0..o7 of the kernel's operands, and the
// sizes d[] (TOTAL, and the map and channel sizes of convolutions), so that
// kernels that differ only in those share one pipeline.
#extension GL_EXT_control_flow_attributes : enable
layout(local_size_x = WG, local_size_y = 1, local_size_z = 1) in;
layout(std430, set = 0, binding = 0) buffer Arena { float v[]; } arena[8];
#define ARENA(k) arena[k].v
layout(set = 0, binding = 2) uniform samplerBuffer arena_tex;
layout(set = 0, binding = 3) uniform samplerBuffer weights_tex;
layout(set = 0, binding = 4) uniform samplerBuffer weights_h;  // RGBA16F: fp16 weights
layout(push_constant) uniform Slots {
  uint o0; uint o1; uint o2; uint o3; uint o4; uint o5; uint o6; uint o7;
  uint d[DIM_WORDS];  // sizes: d[0] is TOTAL, then those the kernel's #defines name (codegen Defines::dim)
} pc;

// Linear invocation index over a (GX x groups_y) grid of workgroups.
uint global_id() { return gl_WorkGroupID.y * (GX * WG) + gl_GlobalInvocationID.x; }

// erf(x) (GLSL has none): Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7.
float vkf_erf(float x) {
  const float t = 1.0 / (1.0 + 0.3275911 * abs(x));
  const float y = 1.0 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 +
                  t * 1.061405429)))) * exp(-x * x);
  return x < 0.0 ? -y : y;
}
// ONNX Pow: GLSL's pow is undefined for a negative base; an integral exponent
// keeps its sign rule (x^2 of a centred value, as LayerNorm exports).
float vkf_pow(float a, float b) {
  if (b == 2.0) return a * a;
  if (a >= 0.0 || b != floor(b)) return pow(a, b);
  const float m = pow(-a, b);
  return mod(b, 2.0) == 1.0 ? -m : m;
}
#ifdef ROW_GROUPS
// One workgroup per row (DeviceCaps::row_groups): the row, this invocation's
// lane, and a fold of one value per lane over the workgroup (WG a power of
// two); every lane gets the result. Called in uniform control flow.
// op: 0 sum, 1 max, 2 min, 3 product.
shared float vkf_row[WG];
uint row_id() { return gl_WorkGroupID.y * GX + gl_WorkGroupID.x; }
uint lane() { return gl_LocalInvocationID.x; }
float vkf_fold2(float a, float b, int op) { return op == 0 ? a + b : op == 1 ? max(a, b) : op == 2 ? min(a, b) : a * b; }
float row_fold(float v, int op) {
#ifdef SUBGROUP_FOLD
  // Each subgroup folds in registers; subgroup 0's results, one per
  // subgroup, are folded in order by every lane (a handful: WG / subgroup size).
  float r = op == 0 ? subgroupAdd(v) : op == 1 ? subgroupMax(v) : op == 2 ? subgroupMin(v) : subgroupMul(v);
  if (gl_NumSubgroups > 1u) {
    if (subgroupElect()) vkf_row[gl_SubgroupID] = r;
    barrier();
    r = vkf_row[0];
    for (uint i = 1u; i < gl_NumSubgroups; ++i) r = vkf_fold2(r, vkf_row[i], op);
    barrier();  // vkf_row is reused by the next fold
  }
  return r;
#else
  vkf_row[lane()] = v;
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (lane() < s) {
      vkf_row[lane()] = vkf_fold2(vkf_row[lane()], vkf_row[lane() + s], op);
    }
    barrier();
  }
  const float r = vkf_row[0];
  barrier();  // vkf_row is reused by the next fold
  return r;
#endif
}
#endif
