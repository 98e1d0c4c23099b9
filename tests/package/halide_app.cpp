// An application that runs a Halide pipeline of its own, with its own
// parallel-loop handler, beside a vkfuse model: each must keep its own Halide
// runtime. Usage: halide_app MODEL.onnx. Prints "ok" or why not; exit 1.
#include <HalideBuffer.h>
#include <HalideRuntime.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <vector>

#include "app_scale.h"
#include "vkfuse/vkfuse.h"

namespace {

std::atomic<int> g_app_loops{0};

int counting_do_par_for(void* uc, halide_task_t f, int min, int size, std::uint8_t* closure) {
  ++g_app_loops;
  return halide_default_do_par_for(uc, f, min, size, closure);
}

bool run_app_pipeline() {
  std::vector<float> in(4096), out(4096, 0.f);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i) * 0.25f;
  Halide::Runtime::Buffer<float> bin(in.data(), static_cast<int>(in.size()));
  Halide::Runtime::Buffer<float> bout(out.data(), static_cast<int>(out.size()));
  if (app_scale(bin, bout) != 0) return false;
  for (std::size_t i = 0; i < in.size(); ++i)
    if (out[i] != 2.f * in[i] + 1.f) return false;
  return true;
}

std::vector<float> run_model(vkfuse::Model& m) {
  std::vector<float> x(static_cast<std::size_t>(m.inputs()[0].element_count()));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.001f * static_cast<float>(i));
  std::vector<float> y(static_cast<std::size_t>(m.outputs()[0].element_count()));
  const vkfuse::InputBuffer in[] = {{m.inputs()[0].name, x}};
  const vkfuse::OutputBuffer out[] = {{m.outputs()[0].name, y}};
  m.run(in, out);
  return y;
}

int fail(const char* why) {
  std::printf("halide_app: %s\n", why);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: halide_app MODEL.onnx");
  halide_set_custom_do_par_for(counting_do_par_for);
  if (!run_app_pipeline()) return fail("the application's pipeline gave a wrong answer");
  const int app_loops = g_app_loops.load();
  if (app_loops == 0) return fail("the application's parallel loops did not reach its own handler (vkfuse's runtime took them)");

  try {
    vkfuse::LoadOptions cpu;
    cpu.strategy = "cpu";
    cpu.threads = 2;
    vkfuse::Model host = vkfuse::Model::load(argv[1], cpu);
    const std::vector<float> got = run_model(host);
    if (g_app_loops.load() != app_loops) return fail("vkfuse's kernels ran their loops through the application's handler");
    vkfuse::LoadOptions ref;
    ref.strategy = "reference";
    vkfuse::Model oracle = vkfuse::Model::load(argv[1], ref);
    const std::vector<float> want = run_model(oracle);
    double num = 0, den = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      num += (got[i] - want[i]) * (got[i] - want[i]);
      den += want[i] * want[i];
    }
    if (!(std::sqrt(num / den) < 1e-4)) return fail("vkfuse's host kernels disagree with its reference kernels");
  } catch (const vkfuse::Error& e) {
    std::printf("halide_app: vkfuse: %s\n", e.what());
    return 1;
  }
  if (!run_app_pipeline()) return fail("the application's pipeline gave a wrong answer after vkfuse ran");
  if (g_app_loops.load() <= app_loops) return fail("the application's handler was lost after vkfuse ran");
  std::printf("ok: the application's pipeline ran %d parallel loops through its own runtime; vkfuse's none\n",
              g_app_loops.load());
  return 0;
}
