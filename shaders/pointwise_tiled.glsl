// shaders/pointwise_tiled.glsl — a 1x1 convolution (stride 1, no padding,
// one group) as a GEMM tiled through shared memory, for GPUs: a workgroup
// computes TM output channels x TN pixels of one image, stepping over the
// input channels TK at a time (both operands' tiles loaded once into shared
// memory by all its invocations, with coalesced reads); each of its
// WG = TG x TG invocations keeps 8 x 8 accumulators, channels tm + TG*i and
// pixels tn + TG*j, so that neighbouring invocations read neighbouring
// shared words and write neighbouring pixels.
// Weights packed [C][MP] (MP: the kernel's MG channels padded to TM), then
// MP biases. Slots: o0 output, o1 input, o2 weights, o3 residual (HAS_RES),
// then the channel gate (HAS_GATE: slot GATE_SLOT at offset GATE_AT), which
// scales each input channel as its tile is loaded.
// Defines: N, C, M (channels of the whole output), M0 (this kernel's first),
// MG, MP, P (pixels of a plane), TG, HAS_BIAS, HAS_RES, HAS_GATE.
layout(std430, set = 0, binding = 1) readonly buffer Weights { float wv[]; };
#define TM (8 * TG)
#define TN (8 * TG)
#define TK 16
#define MTILES ((MG + TM - 1) / TM)
#define PTILES ((P + TN - 1) / TN)

shared float a_tile[TK][TM];
shared float b_tile[TK][TN];

void main() {
  const uint tile = gl_WorkGroupID.y * GX + gl_WorkGroupID.x;
  if (tile >= N * MTILES * PTILES) return;  // the whole workgroup
  const uint n = tile / (MTILES * PTILES);
  const uint m_first = (tile / PTILES) % MTILES * TM;
  const uint p_first = tile % PTILES * TN;
  const uint lid = gl_LocalInvocationID.x;
  const uint tn = lid % TG, tm = lid / TG;
  const uint xbase = pc.o1 + n * C * P;

  float acc[8][8];
  [[unroll]] for (int i = 0; i < 8; ++i)
    [[unroll]] for (int j = 0; j < 8; ++j) acc[i][j] = 0.0;

  [[dont_unroll]] for (uint c0 = 0; c0 < C; c0 += TK) {
    for (uint e = lid; e < TK * TM; e += WG) {
      const uint k = e / TM, m = e % TM, c = c0 + k;
      a_tile[k][m] = c < C ? wv[pc.o2 + c * MP + m_first + m] : 0.0;
    }
    for (uint e = lid; e < TK * TN; e += WG) {
      const uint k = e / TN, p = p_first + e % TN, c = c0 + k;
      float v = 0.0;
      if (c < C && p < P) {
        v = ARENA(1)[xbase + c * P + p];
#if HAS_GATE
        v *= ARENA(GATE_SLOT)[GATE_AT + n * C + c];
#endif
      }
      b_tile[k][e % TN] = v;
    }
    memoryBarrierShared();
    barrier();
    [[unroll]] for (int k = 0; k < TK; ++k) {
      float a[8], b[8];
      [[unroll]] for (int i = 0; i < 8; ++i) a[i] = a_tile[k][tm + TG * i];
      [[unroll]] for (int j = 0; j < 8; ++j) b[j] = b_tile[k][tn + TG * j];
      [[unroll]] for (int i = 0; i < 8; ++i)
        [[unroll]] for (int j = 0; j < 8; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    barrier();  // the tiles are overwritten next
  }

  [[unroll]] for (int i = 0; i < 8; ++i) {
    const uint m = m_first + tm + TG * i;
    if (m >= MG) continue;
    const float bias = HAS_BIAS != 0 ? wv[pc.o2 + C * MP + m] : 0.0;
    const uint row = (n * M + M0 + m) * P;
    [[unroll]] for (int j = 0; j < 8; ++j) {
      const uint p = p_first + tn + TG * j;
      if (p >= P) continue;
      float v = act1(acc[i][j] + bias);
#if HAS_RES
      v += ARENA(3)[pc.o3 + row + p];
#endif
      ARENA(0)[pc.o0 + row + p] = act2(v);
    }
  }
}
