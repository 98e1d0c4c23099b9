// shaders/softmax.glsl — Softmax over groups of LEN elements spaced INNER
// apart (OUTER x INNER groups), max-subtracted; one invocation per group, or
// with ROW_GROUPS one workgroup per group, its lanes taking strided elements.
// Slots: o0 output, o1 input.
#ifdef ROW_GROUPS
#define GROUP row_id()
#define FIRST lane()
#define STEP WG
#else
#define GROUP global_id()
#define FIRST 0u
#define STEP 1u
#endif
void main() {
  const uint g = GROUP;
  if (g >= TOTAL) return;
  const uint o = g / INNER, i = g % INNER;
  const uint base = o * LEN * INNER + i;
  float mx = -3.402823466e+38;
  for (uint j = FIRST; j < LEN; j += STEP) mx = max(mx, ARENA(1)[pc.o1 + base + j * INNER]);
#ifdef ROW_GROUPS
  mx = row_fold(mx, 1);
#endif
  float sum = 0.0;
  for (uint j = FIRST; j < LEN; j += STEP) sum += exp(ARENA(1)[pc.o1 + base + j * INNER] - mx);
#ifdef ROW_GROUPS
  sum = row_fold(sum, 0);
#endif
  const float inv = 1.0 / sum;
  for (uint j = FIRST; j < LEN; j += STEP)
    ARENA(0)[pc.o0 + base + j * INNER] = act2(exp(ARENA(1)[pc.o1 + base + j * INNER] - mx) * inv);
}
