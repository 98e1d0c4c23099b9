// shaders/resize.glsl — Resize/Upsample of the last two axes (nearest or
// bilinear), one output element per invocation. The coordinate
// transformation (ONNX's coordinate_transformation_mode) and the nearest
// rounding are generated: src_coord(x, in, resized, scale) and nearest(c).
// RES_H/RES_W are the resized lengths before rounding (input length x
// scale), as ONNX's align_corners and pytorch_half_pixel use them.
// Slots: o0 output, o1 input.
void main() {
  const uint i = global_id();
  if (i >= TOTAL) return;
  const uint ox = i % OW, oy = (i / OW) % OH, plane = i / (OW * OH);
  const float fy = src_coord(float(oy), float(IH), RES_H, SCALE_H);
  const float fx = src_coord(float(ox), float(IW), RES_W, SCALE_W);
  const uint base = pc.o1 + plane * (IH * IW);
#if LINEAR
  const float cy = clamp(fy, 0.0, float(IH - 1)), cx = clamp(fx, 0.0, float(IW - 1));
  const uint y0 = uint(floor(cy)), x0 = uint(floor(cx));
  const uint y1 = min(y0 + 1, IH - 1), x1 = min(x0 + 1, IW - 1);
  const float wy = cy - float(y0), wx = cx - float(x0);
  const float top = mix(act[base + y0 * IW + x0], act[base + y0 * IW + x1], wx);
  const float bottom = mix(act[base + y1 * IW + x0], act[base + y1 * IW + x1], wx);
  const float v = mix(top, bottom, wy);
#else
  const uint sy = uint(clamp(nearest(fy), 0.0, float(IH - 1)));
  const uint sx = uint(clamp(nearest(fx), 0.0, float(IW - 1)));
  const float v = act[base + sy * IW + sx];
#endif
  act[pc.o0 + i] = act2(v);
}
