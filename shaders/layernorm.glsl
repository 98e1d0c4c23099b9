// shaders/layernorm.glsl — LayerNormalization and InstanceNormalization over
// rows of LEN contiguous elements (the normalised axes last), one invocation
// per row (with ROW_GROUPS one workgroup per row, its lanes taking strided
// elements): mean, then variance of the centred values, then
// y = (x - mean) / sqrt(var + EPS) * scale + bias. The kernel's weights are
// scale then bias: LEN each (LayerNormalization), or CH each, one per row's
// channel r % CH (InstanceNormalization, rows = N x C).
// MEAN_AT / INV_AT, when defined, are the offsets of LayerNormalization's
// optional Mean and InvStdDev outputs (one value per row), in the slots
// MEAN_SLOT / INV_SLOT.
// With PLANE defined (ChannelLayerNorm), row r is pixel r % PLANE of image
// r / PLANE, and its LEN channels lie PLANE apart (neighbouring invocations
// read neighbouring pixels).
// Slots: o0 output, o1 input, o2 weights, then the optional outputs.
layout(std430, set = 0, binding = 1) readonly buffer Weights { float w[]; };
#ifdef ROW_GROUPS
#define ROW row_id()
#define FIRST lane()
#define STEP WG
#define TOTAL_OF(v) row_fold(v, 0)
#else
#define ROW global_id()
#define FIRST 0u
#define STEP 1u
#define TOTAL_OF(v) (v)
#endif
#ifdef PLANE
#define AT(j) (base + (j) * PLANE)
#else
#define AT(j) (base + (j))
#endif
void main() {
  const uint r = ROW;
  if (r >= TOTAL) return;
#ifdef PLANE
  const uint base = r / PLANE * (LEN * PLANE) + r % PLANE;
#else
  const uint base = r * LEN;
#endif
  float s = 0.0;
  for (uint j = FIRST; j < LEN; j += STEP) s += ARENA(1)[pc.o1 + AT(j)];
  const float mean = TOTAL_OF(s) / float(LEN);
  float q = 0.0;
  for (uint j = FIRST; j < LEN; j += STEP) {
    const float d = ARENA(1)[pc.o1 + AT(j)] - mean;
    q += d * d;
  }
  const float inv = inversesqrt(TOTAL_OF(q) / float(LEN) + EPS);
#if CH
  const uint c = r % CH;
  const float a = inv * w[pc.o2 + c], b = w[pc.o2 + CH + c];
  for (uint j = FIRST; j < LEN; j += STEP) ARENA(0)[pc.o0 + AT(j)] = act2((ARENA(1)[pc.o1 + AT(j)] - mean) * a + b);
#else
  for (uint j = FIRST; j < LEN; j += STEP)
    ARENA(0)[pc.o0 + AT(j)] = act2((ARENA(1)[pc.o1 + AT(j)] - mean) * inv * w[pc.o2 + j] + w[pc.o2 + LEN + j]);
#endif
  if (FIRST == 0u) {
#ifdef MEAN_AT
    ARENA(MEAN_SLOT)[MEAN_AT + r] = mean;
#endif
#ifdef INV_AT
    ARENA(INV_SLOT)[INV_AT + r] = inv;
#endif
  }
}
