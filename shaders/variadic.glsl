// shaders/variadic.glsl — Sum, Max, Min and Mean of three to seven inputs
// with numpy broadcasting: the generated combine(i) reads each input through
// its own index function and folds them left to right. One element per
// invocation.
// Slots: o0 output, o1.. the inputs.
void main() {
  const uint i = global_id();
  if (i >= TOTAL) return;
  ARENA(0)[pc.o0 + i] = act2(combine(i));
}
