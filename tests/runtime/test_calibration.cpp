// Calibration's guard against a busy machine: the share of the CPUs other
// processes took is measured (OtherCpuUse), stored in the profile, and a
// cached profile measured under load is reported when it is planned with.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "planner/profile.h"
#include "runtime/calibration.h"
#include "tests/onnx_builder.h"
#include "vkfuse/vkfuse.h"

namespace fs = std::filesystem;
namespace rt = vkfuse::runtime;
namespace p = vkfuse::planner;

namespace {

int online_cpus() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

// Child processes that spin until killed.
std::vector<pid_t> spin_processes(int count) {
  std::vector<pid_t> pids;
  for (int i = 0; i < count; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      volatile unsigned long x = 0;
      for (;;) x = x + 1;
    }
    if (pid > 0) pids.push_back(pid);
  }
  return pids;
}

void stop(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) kill(pid, SIGKILL);
  for (pid_t pid : pids) waitpid(pid, nullptr, 0);
}

// `prof` as calibration would cache it for the device `id`: its cache key,
// measured, with the shaped convolution points current profiles have.
p::DeviceProfile measured_profile(p::DeviceProfile prof, const p::DeviceProfile& id) {
  prof.name = id.name;
  prof.uuid = id.uuid;
  prof.driver = id.driver;
  prof.vkfuse_version = id.vkfuse_version;
  prof.measured = true;
  for (auto& pt : prof.op_class(p::OpClass::direct_conv).throughput) pt.shape = {3136, 9, 1, 64};
  return prof;
}

// A scratch cache folder for the profiles, in VKFUSE_CACHE_DIR for the
// test's lifetime (the previous value comes back after).
class ScratchCacheDir {
 public:
  explicit ScratchCacheDir(const std::string& name)
      : dir_(fs::temp_directory_path() / (name + "-" + std::to_string(getpid()))) {
    fs::create_directories(dir_);
    if (const char* old = std::getenv("VKFUSE_CACHE_DIR")) saved_ = old;
    setenv("VKFUSE_CACHE_DIR", dir_.c_str(), 1);
  }
  ~ScratchCacheDir() {
    if (saved_) setenv("VKFUSE_CACHE_DIR", saved_->c_str(), 1);
    else unsetenv("VKFUSE_CACHE_DIR");
    fs::remove_all(dir_);
  }
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
  std::optional<std::string> saved_;
};

// One run of `m` on the input sin(0.37 i); its first output.
std::vector<float> run_on_sines(vkfuse::Model& m) {
  std::vector<float> x(static_cast<std::size_t>(m.inputs()[0].element_count()));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  std::vector<float> y(static_cast<std::size_t>(m.outputs()[0].element_count()), -1.f);
  const vkfuse::InputBuffer in[] = {{m.inputs()[0].name, x}};
  const vkfuse::OutputBuffer out[] = {{m.outputs()[0].name, y}};
  m.run(in, out);
  return y;
}

}  // namespace

TEST(OtherCpuUse, SeesOtherProcessesButNotItsOwnThreads) {
  // This process keeping every CPU busy is not "others".
  {
    const rt::OtherCpuUse own;
    std::vector<std::thread> threads;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
    for (int i = 0; i < online_cpus(); ++i)
      threads.emplace_back([until] {
        volatile unsigned long x = 0;
        while (std::chrono::steady_clock::now() < until) x = x + 1;
      });
    for (auto& t : threads) t.join();
    const double share = own.share();
    std::printf("own threads busy: others' share %.2f\n", share);
    // Whatever else the machine runs meanwhile, not the whole of it.
    EXPECT_LT(share, 0.6);
  }
  // Other processes on every CPU while this one sleeps: most of the machine.
  const rt::OtherCpuUse others;
  const auto pids = spin_processes(online_cpus());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double share = others.share();
  stop(pids);
  std::printf("%d spinning processes: others' share %.2f\n", online_cpus(), share);
  EXPECT_GT(share, 0.6);
  EXPECT_LE(share, 1.0);
}

TEST(Calibration, CachedProfileMeasuredUnderLoadIsReported) {
  const auto accel_id = rt::accelerator_identity({});
  if (!accel_id) GTEST_SKIP() << "no Vulkan device: profiles are not planned with";
  const ScratchCacheDir scratch("vkfuse-test-cache");
  const fs::path& dir = scratch.path();

  // A measured host profile as calibration would cache it, but taken while
  // other processes used 45% of the CPUs.
  const p::DeviceProfile id = rt::host_identity();
  p::DeviceProfile host = measured_profile(p::default_host_profile(), id);
  auto lines_for = [&](double share) {
    host.others_cpu_share = share;
    p::save_device_profile(host, (dir / p::profile_cache_file_name(id)).string());
    std::vector<std::string> lines;
    const auto profiles = rt::planning_profiles({}, rt::Uses::host_and_accelerator, false, [&](const std::string& l) { lines.push_back(l); });
    EXPECT_NEAR(profiles.host.others_cpu_share, share, 1e-9);  // the cached profile was used
    std::string all;
    for (auto& l : lines) all += l + "\n";
    return all;
  };
  const std::string busy = lines_for(0.45), quiet = lines_for(0.05);

  EXPECT_NE(busy.find("other processes used 45% of the CPUs while the host"), std::string::npos) << busy;
  EXPECT_NE(busy.find("run `vkfuse calibrate` again when the machine is idle"), std::string::npos) << busy;
  EXPECT_EQ(quiet.find("other processes used"), std::string::npos) << quiet;
}

// A plan on the host alone plans with the host's cached profile whatever the
// accelerator's state (none present, never calibrated), and never looks at
// the Vulkan devices; one that may offload needs all three measured.
TEST(Calibration, HostOnlyPlansUseTheHostProfileAlone) {
  const ScratchCacheDir scratch("vkfuse-test-host-only");
  const p::DeviceProfile id = rt::host_identity();
  p::DeviceProfile host = measured_profile(p::default_host_profile(), id);
  host.others_cpu_share = 0.125;  // marks the cached profile
  p::save_device_profile(host, (scratch.path() / p::profile_cache_file_name(id)).string());

  const auto alone = rt::planning_profiles({}, rt::Uses::host, false, {});
  EXPECT_TRUE(alone.measured);
  EXPECT_NEAR(alone.host.others_cpu_share, 0.125, 1e-12);
  EXPECT_EQ(alone.max_tensor_bytes, 0u) << "the devices were not looked at";
  EXPECT_FALSE(alone.accel.measured);

  if (!rt::accelerator_identity({})) return;  // the rest needs a device whose profiles are missing
  const auto both = rt::planning_profiles({}, rt::Uses::host_and_accelerator, false, {});
  EXPECT_FALSE(both.measured) << "the accelerator and the link were never calibrated";
  EXPECT_NEAR(both.host.others_cpu_share, 0.125, 1e-12);
  EXPECT_GT(both.max_tensor_bytes, 0u);
}

// Every cached profile (host, accelerator, link) that is corrupt, truncated,
// edited after it was written (its checksum no longer matches), aged (written
// by another vkfuse for another driver) or from before checksums is discarded
// with a note naming it and why, and not planned with; whole ones are used.
TEST(Calibration, DamagedOrStaleCachedProfilesAreDiscardedWithANote) {
  const auto accel_id = rt::accelerator_identity({});
  if (!accel_id) GTEST_SKIP() << "no Vulkan device: profiles are not planned with";
  const ScratchCacheDir scratch("vkfuse-test-damaged");
  const fs::path& dir = scratch.path();

  const p::DeviceProfile host_id = rt::host_identity();
  const p::DeviceProfile host = measured_profile(p::default_host_profile(), host_id);
  const p::DeviceProfile accel = measured_profile(p::default_lavapipe_profile(), *accel_id);
  p::LinkProfile link = p::default_link_profile("cpu");
  link.name = "measured";
  link.emulated = false;
  const fs::path files[] = {dir / p::profile_cache_file_name(host_id), dir / p::profile_cache_file_name(*accel_id),
                            dir / ("link-" + p::profile_cache_file_name(*accel_id))};
  const char* who[] = {"host", "accelerator", "link"};
  auto write_all = [&] {
    p::save_device_profile(host, files[0].string());
    p::save_device_profile(accel, files[1].string());
    p::save_link_profile(link, files[2].string());
  };
  auto read = [](const fs::path& f) {
    std::ifstream in(f, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  auto write = [](const fs::path& f, const std::string& text) { std::ofstream(f, std::ios::binary | std::ios::trunc) << text; };
  auto plan_with_cache = [&](std::string& lines) {
    lines.clear();
    return rt::planning_profiles({}, rt::Uses::host_and_accelerator, false, [&](const std::string& l) { lines += l + "\n"; });
  };

  std::string lines;
  write_all();
  EXPECT_TRUE(plan_with_cache(lines).measured) << "whole, current profiles are used";
  EXPECT_EQ(lines.find("discarded"), std::string::npos) << lines;

  struct Damage {
    const char* name;
    const char* reason;
    std::function<void(const fs::path&, int)> apply;
  };
  const Damage damages[] = {
      {"garbage", "corrupt", [&](const fs::path& f, int) { write(f, "\x7f" "ELF not a profile"); }},
      {"truncated", "corrupt", [&](const fs::path& f, int) { const std::string t = read(f); write(f, t.substr(0, t.size() / 2)); }},
      {"edited", "checksum does not match",
       [&](const fs::path& f, int k) {
         std::string t = read(f);
         const std::size_t at = t.find_first_of("123456789", t.find(k == 2 ? "\"bandwidth_mbps\"" : "\"dispatch_us\""));
         t[at] = t[at] == '9' ? '8' : static_cast<char>(t[at] + 1);
         write(f, t);
       }},
      {"aged", "stale",
       [&](const fs::path& f, int k) {
         if (k == 2) {  // a link profile from before checksums
           std::string t = read(f);
           t.erase(t.find("\"checksum\""), t.find('\n', t.find("\"checksum\"")) - t.find("\"checksum\"") + 1);
           write(f, t);
           return;
         }
         p::DeviceProfile older = k == 0 ? host : accel;
         older.vkfuse_version = "0.0.1+kernels.old";
         older.driver = "an older driver";
         p::save_device_profile(older, f.string());
       }},
  };
  for (const Damage& d : damages)
    for (int k = 0; k < 3; ++k) {
      write_all();
      d.apply(files[k], k);
      const auto profiles = plan_with_cache(lines);
      EXPECT_FALSE(profiles.measured) << d.name << " " << who[k] << " profile was planned with";
      EXPECT_NE(lines.find(std::string("discarded the cached ") + who[k] + " profile " + files[k].string()),
                std::string::npos)
          << d.name << " " << who[k] << ":\n" << lines;
      EXPECT_NE(lines.find(d.reason), std::string::npos) << d.name << " " << who[k] << ":\n" << lines;
      EXPECT_FALSE(fs::exists(files[k])) << d.name << " " << who[k] << " profile was kept";
      for (int other = 0; other < 3; ++other)
        if (other != k) {
          EXPECT_TRUE(fs::exists(files[other])) << "a whole profile was discarded";
        }
    }
}

// The kernels calibration tuned are the kernels a model runs: a cached
// accelerator profile with a tuned convolution block (8x4, not lavapipe's
// 16x8) reaches the model's Vulkan executor, which says so, and the outputs
// are the default kernels' (both against the host's).
TEST(Calibration, ModelsRunTheKernelsTheProfileTuned) {
  const auto accel_id = rt::accelerator_identity({});
  if (!accel_id) GTEST_SKIP() << "no Vulkan device";
  const ScratchCacheDir scratch("vkfuse-test-tuned");
  const std::vector<std::uint8_t> bytes = vkfuse::testing::two_conv_model(24).byte_vector();
  const auto run = [&](const std::string& strategy, std::string* description) {
    vkfuse::LoadOptions o;
    o.strategy = strategy;
    vkfuse::Model m = vkfuse::Model::load_bytes(bytes, o);
    if (description) *description = m.backend_description();
    return run_on_sines(m);
  };
  const auto host = run("cpu", nullptr);
  std::string untuned_text, tuned_text;
  const auto untuned = run("gpu", &untuned_text);  // no cached profiles: the device's defaults
  EXPECT_EQ(untuned_text.find("tuned"), std::string::npos) << untuned_text;

  const p::DeviceProfile host_id = rt::host_identity();
  p::DeviceProfile accel = measured_profile(p::default_lavapipe_profile(), *accel_id);
  accel.kernel_shape.conv_ocb = 8;
  accel.kernel_shape.conv_opx = 4;
  p::LinkProfile link = p::default_link_profile("cpu");
  link.name = "measured";
  link.emulated = false;
  const fs::path& dir = scratch.path();
  p::save_device_profile(measured_profile(p::default_host_profile(), host_id),
                         (dir / p::profile_cache_file_name(host_id)).string());
  p::save_device_profile(accel, (dir / p::profile_cache_file_name(*accel_id)).string());
  p::save_link_profile(link, (dir / ("link-" + p::profile_cache_file_name(*accel_id))).string());
  ASSERT_EQ(rt::planning_profiles({}, rt::Uses::host_and_accelerator, false, {}).accel.kernel_shape, accel.kernel_shape) << "the cache round trip";

  // fp16 plans priced as fp16 kernels run: the profile's fp16_factor scales
  // the accelerator's time (0.5: the all-GPU plan's kernels predicted at half).
  const auto predicted = [&](bool fp16) {
    vkfuse::LoadOptions o;
    o.strategy = "gpu";
    o.fp16 = fp16;
    return vkfuse::Model::load_bytes(bytes, o).predicted_ms();
  };
  const double fp32_ms = predicted(false);
  accel.fp16_factor = 0.5;
  p::save_device_profile(accel, (dir / p::profile_cache_file_name(*accel_id)).string());
  EXPECT_DOUBLE_EQ(predicted(false), fp32_ms) << "fp32 plans do not change";
  EXPECT_LT(predicted(true), 0.8 * fp32_ms) << "fp16 kernels predicted faster";

  const auto tuned = run("gpu", &tuned_text);
  EXPECT_NE(tuned_text.find("kernels as tuned by calibration (conv block 8x4)"), std::string::npos) << tuned_text;
  ASSERT_EQ(tuned.size(), host.size());
  for (std::size_t i = 0; i < host.size(); ++i) {
    EXPECT_NEAR(untuned[i], host[i], 1e-4f * (1 + std::fabs(host[i]))) << i;
    EXPECT_NEAR(tuned[i], host[i], 1e-4f * (1 + std::fabs(host[i]))) << i;
  }
}

// The host's profile prices mobile layers in blocked channels from blocked
// points, timed in a chain where the host lowering holds them so (alone, a
// layer's output is the caller's and runs planar): 1x1 layers and depthwise
// ones at strides 1 and 2, beside the planar points of the single layers.
TEST(Calibration, HostProfileTimesBlockedLayersInAChain) {
  rt::ExecutorOptions options;
  options.threads = 2;
  std::string lines;
  const p::DeviceProfile host = rt::calibrate_host(options, [&](const std::string& l) { lines += l + "\n"; });
  EXPECT_NE(lines.find("24 blocked-channel layers timed in a chain"), std::string::npos) << lines;
  const auto count = [&](p::OpClass c, bool blocked, double stride) {
    int n = 0;
    for (const auto& pt : host.op_class(c).throughput)
      n += pt.shape.known() && pt.shape.blocked == blocked && pt.shape.stride == stride ? 1 : 0;
    return n;
  };
  EXPECT_EQ(count(p::OpClass::conv1x1_gemm, true, 1), 16);
  EXPECT_EQ(count(p::OpClass::depthwise, true, 1), 4);
  EXPECT_EQ(count(p::OpClass::depthwise, true, 2), 4);
  EXPECT_GT(count(p::OpClass::conv1x1_gemm, false, 1), 0);
  EXPECT_GT(count(p::OpClass::depthwise, false, 1), 0);
  EXPECT_EQ(count(p::OpClass::direct_conv, true, 1) + count(p::OpClass::pooling, true, 1), 0);
}

// The default strategy does not make its first result wait for a first
// calibration: the host answers as soon as the model is loaded while the
// background build measures what is missing (here the link), caches it,
// plans and builds; the next load finds it cached.
TEST(Calibration, DefaultStrategyAnswersWhileTheBuildCalibrates) {
  const auto accel_id = rt::accelerator_identity({});
  if (!accel_id) GTEST_SKIP() << "no Vulkan device";
  const ScratchCacheDir scratch("vkfuse-test-background");
  const fs::path& dir = scratch.path();
  const p::DeviceProfile host_id = rt::host_identity();
  p::save_device_profile(measured_profile(p::default_host_profile(), host_id),
                         (dir / p::profile_cache_file_name(host_id)).string());
  p::save_device_profile(measured_profile(p::default_lavapipe_profile(), *accel_id),
                         (dir / p::profile_cache_file_name(*accel_id)).string());
  const fs::path link_file = dir / ("link-" + p::profile_cache_file_name(*accel_id));

  const std::vector<std::uint8_t> bytes = vkfuse::testing::two_conv_model(24).byte_vector();
  vkfuse::LoadOptions cpu;
  cpu.strategy = "cpu";
  vkfuse::Model reference = vkfuse::Model::load_bytes(bytes, cpu);
  const std::vector<float> want = run_on_sines(reference);
  const auto expect_matches = [&](const std::vector<float>& got) {
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
  };

  std::string lines;
  vkfuse::LoadOptions o;  // the default strategy, answering on the host while it builds
  o.threads = 1;
  o.progress = [&](const std::string& l) { lines += l + "\n"; };
  {
    vkfuse::Model m = vkfuse::Model::load_bytes(bytes, o);
    EXPECT_NE(lines.find("answering on the host while they are measured once in the background"), std::string::npos)
        << lines;
    EXPECT_EQ(lines.find("measuring them once"), std::string::npos) << "load calibrated before returning:\n" << lines;
    expect_matches(run_on_sines(m));
    const bool ran_while_building = m.building();  // it was building during that run, then
    m.wait_until_built();
    EXPECT_FALSE(m.building());
    EXPECT_TRUE(fs::exists(link_file)) << "the background build measured the link and cached it";
    std::string warnings;
    for (const std::string& w : m.warnings()) warnings += w + "\n";
    EXPECT_EQ(warnings.find("could not"), std::string::npos) << warnings;
    // A calibration that shared the machine with the model's runs says so.
    if (ran_while_building) {
      EXPECT_NE(warnings.find("calibrated while this model answered 1 run(s)"), std::string::npos) << warnings;
    }
    expect_matches(run_on_sines(m));
  }
  lines.clear();
  vkfuse::Model again = vkfuse::Model::load_bytes(bytes, o);
  EXPECT_EQ(lines.find("measured once in the background"), std::string::npos) << "all cached now:\n" << lines;
  expect_matches(run_on_sines(again));
}
