// shaders/conv_transpose.glsl — ConvTranspose in gather form, one invocation
// per output element (n, m, od, oh, ow): output o takes input i through tap k
// where o = i * S - P + k * DL, i.e. i = (o + P - k * DL) / S when that
// divides exactly and lands inside the input. Pads may be negative (an
// output_shape past the full scatter). Weights: W as ONNX lays it out,
// [C][MG][KD][KH][KW], then the bias (M) when HAS_BIAS.
// Slots: o0 output, o1 input, o2 weights.
layout(std430, set = 0, binding = 1) readonly buffer Weights { float w[]; };
void main() {
  const uint idx = global_id();
  if (idx >= TOTAL) return;
  uint t = idx;
  const int ow = int(t % OW); t /= OW;
  const int oh = int(t % OH); t /= OH;
  const int od = int(t % OD); t /= OD;
  const uint m = t % M, n = t / M;
  const uint grp = m / MG, mg = m % MG;
  float acc = HAS_BIAS != 0 ? w[pc.o2 + C * MG * KD * KH * KW + m] : 0.0;
  for (uint cg = 0; cg < CG; ++cg) {
    const uint c = grp * CG + cg;
    const uint xb = pc.o1 + (n * C + c) * (ID * IH * IW);
    const uint wb = pc.o2 + (c * MG + mg) * (KD * KH * KW);
    for (int kd = 0; kd < KD; ++kd) {
      const int td = od + PD - kd * DLD;
      if (td < 0 || td % SD != 0 || td / SD >= ID) continue;
      for (int kh = 0; kh < KH; ++kh) {
        const int th = oh + PH - kh * DLH;
        if (th < 0 || th % SH != 0 || th / SH >= IH) continue;
        for (int kw = 0; kw < KW; ++kw) {
          const int tw = ow + PW - kw * DLW;
          if (tw < 0 || tw % SW != 0 || tw / SW >= IW) continue;
          acc += ARENA(1)[xb + uint(((td / SD) * IH + th / SH) * IW + tw / SW)] * w[wb + uint((kd * KH + kh) * KW + kw)];
        }
      }
    }
  }
  ARENA(0)[pc.o0 + idx] = act2(acc);
}
