// Device faults, injected at the three places a real device fails (memory
// allocation, queue submission, the wait for a fence) on the real Vulkan
// device (lavapipe here): each surfaces as its own error kind, nothing hangs,
// and the loaded model recovers at its next run — on a fresh device context
// after a lost device or a timeout, or, for the default strategy when the
// device cannot be set up again, on the host with a warning.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "runtime/vulkan/context.h"
#include "tests/onnx_builder.h"
#include "vkfuse/vkfuse.h"

namespace vk = vkfuse::runtime::vulkan;
using vkfuse::ErrorKind;

namespace {

class DeviceFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    if (vkfuse::list_devices().empty()) GTEST_SKIP() << "no Vulkan device";
    bytes_ = vkfuse::testing::two_conv_model().byte_vector();
    vkfuse::LoadOptions cpu;
    cpu.strategy = "cpu";
    cpu.threads = 1;
    auto host = vkfuse::Model::load_bytes(bytes_, cpu);
    x_.resize(static_cast<std::size_t>(host.inputs()[0].element_count()));
    for (std::size_t i = 0; i < x_.size(); ++i) x_[i] = std::sin(0.37f * static_cast<float>(i));
    want_ = run(host);
  }
  void TearDown() override { vk::clear_faults(); }

  vkfuse::LoadOptions options(const char* strategy) const {
    vkfuse::LoadOptions o;
    o.strategy = strategy;
    o.threads = 1;
    o.calibrate = false;
    return o;
  }
  // The default strategy against a what-if accelerator ten times faster than
  // this host, on a fast link: a plan that offloads (checked by the callers).
  // Unless `background`, load waits for the device's part of the plan.
  vkfuse::LoadOptions offloading(bool background = false) const {
    vkfuse::LoadOptions o = options("fused");
    o.accel_profile = std::string(VKFUSE_SOURCE_DIR) + "/tools/profiles/whatif-10x-accelerator.json";
    o.link = "local";
    o.host_while_building = background;
    return o;
  }
  vkfuse::RunTimings run_timed(vkfuse::Model& m, std::vector<float>& y) const {
    y.assign(static_cast<std::size_t>(m.outputs()[0].element_count()), -1.f);
    const vkfuse::InputBuffer in[] = {{m.inputs()[0].name, x_}};
    const vkfuse::OutputBuffer out[] = {{m.outputs()[0].name, y}};
    return m.run(in, out);
  }
  std::vector<float> run(vkfuse::Model& m) const {
    std::vector<float> y(static_cast<std::size_t>(m.outputs()[0].element_count()), -1.f);
    const vkfuse::InputBuffer in[] = {{m.inputs()[0].name, x_}};
    const vkfuse::OutputBuffer out[] = {{m.outputs()[0].name, y}};
    m.run(in, out);
    return y;
  }
  // The run fails with `kind`, at once (no hang), and says what to do.
  void expect_run_fails(vkfuse::Model& m, ErrorKind kind, const std::string& words) const {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      run(m);
      ADD_FAILURE() << "the run succeeded despite the fault";
    } catch (const vkfuse::Error& e) {
      EXPECT_EQ(e.kind(), kind) << vkfuse::error_kind_name(e.kind()) << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60.0);  // under TSan too
  }
  void expect_close(const std::vector<float>& got) const {
    ASSERT_EQ(got.size(), want_.size());
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want_[i], 1e-4f * (1 + std::fabs(want_[i]))) << i;
  }

  std::vector<std::uint8_t> bytes_;
  std::vector<float> x_, want_;
};

TEST_F(DeviceFaults, OutOfDeviceMemoryAtLoadIsItsOwnKindAndTheDefaultStrategyRunsOnTheHost) {
  vk::inject_fault(vk::FaultSite::allocate, VK_ERROR_OUT_OF_DEVICE_MEMORY, 0, -1);
  try {
    vkfuse::Model::load_bytes(bytes_, options("gpu"));
    ADD_FAILURE() << "loaded on the GPU without device memory";
  } catch (const vkfuse::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::OutOfDeviceMemory) << e.what();
    EXPECT_NE(std::string(e.what()).find("MiB"), std::string::npos) << e.what();  // names the buffer and its size
  }
  auto fused = vkfuse::Model::load_bytes(bytes_, offloading());
  vk::clear_faults();
  ASSERT_FALSE(fused.warnings().empty());
  EXPECT_NE(fused.warnings().back().find("running on the host"), std::string::npos) << fused.warnings().back();
  EXPECT_NE(fused.warnings().back().find("out of device memory"), std::string::npos) << fused.warnings().back();
  EXPECT_NE(fused.backend_description().find("0 dispatch units"), std::string::npos) << fused.backend_description();
  EXPECT_EQ(fused.strategy(), "cpu");
  expect_close(run(fused));
}

// The default strategy's plan offloads: load returns with the host ready and
// the device's part building; runs answer on the host until it is ready,
// then on the plan, and the answers agree.
TEST_F(DeviceFaults, TheHostAnswersWhileTheDevicePartOfThePlanBuilds) {
  vkfuse::LoadOptions o = offloading(true);
  o.pipeline = 2;
  auto fused = vkfuse::Model::load_bytes(bytes_, o);
  std::vector<std::thread> threads;
  std::vector<std::string> failures(3);
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < 4; ++r) {
        std::vector<float> y;
        const vkfuse::RunTimings timed = run_timed(fused, y);
        // Still building after the run: it ran on the host (the switch to the
        // plan happens with the end of the build).
        if (fused.building() && timed.dispatches != 0) failures[t] += "a run during the build used the device; ";
        for (std::size_t i = 0; i < y.size(); ++i)
          if (!(std::fabs(y[i] - want_[i]) <= 1e-4f * (1 + std::fabs(want_[i])))) {
            failures[t] += "a different answer; ";
            break;
          }
      }
    });
  for (auto& th : threads) th.join();
  for (const auto& f : failures) EXPECT_TRUE(f.empty()) << f;
  fused.wait_until_built();
  EXPECT_FALSE(fused.building());
  EXPECT_EQ(fused.backend_description().find("0 dispatch units"), std::string::npos) << fused.backend_description();
  EXPECT_GT(fused.load_timings().background_ms, 0);
  EXPECT_GT(fused.load_timings().shaders, 0);
  for (int r = 0; r < 3; ++r) {  // each slot switches at its next run
    std::vector<float> y;
    EXPECT_GT(run_timed(fused, y).dispatches, 0) << "run " << r;
    expect_close(y);
  }
  EXPECT_EQ(fused.strategy(), "fused");
  EXPECT_TRUE(fused.warnings().empty()) << fused.warnings().front();
}

// The device's part of the plan fails to build in the background: the host
// goes on answering, and a warning says why.
TEST_F(DeviceFaults, ADevicePartThatFailsToBuildInTheBackgroundLeavesTheHostAnswering) {
  vk::inject_fault(vk::FaultSite::allocate, VK_ERROR_OUT_OF_DEVICE_MEMORY, 0, -1);
  auto fused = vkfuse::Model::load_bytes(bytes_, offloading(true));
  expect_close(run(fused));
  fused.wait_until_built();
  vk::clear_faults();
  ASSERT_FALSE(fused.warnings().empty());
  EXPECT_NE(fused.warnings().back().find("could not be built"), std::string::npos) << fused.warnings().back();
  EXPECT_NE(fused.warnings().back().find("out of device memory"), std::string::npos) << fused.warnings().back();
  EXPECT_EQ(fused.strategy(), "cpu");
  EXPECT_NE(fused.backend_description().find("0 dispatch units"), std::string::npos) << fused.backend_description();
  std::vector<float> y;
  EXPECT_EQ(run_timed(fused, y).dispatches, 0);
  expect_close(y);
}

TEST_F(DeviceFaults, ALostDeviceFailsTheRunAndTheNextRunUsesAFreshContext) {
  auto gpu = vkfuse::Model::load_bytes(bytes_, options("gpu"));
  expect_close(run(gpu));
  // Held here, the lost context outlives the model's use of it, so a model
  // that went on with it would be found out.
  const std::shared_ptr<vk::Context> before = vk::Context::acquire("");
  vk::inject_fault(vk::FaultSite::submit, VK_ERROR_DEVICE_LOST);
  expect_run_fails(gpu, ErrorKind::DeviceLost, "lost");
  EXPECT_TRUE(before->retired());
  expect_close(run(gpu));  // rebuilt on a new context, the one acquire() now hands out
  const std::shared_ptr<vk::Context> after = vk::Context::acquire("");
  EXPECT_NE(after.get(), before.get());
  EXPECT_FALSE(after->retired());
  // Held here, by the model's device program and by its executor.
  EXPECT_EQ(after.use_count(), 3) << "the model does not hold the new context";
  expect_close(run(gpu));
}

TEST_F(DeviceFaults, AFenceThatDoesNotSignalInTimeIsATimeoutNotAHang) {
  auto gpu = vkfuse::Model::load_bytes(bytes_, options("gpu"));
  vk::inject_fault(vk::FaultSite::wait, VK_TIMEOUT);
  expect_run_fails(gpu, ErrorKind::DeviceTimeout, "device_timeout_ms");
  expect_close(run(gpu));

  // A real one, where the device is the CPU (lavapipe): 1.9 GFLOP take it far
  // more than a millisecond. The model is then destroyed with its work still
  // running on the device.
  vkfuse::LoadOptions o = options("gpu");
  o.device_timeout_ms = 0;
  try {
    vkfuse::Model::load_bytes(bytes_, o);
    ADD_FAILURE() << "a timeout of 0 ms was accepted";
  } catch (const vkfuse::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument) << e.what();
  }
  const auto devices = vkfuse::list_devices();
  ASSERT_FALSE(devices.empty());
  if (devices[static_cast<std::size_t>(vk::select_device(devices, ""))].type != "cpu") return;  // a GPU might finish in time
  o.device_timeout_ms = 1;
  auto hurried = vkfuse::Model::load_bytes(vkfuse::testing::two_conv_model(256).byte_vector(), o);
  std::vector<float> big(static_cast<std::size_t>(hurried.inputs()[0].element_count()), 0.5f), y(32);
  const vkfuse::InputBuffer in[] = {{hurried.inputs()[0].name, big}};
  const vkfuse::OutputBuffer out[] = {{hurried.outputs()[0].name, y}};
  try {
    hurried.run(in, out);
    ADD_FAILURE() << "1.9 GFLOP within 1 ms";
  } catch (const vkfuse::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::DeviceTimeout) << e.what();
    EXPECT_NE(std::string(e.what()).find("did not finish"), std::string::npos) << e.what();
  }
}

TEST_F(DeviceFaults, OutOfDeviceMemoryAtRunFailsThatRunOnly) {
  auto gpu = vkfuse::Model::load_bytes(bytes_, options("gpu"));
  vk::inject_fault(vk::FaultSite::submit, VK_ERROR_OUT_OF_DEVICE_MEMORY);
  expect_run_fails(gpu, ErrorKind::OutOfDeviceMemory, "memory");
  expect_close(run(gpu));
  EXPECT_TRUE(gpu.warnings().empty());
}

TEST_F(DeviceFaults, AnExplicitGpuStrategyDoesNotFallBackToTheHost) {
  auto gpu = vkfuse::Model::load_bytes(bytes_, options("gpu"));
  vk::inject_fault(vk::FaultSite::submit, VK_ERROR_DEVICE_LOST);
  expect_run_fails(gpu, ErrorKind::DeviceLost, "lost");
  // The device cannot be set up again: the rebuild's allocations fail.
  vk::inject_fault(vk::FaultSite::allocate, VK_ERROR_OUT_OF_DEVICE_MEMORY, 0, -1);
  expect_run_fails(gpu, ErrorKind::OutOfDeviceMemory, "MiB");
  EXPECT_NE(gpu.backend_description().find("rebuild"), std::string::npos) << gpu.backend_description();
  vk::clear_faults();
  expect_close(run(gpu));  // and it recovers once the device does
  EXPECT_EQ(gpu.strategy(), "gpu");
}

TEST_F(DeviceFaults, TheDefaultStrategyFallsBackToTheHostWhenTheDeviceCannotBeRebuilt) {
  auto fused = vkfuse::Model::load_bytes(bytes_, offloading());
  ASSERT_EQ(fused.backend_description().find("0 dispatch units"), std::string::npos)
      << "the what-if plan should offload: " << fused.backend_description();
  expect_close(run(fused));
  vk::inject_fault(vk::FaultSite::wait, VK_ERROR_DEVICE_LOST);
  expect_run_fails(fused, ErrorKind::DeviceLost, "lost");
  vk::inject_fault(vk::FaultSite::allocate, VK_ERROR_OUT_OF_DEVICE_MEMORY, 0, -1);
  expect_close(run(fused));  // on the host
  vk::clear_faults();
  EXPECT_EQ(fused.strategy(), "cpu");
  ASSERT_FALSE(fused.warnings().empty());
  EXPECT_NE(fused.warnings().back().find("running on the host from now on"), std::string::npos)
      << fused.warnings().back();
  EXPECT_NE(fused.backend_description().find("0 dispatch units"), std::string::npos) << fused.backend_description();
  expect_close(run(fused));
}

// Several runs in flight when the device is lost: every one either succeeds
// with the right answer or fails with a device error; none hangs, and the
// model serves correct answers afterwards.
TEST_F(DeviceFaults, ALostDeviceWithRunsInFlight) {
  vkfuse::LoadOptions o = options("gpu");
  o.pipeline = 3;
  auto gpu = vkfuse::Model::load_bytes(bytes_, o);
  vk::inject_fault(vk::FaultSite::submit, VK_ERROR_DEVICE_LOST, 2, 1);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0), lost(4, 0), other(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < 3; ++r) {
        try {
          const auto y = run(gpu);
          bool same = y.size() == want_.size();
          for (std::size_t i = 0; same && i < y.size(); ++i) same = std::fabs(y[i] - want_[i]) <= 1e-4f * (1 + std::fabs(want_[i]));
          (same ? ok : other)[static_cast<std::size_t>(t)]++;
        } catch (const vkfuse::Error& e) {
          (vkfuse::is_device_error(e.kind()) ? lost : other)[static_cast<std::size_t>(t)]++;
        }
      }
    });
  for (auto& th : threads) th.join();
  int n_ok = 0, n_lost = 0, n_other = 0;
  for (int t = 0; t < 4; ++t) n_ok += ok[t], n_lost += lost[t], n_other += other[t];
  EXPECT_EQ(n_other, 0);
  EXPECT_GE(n_lost, 1);
  EXPECT_EQ(n_ok + n_lost, 12);
  vk::clear_faults();
  for (int i = 0; i < 4; ++i) expect_close(run(gpu));
}

}  // namespace
