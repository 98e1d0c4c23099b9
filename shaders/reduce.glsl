// shaders/reduce.glsl — ReduceMean/Sum/Max/Min/Prod/L1/L2/SumSquare/LogSum
// and LogSumExp over LEN elements spaced INNER apart (OUTER x INNER groups,
// the reduced axes contiguous); one invocation per group. STATE (the
// accumulator's type), INIT, ACC(s, v) and FINISH(s) are generated per op.
// Slots: o0 output, o1 input.
void main() {
  const uint g = global_id();
  if (g >= TOTAL) return;
  const uint o = g / INNER, i = g % INNER;
  const uint base = pc.o1 + o * LEN * INNER + i;
  STATE s = INIT;
  for (uint j = 0; j < LEN; ++j) {
    const float v = act[base + j * INNER];
    s = ACC(s, v);
  }
  act[pc.o0 + g] = act2(FINISH(s));
}
