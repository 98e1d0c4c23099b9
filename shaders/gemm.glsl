// shaders/gemm.glsl — Gemm (Y = alpha * op(A) op(B) + beta * C, C broadcast)
// and batched MatMul with broadcast batch dims. One output per invocation
// (with ROW_GROUPS, one workgroup per output, its lanes splitting K);
// the operand layouts (transposes, broadcast strides, batch offsets) are
// generated index functions. A constant B is repacked at load to [N][K]
// (k contiguous) and read from the weight buffer.
// A B too large for one storage buffer splits a Gemm into kernels over
// ranges of output columns: this one computes GN columns from N0 of GNT.
// Slots: o0 output, o1 A, o2 B (arena) or weights, o3 C.
#ifndef N0
#define N0 0u
#define GNT GN
#endif
#if B_IN_WEIGHTS
layout(std430, set = 0, binding = 1) readonly buffer Weights { float wb[]; };
#define LOAD_B(i) wb[i]
#else
#define LOAD_B(i) ARENA(2)[i]
#endif

void main() {
#ifdef ROW_GROUPS
  uint t = row_id();
#else
  uint t = global_id();
#endif
  if (t >= TOTAL) return;
  const uint j = t % GN; t /= GN;
  const uint i = t % GM;
  const uint b = t / GM;
  const uint abase = pc.o1 + a_batch(b) + i * ASI;
  const uint bbase = pc.o2 + b_batch(b) + j * BSJ;
#ifdef ROW_GROUPS
  // One workgroup per output (a GPU, too few outputs to fill it): the lanes
  // take every WG-th k, reading A's row and B's packed column contiguously.
  float part = 0.0;
  for (uint k = lane(); k < GK; k += WG) part += ARENA(1)[abase + k * ASK] * LOAD_B(bbase + k * BSK);
  const float sum = row_fold(part, 0);
  if (lane() != 0u) return;
  float v = ALPHA * sum;
#else
  float s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  uint k = 0;
  for (; k + 4 <= GK; k += 4) {
    s0 += ARENA(1)[abase + k * ASK] * LOAD_B(bbase + k * BSK);
    s1 += ARENA(1)[abase + (k + 1) * ASK] * LOAD_B(bbase + (k + 1) * BSK);
    s2 += ARENA(1)[abase + (k + 2) * ASK] * LOAD_B(bbase + (k + 2) * BSK);
    s3 += ARENA(1)[abase + (k + 3) * ASK] * LOAD_B(bbase + (k + 3) * BSK);
  }
  for (; k < GK; ++k) s0 += ARENA(1)[abase + k * ASK] * LOAD_B(bbase + k * BSK);
  float v = ALPHA * ((s0 + s1) + (s2 + s3));
#endif
#if HAS_C
  v += BETA * ARENA(3)[pc.o3 + i * CSI + (N0 + j) * CSJ];
#endif
  ARENA(0)[pc.o0 + (b * GM + i) * GNT + N0 + j] = act2(v);
}
