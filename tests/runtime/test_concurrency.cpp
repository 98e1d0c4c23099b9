// One loaded model serves many threads: run() from 8 threads at once, and
// run_async(), over several models and every kind of plan (reference, all
// host, all device, naive per-unit transfers, an offloading default plan), give the
// answers a run alone gives; each run returns its own timings and trace.
// CI runs this suite under ThreadSanitizer as well (.ci/run).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/onnx_builder.h"
#include "vkfuse/vkfuse.h"

namespace {

struct Loaded {
  std::string name;
  std::unique_ptr<vkfuse::Model> model;
  std::vector<std::vector<float>> inputs, answers;  // per input: what a run alone gives
};

std::vector<float> input_for(const vkfuse::Model& m, int k) {
  std::vector<float> x(static_cast<std::size_t>(m.inputs()[0].element_count()));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.013f * static_cast<float>(i) + 0.7f * static_cast<float>(k));
  return x;
}

std::vector<float> run_alone(vkfuse::Model& m, const std::vector<float>& x) {
  std::vector<float> y(static_cast<std::size_t>(m.outputs()[0].element_count()));
  const vkfuse::InputBuffer in[] = {{m.inputs()[0].name, x}};
  const vkfuse::OutputBuffer out[] = {{m.outputs()[0].name, y}};
  m.run(in, out);
  return y;
}

// Every model × strategy this machine can run, loaded with `pipeline` slots.
std::vector<Loaded> load_all(int pipeline, bool trace = false) {
  const bool device = !vkfuse::list_devices().empty();
  std::vector<Loaded> all;
  const std::pair<const char*, std::vector<std::uint8_t>> models[] = {
      {"conv_bn_relu", vkfuse::testing::conv_bn_relu_model().byte_vector()},
      {"two_conv", vkfuse::testing::two_conv_model().byte_vector()}};
  for (const auto& [model_name, bytes] : models) {
    for (const char* strategy : {"reference", "cpu", "gpu", "naive", "fused"}) {
      if (!device && std::string(strategy) != "reference" && std::string(strategy) != "cpu") continue;
      vkfuse::LoadOptions o;
      o.strategy = strategy;
      o.threads = 2;
      o.calibrate = false;
      o.pipeline = pipeline;
      o.trace = trace;
      if (std::string(strategy) == "fused") {
        // A what-if accelerator on a fast link, so that the default plan
        // offloads. (Behind a 2 GB/s link the plan offloaded only while this
        // host's calibration ran slow: two small convolutions barely pay
        // for their transfers.)
        o.accel_profile = std::string(VKFUSE_SOURCE_DIR) + "/tools/profiles/whatif-10x-accelerator.json";
        o.link = "local";
      } else if (std::string(strategy) == "naive") {
        o.link = "bw=500,lat=200";  // an emulated link: runs in flight overlap on it
      }
      Loaded l;
      l.name = std::string(model_name) + "/" + strategy;
      l.model = std::make_unique<vkfuse::Model>(vkfuse::Model::load_bytes(bytes, o));
      l.model->wait_until_built();  // the answers below are the plan's (the host's meanwhile: test_faults)
      if (std::string(strategy) == "fused" && std::string(model_name) == "two_conv") {
        EXPECT_EQ(l.model->backend_description().find(" 0 dispatch units"), std::string::npos)
            << "the what-if plan should offload: " << l.model->backend_description();
      }
      for (int k = 0; k < 3; ++k) {
        l.inputs.push_back(input_for(*l.model, k));
        l.answers.push_back(run_alone(*l.model, l.inputs.back()));
      }
      all.push_back(std::move(l));
    }
  }
  return all;
}

TEST(Concurrency, EightThreadsOnSeveralModelsAndStrategiesGiveTheAnswersOfRunsAlone) {
  std::vector<Loaded> all = load_all(3);
  ASSERT_FALSE(all.empty());
  constexpr int kThreads = 8, kRounds = 6;
  std::vector<std::string> failures[kThreads];
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        Loaded& l = all[static_cast<std::size_t>(t * 5 + r) % all.size()];
        const std::size_t k = static_cast<std::size_t>(t + r) % l.inputs.size();
        std::vector<float> y(l.answers[k].size(), -7.f);
        const vkfuse::InputBuffer in[] = {{l.model->inputs()[0].name, l.inputs[k]}};
        const vkfuse::OutputBuffer out[] = {{l.model->outputs()[0].name, y}};
        try {
          // Every other call asynchronous, waited for at once.
          const vkfuse::RunTimings timings = r % 2 ? l.model->run_async(in, out).wait() : l.model->run(in, out);
          if (y != l.answers[k]) failures[t].push_back(l.name + ": a different answer");
          if (!(timings.total_ms > 0)) failures[t].push_back(l.name + ": no time");
        } catch (const std::exception& e) {
          failures[t].push_back(l.name + ": " + e.what());
        }
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t)
    for (const auto& f : failures[t]) ADD_FAILURE() << "thread " << t << ": " << f;
}

// The slots of a pipelined model share the loaded programs: weights are
// repacked (host) or uploaded (device) and held once; each slot has only its
// own activation arena.
TEST(Concurrency, PipelineSlotsShareTheWeights) {
  const bool device = !vkfuse::list_devices().empty();
  for (const char* strategy : {"cpu", "gpu"}) {
    if (!device && std::string(strategy) == "gpu") continue;
    SCOPED_TRACE(strategy);
    vkfuse::MemoryReport memory[2];
    for (int p : {1, 3}) {
      vkfuse::LoadOptions o;
      o.strategy = strategy;
      o.threads = 2;
      o.calibrate = false;
      o.pipeline = p;
      const vkfuse::Model m = vkfuse::Model::load_bytes(vkfuse::testing::two_conv_model().byte_vector(), o);
      memory[p == 1 ? 0 : 1] = m.memory();
    }
    const bool gpu = std::string(strategy) == "gpu";
    const std::int64_t weights[2] = {gpu ? memory[0].device_weight_bytes : memory[0].host_weight_bytes,
                                     gpu ? memory[1].device_weight_bytes : memory[1].host_weight_bytes};
    const std::int64_t arena[2] = {gpu ? memory[0].device_activation_bytes : memory[0].host_activation_bytes,
                                   gpu ? memory[1].device_activation_bytes : memory[1].host_activation_bytes};
    ASSERT_GT(weights[0], 0) << "no weights to share";
    EXPECT_EQ(weights[1], weights[0]);
    EXPECT_EQ(arena[1], 3 * arena[0]);
  }
}

TEST(Concurrency, AsyncRunsAreWaitedForInAnyOrder) {
  vkfuse::LoadOptions o;
  o.strategy = "cpu";
  o.threads = 1;
  o.pipeline = 2;
  const auto bytes = vkfuse::testing::two_conv_model().byte_vector();
  auto model = std::make_unique<vkfuse::Model>(vkfuse::Model::load_bytes(bytes, o));
  constexpr int kRuns = 5;
  std::vector<std::vector<float>> x, want, got;
  for (int k = 0; k < kRuns; ++k) {
    x.push_back(input_for(*model, k));
    want.push_back(run_alone(*model, x.back()));
    got.emplace_back(want.back().size(), -1.f);
  }
  std::vector<vkfuse::RunHandle> handles;
  for (int k = 0; k < kRuns; ++k) {
    const vkfuse::InputBuffer in[] = {{model->inputs()[0].name, x[static_cast<std::size_t>(k)]}};
    const vkfuse::OutputBuffer out[] = {{model->outputs()[0].name, got[static_cast<std::size_t>(k)]}};
    handles.push_back(model->run_async(in, out));
    EXPECT_TRUE(handles.back().valid());
  }
  for (int k = kRuns - 1; k >= 0; --k) {
    const vkfuse::RunTimings t = handles[static_cast<std::size_t>(k)].wait();
    EXPECT_GT(t.total_ms, 0);
    EXPECT_EQ(got[static_cast<std::size_t>(k)], want[static_cast<std::size_t>(k)]) << "run " << k;
    EXPECT_FALSE(handles[static_cast<std::size_t>(k)].valid());
  }
  try {
    handles[0].wait();
    ADD_FAILURE() << "a handle was waited for twice";
  } catch (const vkfuse::Error& e) {
    EXPECT_EQ(e.kind(), vkfuse::ErrorKind::InvalidArgument);
  }

  // Bad buffers are refused by run_async itself, not later by wait().
  std::vector<float> short_input(3);
  const vkfuse::InputBuffer bad[] = {{model->inputs()[0].name, short_input}};
  const vkfuse::OutputBuffer out[] = {{model->outputs()[0].name, got[0]}};
  try {
    model->run_async(bad, out);
    ADD_FAILURE() << "run_async accepted an input of 3 floats";
  } catch (const vkfuse::Error& e) {
    EXPECT_EQ(e.kind(), vkfuse::ErrorKind::InvalidInput) << e.what();
  }

  // A model destroyed with runs still going waits for them: their outputs
  // are written by then (the handle turns ready a moment later).
  std::fill(got[1].begin(), got[1].end(), -1.f);
  const vkfuse::InputBuffer in[] = {{model->inputs()[0].name, x[1]}};
  const vkfuse::OutputBuffer out1[] = {{model->outputs()[0].name, got[1]}};
  vkfuse::RunHandle pending = model->run_async(in, out1);
  model.reset();
  EXPECT_EQ(got[1], want[1]);
  pending.wait();
}

// Each run's timings and trace are its own, also with runs in flight at once.
TEST(Concurrency, EachRunReturnsItsOwnTimingsAndTrace) {
  if (vkfuse::list_devices().empty()) GTEST_SKIP() << "no Vulkan device";
  std::vector<Loaded> all = load_all(2, /*trace=*/true);
  for (Loaded& l : all) {
    if (l.name.find("/naive") == std::string::npos) continue;
    std::vector<vkfuse::RunTimings> timings(4);
    std::vector<std::vector<float>> y(4, std::vector<float>(l.answers[0].size()));
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        const vkfuse::InputBuffer in[] = {{l.model->inputs()[0].name, l.inputs[0]}};
        const vkfuse::OutputBuffer out[] = {{l.model->outputs()[0].name, y[t]}};
        timings[t] = l.model->run(in, out);
      });
    for (auto& th : threads) th.join();
    for (std::size_t t = 0; t < 4; ++t) {
      EXPECT_EQ(y[t], l.answers[0]) << l.name;
      // One event per plan step of this run, no more (the other runs' are theirs).
      const std::string& trace = timings[t].trace_json;
      std::size_t events = 0;
      for (std::size_t at = trace.find("\"ph\":\"X\""); at != std::string::npos; at = trace.find("\"ph\":\"X\"", at + 1)) ++events;
      EXPECT_EQ(events, timings[t].steps.size()) << l.name << ", run " << t << ": " << trace;
      EXPECT_GT(timings[t].bytes_uploaded, 0) << l.name;
    }
  }
}

}  // namespace
