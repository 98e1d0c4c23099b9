// shaders/layernorm.glsl — LayerNormalization over rows of LEN contiguous
// elements (the normalised axes last), one invocation per row: mean, then
// variance of the centred values, then y = (x - mean) / sqrt(var + EPS) *
// scale + bias. Scale and bias (LEN each) are the kernel's weights.
// Slots: o0 output, o1 input, o2 weights.
layout(std430, set = 0, binding = 1) readonly buffer Weights { float w[]; };
void main() {
  const uint r = global_id();
  if (r >= TOTAL) return;
  const uint base = r * LEN;
  float s = 0.0;
  for (uint j = 0; j < LEN; ++j) s += act[pc.o1 + base + j];
  const float mean = s / float(LEN);
  float q = 0.0;
  for (uint j = 0; j < LEN; ++j) {
    const float d = act[pc.o1 + base + j] - mean;
    q += d * d;
  }
  const float inv = inversesqrt(q / float(LEN) + EPS);
  for (uint j = 0; j < LEN; ++j)
    act[pc.o0 + base + j] = act2((act[pc.o1 + base + j] - mean) * inv * w[pc.o2 + j] + w[pc.o2 + LEN + j]);
}
