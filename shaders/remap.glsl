// shaders/remap.glsl — data movement: y[dst_index(i)] = x[src_index(i)] for
// i < TOTAL, with src_index < 0 meaning the fill value. Transpose, Pad
// (constant/edge/reflect), Gather (indices in the weight buffer), and Concat
// inputs that cannot be written in place are all this one template with
// generated index functions.
// Slots: o0 output, o1 input, o2 weights (Gather indices, read through the
// generated src_index, which declares the uint view `wu` of binding 1).
void main() {
  const uint i = global_id();
  if (i >= TOTAL) return;
  const int s = src_index(i);
  const float v = s < 0 ? FILL : ARENA(1)[pc.o1 + uint(s)];
  ARENA(0)[pc.o0 + dst_index(i)] = act2(v);
}
