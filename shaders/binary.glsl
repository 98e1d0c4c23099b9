// shaders/binary.glsl — two-operand elementwise ops (Add, Sub, Mul, Div, Pow,
// Max, Min, Mean, Sum, PRelu) with numpy broadcasting: generated index
// functions a_index/b_index map an output element to each operand, BINOP is
// the op; then the fused activation. One element per invocation. A constant
// scalar B (Pow's exponent) is baked in as B_LITERAL.
// Slots: o0 output, o1 A, o2 B.
void main() {
  const uint i = global_id();
  if (i >= TOTAL) return;
  const float a = ARENA(1)[pc.o1 + a_index(i)];
#ifdef B_LITERAL
  const float b = B_LITERAL;
#else
  const float b = ARENA(2)[pc.o2 + b_index(i)];
#endif
  ARENA(0)[pc.o0 + i] = act2(BINOP(a, b));
}
