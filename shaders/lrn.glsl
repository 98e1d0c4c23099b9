// shaders/lrn.glsl — LRN across channels, one invocation per element:
// y = x / (BIAS + ALPHA / SIZE * sum of x^2 over channels c - BEFORE .. c + AFTER)^BETA.
// Slots: o0 output, o1 input.
void main() {
  const uint i = global_id();
  if (i >= TOTAL) return;
  const uint p = i % PLANE, c = (i / PLANE) % CH;
  const uint base = pc.o1 + (i / (PLANE * CH)) * (CH * PLANE) + p;
  const uint lo = c >= BEFORE ? c - BEFORE : 0u, hi = min(CH - 1u, c + AFTER);
  float s = 0.0;
  for (uint k = lo; k <= hi; ++k) {
    const float v = ARENA(1)[base + k * PLANE];
    s += v * v;
  }
  ARENA(0)[pc.o0 + i] = act2(ARENA(1)[pc.o1 + i] / pow(BIAS + ALPHA_N * s, BETA));
}
