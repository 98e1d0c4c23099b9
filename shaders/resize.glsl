// shaders/resize.glsl — Resize/Upsample of the last two axes (nearest,
// bilinear or bicubic), one output element per invocation. The coordinate
// transformation (ONNX's coordinate_transformation_mode) and the nearest
// rounding are generated: src_coord(x, in, resized, scale) and nearest(c).
// RES_H/RES_W are the resized lengths before rounding (input length x
// scale), as ONNX's align_corners and pytorch_half_pixel use them.
// Bicubic: Keys' kernel with coefficient CUBIC_A over the 4x4 neighbours,
// indices clamped to the edge; EXCLUDE_OUTSIDE drops the taps outside the
// input and renormalises the rest.
// HAS_RES: an Add as the epilogue (a feature pyramid's upsampled branch
// added to a lateral one): act1 (the Resize's), + residual, act2 (the Add's).
// Slots: o0 output, o1 input, o2 residual.
#if CUBIC
// The weights of the taps at floor(f) - 1 .. floor(f) + 2 for r = f - floor(f).
vec4 cubic_weights(float r) {
  const float a = CUBIC_A, s = 1.0 - r;
  return vec4(((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
              ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
              ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
              ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a);
}
vec4 tap_weights(float f, int first, int len) {
  vec4 w = cubic_weights(f - floor(f));
#if EXCLUDE_OUTSIDE
  for (int j = 0; j < 4; ++j)
    if (first + j < 0 || first + j >= len) w[j] = 0.0;
  w /= w.x + w.y + w.z + w.w;
#endif
  return w;
}
#endif
void main() {
  const uint i = global_id();
  if (i >= TOTAL) return;
  const uint ox = i % OW, oy = (i / OW) % OH, plane = i / (OW * OH);
  const float fy = src_coord(float(oy), float(IH), RES_H, SCALE_H);
  const float fx = src_coord(float(ox), float(IW), RES_W, SCALE_W);
  const uint base = pc.o1 + plane * (IH * IW);
#if CUBIC
  const int y0 = int(floor(fy)) - 1, x0 = int(floor(fx)) - 1;
  const vec4 wy = tap_weights(fy, y0, int(IH)), wx = tap_weights(fx, x0, int(IW));
  float v = 0.0;
  for (int j = 0; j < 4; ++j) {
    const uint row = base + uint(clamp(y0 + j, 0, int(IH) - 1)) * IW;
    float r = 0.0;
    for (int k = 0; k < 4; ++k) r += wx[k] * ARENA(1)[row + uint(clamp(x0 + k, 0, int(IW) - 1))];
    v += wy[j] * r;
  }
#elif LINEAR
  const float cy = clamp(fy, 0.0, float(IH - 1)), cx = clamp(fx, 0.0, float(IW - 1));
  const uint y0 = uint(floor(cy)), x0 = uint(floor(cx));
  const uint y1 = min(y0 + 1, IH - 1), x1 = min(x0 + 1, IW - 1);
  const float wy = cy - float(y0), wx = cx - float(x0);
  const float top = mix(ARENA(1)[base + y0 * IW + x0], ARENA(1)[base + y0 * IW + x1], wx);
  const float bottom = mix(ARENA(1)[base + y1 * IW + x0], ARENA(1)[base + y1 * IW + x1], wx);
  const float v = mix(top, bottom, wy);
#else
  const uint sy = uint(clamp(nearest(fy), 0.0, float(IH - 1)));
  const uint sx = uint(clamp(nearest(fx), 0.0, float(IW - 1)));
  const float v = ARENA(1)[base + sy * IW + sx];
#endif
#if HAS_RES
  ARENA(0)[pc.o0 + i] = act2(act1(v) + ARENA(2)[pc.o2 + i]);
#else
  ARENA(0)[pc.o0 + i] = act2(act1(v));
#endif
}
