// shaders/binary.glsl — Add/Sub/Mul/Div with numpy broadcasting (generated
// index functions a_index/b_index map an output element to each operand),
// then the fused activation. One element per invocation.
// Slots: o0 output, o1 A, o2 B.
void main() {
  const uint i = global_id();
  if (i >= TOTAL) return;
  const float a = act[pc.o1 + a_index(i)];
  const float b = act[pc.o2 + b_index(i)];
  act[pc.o0 + i] = act2(BINOP(a, b));
}
