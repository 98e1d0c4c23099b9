// shaders/global_pool.glsl — GlobalAveragePool: one invocation per (n, c)
// plane, vec4 partial sums where the plane allows.
// Slots: o0 output, o1 input.
void main() {
  const uint p = global_id();
  if (p >= TOTAL) return;
  const uint base = pc.o1 + p * PLANE;
  vec4 s4 = vec4(0.0);
  uint i = 0;
  for (; i + 4 <= PLANE; i += 4)
    s4 += vec4(act[base + i], act[base + i + 1], act[base + i + 2], act[base + i + 3]);
  float s = (s4.x + s4.y) + (s4.z + s4.w);
  for (; i < PLANE; ++i) s += act[base + i];
  act[pc.o0 + p] = act2(s / float(PLANE));
}
