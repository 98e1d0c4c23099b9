// The application's own Halide pipeline: out(x) = 2 in(x) + 1, parallel.
#include "Halide.h"

class AppScale : public Halide::Generator<AppScale> {
 public:
  Input<Buffer<float, 1>> input{"input"};
  Output<Buffer<float, 1>> output{"output"};
  void generate() {
    Halide::Var x("x"), xo("xo"), xi("xi");
    output(x) = 2.0f * input(x) + 1.0f;
    output.split(x, xo, xi, 256).parallel(xo);
  }
};
HALIDE_REGISTER_GENERATOR(AppScale, app_scale)
