// shaders/softmax.glsl — Softmax over groups of LEN elements spaced INNER
// apart (OUTER x INNER groups); one invocation per group, max-subtracted.
// Slots: o0 output, o1 input.
void main() {
  const uint g = global_id();
  if (g >= TOTAL) return;
  const uint o = g / INNER, i = g % INNER;
  const uint base = o * LEN * INNER + i;
  float mx = -3.402823466e+38;
  for (uint j = 0; j < LEN; ++j) mx = max(mx, act[pc.o1 + base + j * INNER]);
  float sum = 0.0;
  for (uint j = 0; j < LEN; ++j) sum += exp(act[pc.o1 + base + j * INNER] - mx);
  const float inv = 1.0 / sum;
  for (uint j = 0; j < LEN; ++j)
    act[pc.o0 + base + j * INNER] = act2(exp(act[pc.o1 + base + j * INNER] - mx) * inv);
}
