// shaders/unary.glsl — elementwise y = act2(act1(x) * scale[c] + shift[c]):
// standalone activations (act1), BatchNormalization not folded into a Conv
// (per-channel scale/shift packed in the weights), and plain copies.
// Slots: o0 output, o1 input, o2 weights.
#if HAS_AFFINE
layout(std430, set = 0, binding = 1) readonly buffer Weights { float w[]; };
#endif
void main() {
  const uint i = global_id();
  if (i >= TOTAL) return;
  float v = act1(ARENA(1)[pc.o1 + i]);
#if HAS_AFFINE
  const uint c = (i / PLANE) % CH;
  v = v * w[pc.o2 + c] + w[pc.o2 + CH + c];
#endif
  ARENA(0)[pc.o0 + i] = act2(v);
}
