// shaders/global_pool.glsl — GlobalAveragePool: one invocation per (n, c)
// plane, vec4 partial sums where the plane allows; with ROW_GROUPS one
// workgroup per plane, its lanes summing strided elements.
// Slots: o0 output, o1 input.
void main() {
#ifdef ROW_GROUPS
  const uint p = row_id();
  if (p >= TOTAL) return;
  const uint base = pc.o1 + p * PLANE;
  float part = 0.0;
  for (uint i = lane(); i < PLANE; i += WG) part += ARENA(1)[base + i];
  const float s = row_fold(part, 0);
  if (lane() == 0u) ARENA(0)[pc.o0 + p] = act2(s / float(PLANE));
#else
  const uint p = global_id();
  if (p >= TOTAL) return;
  const uint base = pc.o1 + p * PLANE;
  vec4 s4 = vec4(0.0);
  uint i = 0;
  for (; i + 4 <= PLANE; i += 4)
    s4 += vec4(ARENA(1)[base + i], ARENA(1)[base + i + 1], ARENA(1)[base + i + 2], ARENA(1)[base + i + 3]);
  float s = (s4.x + s4.y) + (s4.z + s4.w);
  for (; i < PLANE; ++i) s += ARENA(1)[base + i];
  ARENA(0)[pc.o0 + p] = act2(s / float(PLANE));
#endif
}
