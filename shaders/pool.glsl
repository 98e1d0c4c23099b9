// shaders/pool.glsl — MaxPool / AveragePool, 1-D to 3-D (lower ranks have
// unit leading dims), strides, dilations, asymmetric pads, ceil_mode (the
// output size is computed at load), count_include_pad. One output per
// invocation. Padding never wins a max; a window of padding only gives the
// lowest float, as the reference does.
// Slots: o0 output, o1 input.
#define IPLANE (ID * IH * IW)
#if TEXEL_X
#define LOADX(i) texelFetch(arena_tex, int(i)).x
#else
#define LOADX(i) ARENA(1)[i]
#endif
#define OPLANE (OD * OH * OW)

int taps_in(int start, int k, int dil, int lo, int hi) {
  int n = 0;
  for (int t = 0; t < k; ++t) {
    const int pos = start + t * dil;
    if (pos >= lo && pos < hi) ++n;
  }
  return n;
}

void main() {
  uint t = global_id();
  if (t >= TOTAL) return;
  const uint ow = t % OW; t /= OW;
  const uint oh = t % OH; t /= OH;
  const uint od = t % OD;
  const uint plane = t / OD;
  const int sd = int(od) * SD - PD, sh = int(oh) * SH - PH, sw = int(ow) * SW - PW;
  const uint xbase = pc.o1 + plane * IPLANE;
  float best = -3.402823466e+38;
  float sum = 0.0;
  int count = 0;
  // Branch-free: an out-of-range tap loads a clamped address and is masked.
  [[unroll]] for (int kd = 0; kd < KD; ++kd) {
    const int id = sd + kd * DLD;
    [[unroll]] for (int kh = 0; kh < KH; ++kh) {
      const int ih = sh + kh * DLH;
      const bool row_ok = id >= 0 && id < ID && ih >= 0 && ih < IH;
      const uint row = xbase + uint((clamp(id, 0, ID - 1) * IH + clamp(ih, 0, IH - 1)) * IW);
      [[unroll]] for (int kw = 0; kw < KW; ++kw) {
        const int iw = sw + kw * DLW;
        const bool ok = row_ok && iw >= 0 && iw < IW;
        const float v = LOADX(row + uint(clamp(iw, 0, IW - 1)));
        best = ok ? max(best, v) : best;
        sum += ok ? v : 0.0;
        count += ok ? 1 : 0;
      }
    }
  }
  float r;
#if IS_MAX
  r = best;
#else
  int divisor = count;
#if COUNT_PAD
  divisor = taps_in(sd, KD, DLD, -PD, ID + PED) * taps_in(sh, KH, DLH, -PH, IH + PEH) *
            taps_in(sw, KW, DLW, -PW, IW + PEW);
#endif
  r = divisor > 0 ? sum / float(divisor) : 0.0;
#endif
  ARENA(0)[pc.o0 + plane * OPLANE + (od * OH + oh) * OW + ow] = act2(r);
}
