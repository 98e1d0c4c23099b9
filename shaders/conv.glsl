// shaders/conv.glsl — direct convolution (1-D/2-D/3-D, groups, depthwise,
// strides, dilations, asymmetric pads) with its fused epilogue: bias (folded
// BatchNorm included), act1, an optional residual add, act2.
//
// Register blocked: each invocation computes OPX consecutive output columns
// of OCB output channels (OCB = 8 or 4: vec4 weight loads; 1: scalar, for
// depthwise). Weights are packed at load as
//   [group][channel block][ci][kd][kh][kw][OCB]   then bias as [group][MGP]
// with MGP = MG rounded up to OCB (zero padding). Each input row segment is
// loaded once per (ci, kd, kh) and reused across kw and the OPX columns.
// Weights too large for one storage buffer split a one-group Conv into
// kernels over ranges of output channels: this one writes MG channels from
// M0 of the output's M.
// A squeeze-and-excitation gate (HAS_GATE) scales each input channel as it
// is loaded: input[n][c] * gate[n][c].
// Slots: o0 output, o1 input, o2 weights (floats), o3 residual, then the gate
// (GATE_SLOT at GATE_AT: o4 after a residual, else o3).
// KSPLIT > 1 (a GPU, a layer with too few output tiles to fill it): KSPLIT
// lanes of a workgroup share one tile, each summing every KSPLIT-th input
// channel; the partial sums are added in shared memory and the tile's first
// lane runs the epilogue. Neighbouring lanes hold neighbouring tiles, so
// their loads stay close together and their weights are the same.
#if OCB >= 4
#define WT vec4
#define NV (OCB / 4)
#else
#define WT float
#define NV 1
#endif
layout(std430, set = 0, binding = 1) readonly buffer Weights { WT wv[]; };
// WUNIT: floats per unit of the weight offset o2 as LOADW indexes it.
#if TEXEL_W && OCB >= 4 && FP16_W
#define LOADW(i) texelFetch(weights_h, int(i))
#define WUNIT 2u
#elif TEXEL_W && OCB >= 4
#define LOADW(i) texelFetch(weights_tex, int(i))
#define WUNIT 4u
#else
#define LOADW(i) wv[i]
#define WUNIT (OCB >= 4 ? 4u : 1u)
#endif
// LOADX(k, i): element i of operand slot k (the texel view is the whole
// arena: its loads are off where operands bind windows of it).
#if TEXEL_X
#define LOADX(k, i) texelFetch(arena_tex, int(i)).x
#else
#define LOADX(k, i) ARENA(k)[i]
#endif

#define MBLK (MGP / OCB)
#define OWB ((OW + OPX - 1) / OPX)
#define KVOL (KD * KH * KW)
#define SEG ((OPX - 1) * SW + (KW - 1) * DLW + 1)
#define IPLANE (ID * IH * IW)
#define OPLANE (OD * OH * OW)

#if KSPLIT > 1
#define TPW (WG / KSPLIT)  // tiles per workgroup
shared float vkf_part[OCB * OPX][WG];
#endif

void main() {
#if KSPLIT > 1
  const uint tslot = gl_LocalInvocationID.x % TPW;
  const uint klane = gl_LocalInvocationID.x / TPW;
  uint t = (gl_WorkGroupID.y * GX + gl_WorkGroupID.x) * TPW + tslot;
  // Every lane reaches the barriers below: a lane past the last tile
  // computes tile 0 again and stores nothing.
  const bool live = t < TOTAL;
  if (!live) t = 0u;
#define CI_FIRST klane
#define CI_STEP KSPLIT
#else
  uint t = global_id();
  if (t >= TOTAL) return;
#define CI_FIRST 0u
#define CI_STEP 1u
#endif
  const uint owb = t % OWB; t /= OWB;
  const uint oh = t % OH; t /= OH;
  const uint od = t % OD; t /= OD;
  const uint mb = t % MBLK; t /= MBLK;
  const uint g = t % GROUPS;
  const uint n = t / GROUPS;
  const int ow0 = int(owb * OPX);

  WT acc[NV][OPX];
  [[unroll]] for (int j = 0; j < NV; ++j)
    [[unroll]] for (int p = 0; p < OPX; ++p) acc[j][p] = WT(0.0);

  // Weight units of WT: OCB floats per tap = NV units.
  uint wbase = pc.o2 / WUNIT + (g * MBLK + mb) * (CG * KVOL * NV) + CI_FIRST * (KVOL * NV);
  const uint xbase = pc.o1 + (n * C + g * CG) * IPLANE;
  const int iw0 = ow0 * SW - PW;
  // Kept a loop: a driver that unrolls a constant trip count (up to 2048
  // channels of a fully unrolled tap body) compiles for seconds per kernel, as
  // NVIDIA's did (ResNet-18: 118 s of pipelines); lavapipe runs it as fast.
  [[dont_unroll]] for (uint ci = CI_FIRST; ci < CG; ci += CI_STEP) {
    const uint xc = xbase + ci * IPLANE;
#if HAS_GATE
    const float gs = LOADX(GATE_SLOT, GATE_AT + n * C + g * CG + ci);
#else
    const float gs = 1.0;
#endif
    [[unroll]] for (int kd = 0; kd < KD; ++kd) {
      const int id = int(od) * SD - PD + kd * DLD;
      [[unroll]] for (int kh = 0; kh < KH; ++kh) {
        const int ih = int(oh) * SH - PH + kh * DLH;
        const uint wtap = wbase + uint((kd * KH + kh) * KW) * NV;
        // Branch-free: out-of-range taps load a clamped address and read as 0.
        const bool row_ok = id >= 0 && id < ID && ih >= 0 && ih < IH;
        const uint row = xc + uint(clamp(id, 0, ID - 1) * IH + clamp(ih, 0, IH - 1)) * IW;
        float xs[SEG];
        [[unroll]] for (int s = 0; s < SEG; ++s) {
          const int iw = iw0 + s;
          const float v = LOADX(1, row + uint(clamp(iw, 0, IW - 1)));
          xs[s] = (row_ok && iw >= 0 && iw < IW) ? v * gs : 0.0;
        }
        [[unroll]] for (int kw = 0; kw < KW; ++kw) {
          WT w[NV];
          [[unroll]] for (int j = 0; j < NV; ++j) w[j] = LOADW(wtap + uint(kw * NV + j));
          [[unroll]] for (int p = 0; p < OPX; ++p) {
            const float x = xs[p * SW + kw * DLW];
            [[unroll]] for (int j = 0; j < NV; ++j) acc[j][p] += x * w[j];
          }
        }
      }
    }
    wbase += CI_STEP * (KVOL * NV);
  }

#if KSPLIT > 1
  // Add the KSPLIT lanes' partial sums of each tile (a tree over lanes
  // TPW apart), then only each tile's first lane goes on.
  const uint me = gl_LocalInvocationID.x;
  [[unroll]] for (int j = 0; j < NV; ++j)
    [[unroll]] for (int p = 0; p < OPX; ++p)
      [[unroll]] for (int c4 = 0; c4 < 4; ++c4) vkf_part[(j * 4 + c4) * OPX + p][me] = acc[j][p][c4];
  barrier();
  [[unroll]] for (uint s = KSPLIT / 2u; s > 0u; s >>= 1u) {
    if (klane < s)
      [[unroll]] for (int e = 0; e < OCB * OPX; ++e) vkf_part[e][me] += vkf_part[e][me + s * TPW];
    barrier();
  }
  if (klane != 0u || !live) return;
  [[unroll]] for (int j = 0; j < NV; ++j)
    [[unroll]] for (int p = 0; p < OPX; ++p)
      [[unroll]] for (int c4 = 0; c4 < 4; ++c4) acc[j][p][c4] = vkf_part[(j * 4 + c4) * OPX + p][me];
#endif

  // Epilogue: bias, act1, residual, act2, store.
  const uint bbase = pc.o2 / WUNIT + (GROUPS * MBLK * CG * KVOL * NV) + (g * MGP + mb * OCB) / (OCB >= 4 ? 4u : 1u);
  [[unroll]] for (int j = 0; j < NV; ++j) {
    const WT b = HAS_BIAS != 0 ? LOADW(bbase + uint(j)) : WT(0.0);
    [[unroll]] for (int c4 = 0; c4 < (OCB >= 4 ? 4 : 1); ++c4) {
      const uint col = mb * OCB + uint(j * 4 + c4);
      if (col >= MG) continue;
      const uint co = M0 + g * MG + col;
      const uint obase = (n * M + co) * OPLANE + (od * OH + oh) * OW;
      [[unroll]] for (int p = 0; p < OPX; ++p) {
        const int ow = ow0 + p;
        if (ow >= OW) continue;
#if OCB >= 4
        float v = acc[j][p][c4] + b[c4];
#else
        float v = acc[j][p] + b;
#endif
        v = act1(v);
#if HAS_RES
        v += ARENA(3)[pc.o3 + obase + uint(ow)];
#endif
        v = act2(v);
        ARENA(0)[pc.o0 + obase + uint(ow)] = v;
      }
    }
  }
}
