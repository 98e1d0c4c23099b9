// Calibration's guard against a busy machine: the share of the CPUs other
// processes took is measured (OtherCpuUse), stored in the profile, and a
// cached profile measured under load is reported when it is planned with.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "planner/profile.h"
#include "runtime/calibration.h"

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
  const fs::path dir = fs::temp_directory_path() / ("vkfuse-test-cache-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const char* old = std::getenv("VKFUSE_CACHE_DIR");
  const std::string saved = old ? old : "";
  setenv("VKFUSE_CACHE_DIR", dir.c_str(), 1);

  // A measured host profile as calibration would cache it, but taken while
  // other processes used 45% of the CPUs.
  const p::DeviceProfile id = rt::host_identity();
  p::DeviceProfile host = p::default_host_profile();
  host.name = id.name;
  host.uuid = id.uuid;
  host.driver = id.driver;
  host.vkfuse_version = id.vkfuse_version;
  host.measured = true;
  for (auto& pt : host.op_class(p::OpClass::direct_conv).throughput) pt.shape = {3136, 9, 1, 64};
  auto lines_for = [&](double share) {
    host.others_cpu_share = share;
    p::save_device_profile(host, (dir / p::profile_cache_file_name(id)).string());
    std::vector<std::string> lines;
    const auto profiles = rt::planning_profiles({}, false, [&](const std::string& l) { lines.push_back(l); });
    EXPECT_NEAR(profiles.host.others_cpu_share, share, 1e-9);  // the cached profile was used
    std::string all;
    for (auto& l : lines) all += l + "\n";
    return all;
  };
  const std::string busy = lines_for(0.45), quiet = lines_for(0.05);
  if (old) setenv("VKFUSE_CACHE_DIR", saved.c_str(), 1);
  else unsetenv("VKFUSE_CACHE_DIR");
  fs::remove_all(dir);

  EXPECT_NE(busy.find("other processes used 45% of the CPUs while the host"), std::string::npos) << busy;
  EXPECT_NE(busy.find("run `vkfuse calibrate` again when the machine is idle"), std::string::npos) << busy;
  EXPECT_EQ(quiet.find("other processes used"), std::string::npos) << quiet;
}
