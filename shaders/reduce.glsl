// shaders/reduce.glsl — ReduceMean/Sum/Max/Min/Prod/L1/L2/SumSquare/LogSum
// and LogSumExp over LEN elements spaced INNER apart (OUTER x INNER groups,
// the reduced axes contiguous); one invocation per group. STATE (the
// accumulator's type), INIT, ACC(s, v) and FINISH(s) are generated per op.
// With ROW_GROUPS (a float STATE), one workgroup per group: each lane folds
// strided elements, then the lanes' partial results combine by COMBINE
// (row_fold's op).
// Slots: o0 output, o1 input.
void main() {
#ifdef ROW_GROUPS
  const uint g = row_id();
  if (g >= TOTAL) return;
  const uint o = g / INNER, i = g % INNER;
  const uint base = pc.o1 + o * LEN * INNER + i;
  STATE s = INIT;
  for (uint j = lane(); j < LEN; j += WG) {
    const float v = ARENA(1)[base + j * INNER];
    s = ACC(s, v);
  }
  s = row_fold(s, COMBINE);
  if (lane() == 0u) ARENA(0)[pc.o0 + g] = act2(FINISH(s));
#else
  const uint g = global_id();
  if (g >= TOTAL) return;
  const uint o = g / INNER, i = g % INNER;
  const uint base = pc.o1 + o * LEN * INNER + i;
  STATE s = INIT;
  for (uint j = 0; j < LEN; ++j) {
    const float v = ARENA(1)[base + j * INNER];
    s = ACC(s, v);
  }
  ARENA(0)[pc.o0 + g] = act2(FINISH(s));
#endif
}
