// The runner, end to end: every bad input is a one-line error and a nonzero
// exit, never a crash; good input round-trips through .bin and .npy.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "planner/planner.h"
#include "tests/onnx_builder.h"
#include "vkfuse/vkfuse.h"

namespace fs = std::filesystem;
using vkfuse::testing::OnnxBuilder;

namespace {

struct Result {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vkfuse-cli-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    model_ = path("model.onnx");
    vkfuse::testing::conv_bn_relu_model().save(model_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  Result vkfuse(const std::string& args) const {
    const std::string err_file = path("stderr.txt");
    const std::string cmd = std::string(VKFUSE_CLI) + " " + args + " 2>" + err_file;
    Result r;
    FILE* p = ::popen(cmd.c_str(), "r");
    EXPECT_NE(p, nullptr);
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int status = ::pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::ifstream f(err_file);
    r.err.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return r;
  }

  void write_bytes(const std::string& name, const std::string& bytes) const {
    std::ofstream f(path(name), std::ios::binary);
    f << bytes;
  }
  void write_floats(const std::string& name, const std::vector<float>& v) const {
    write_bytes(name, std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  }

  // A failed run: nonzero exit (not a signal), one "vkfuse: error:" line naming every needle.
  void expect_one_line_error(const std::string& args, const std::vector<std::string>& needles) const {
    Result r = vkfuse(args + " -q");
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("vkfuse: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "expected one line:\n" << r.err;
    for (auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  }

  fs::path dir_;
  std::string model_;
};

std::vector<float> ramp(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::cos(0.1f * static_cast<float>(i));
  return v;
}

// A version 1.0 .npy file of float32 values, written by hand as NumPy would.
std::string npy_bytes(const std::string& shape_tuple, const std::vector<float>& values) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple + ", }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string npy = "\x93NUMPY\x01";
  npy += '\0';
  npy += static_cast<char>(header.size() & 0xff);
  npy += static_cast<char>(header.size() >> 8);
  npy += header;
  npy.append(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  return npy;
}

std::vector<float> read_floats(const std::string& path, std::size_t skip = 0) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v((bytes.size() - skip) / 4);
  std::memcpy(v.data(), bytes.data() + skip, v.size() * 4);
  return v;
}

}  // namespace

TEST_F(CliTest, HelpListsCommands) {
  Result r = vkfuse("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (auto word : {"run", "info", "devices", "Examples"}) EXPECT_NE(r.out.find(word), std::string::npos) << word;
  Result rh = vkfuse("run --help");
  for (auto word : {"--input", "--output", "--strategy", "--iters", "--warmup", "--threads", "--json"})
    EXPECT_NE(rh.out.find(word), std::string::npos) << word;
}

TEST_F(CliTest, RunMatchesTheApiWithBinAndNpy) {
  const auto x = ramp(50);
  write_floats("x.bin", x);
  Result r = vkfuse("run " + model_ + " --input " + path("x.bin") + " --output " + path("y.bin") + " --output " +
                    path("unused_extra.bin") + " -q");
  // Two --output files for a one-output model is a usage error.
  EXPECT_NE(r.exit_code, 0);
  r = vkfuse("run " + model_ + " --input " + path("x.bin") + " --output " + path("y.bin") + " -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  auto bytes = vkfuse::testing::conv_bn_relu_model().byte_vector();
  auto model = vkfuse::Model::load_bytes(bytes);
  std::vector<float> expected(3);
  vkfuse::InputBuffer in{"x", x};
  vkfuse::OutputBuffer out{"y", expected};
  model.run({&in, 1}, {&out, 1});
  EXPECT_EQ(read_floats(path("y.bin")), expected);

  // The same through .npy, with the output's header checked.
  write_bytes("x.npy", npy_bytes("(1, 2, 5, 5)", x));
  r = vkfuse("run " + model_ + " --input " + path("x.npy") + " --output " + path("y.npy") + " -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream f(path("y.npy"), std::ios::binary);
  std::string y((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_GT(y.size(), 10u);
  const std::size_t hlen = static_cast<unsigned char>(y[8]) | (static_cast<unsigned char>(y[9]) << 8);
  EXPECT_NE(y.find("'shape': (1, 3, 1, 1)"), std::string::npos);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  EXPECT_EQ(read_floats(path("y.npy"), 10 + hlen), expected);
}

TEST_F(CliTest, JsonReportsLatencyStrategyAndShape) {
  Result r = vkfuse("run " + model_ + " --json --iters 3 --warmup 1 -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["strategy"], "fused");  // the default
  EXPECT_EQ(j["link"], "measured");
  EXPECT_GT(j["predicted_ms"].get<double>(), 0.0);
  EXPECT_EQ(j["iterations"], 3);
  EXPECT_EQ(j["output_shape"], (std::vector<int>{1, 3, 1, 1}));
  const double mn = j["latency_ms"]["min"], md = j["latency_ms"]["median"], mx = j["latency_ms"]["max"];
  EXPECT_LE(mn, md);
  EXPECT_LE(md, mx);
  EXPECT_GT(mn, 0.0);
  for (const char* k : {"host_weights", "host_activations", "device_weights", "device_activations", "device_staging"})
    EXPECT_GE(j["memory_bytes"][k].get<std::int64_t>(), 0) << k;
  EXPECT_GT(j["memory_bytes"]["peak_host_rss"].get<std::int64_t>(), 0);
}

// The load's phases: import, plan and executors add up to (about) the load,
// and on the GPU the executors' time splits into its device phases.
TEST_F(CliTest, JsonReportsLoadPhases) {
  Result r = vkfuse("run " + model_ + " -s gpu --json -n 1 -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const auto& p = j["load_phases_ms"];
  const double load = j["load_ms"], top = p["import"].get<double>() + p["plan"].get<double>() + p["executors"].get<double>();
  EXPECT_LE(top, load * 1.001 + 0.1);
  EXPECT_GE(top, load * 0.5) << j.dump();
  double device = 0;
  for (const char* k : {"shader_lowering", "shader_compile", "pipelines", "weights_upload", "warmup"}) {
    EXPECT_GE(p[k].get<double>(), 0) << k;
    device += p[k].get<double>();
  }
  EXPECT_GT(device, 0);
  EXPECT_LE(device, p["executors"].get<double>() * 1.001 + 0.1);
  EXPECT_GE(j["shaders"].get<int>(), 1);
}

// `run --json` puts the plan's prediction next to the measurement, in total
// and per plan step: one entry per host segment, and per dispatch unit one for
// its compute plus one each for its uploads and downloads when it has any.
TEST_F(CliTest, JsonReportsPredictedAgainstMeasuredPerStep) {
  for (const std::string strategy : {"cpu", "naive", "gpu"}) {
    Result r = vkfuse("run " + model_ + " --strategy " + strategy + " --json --iters 2 --warmup 1 -q");
    ASSERT_EQ(r.exit_code, 0) << strategy << ": " << r.err;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_TRUE(j.contains("prediction")) << r.out;
    const auto& p = j["prediction"];
    EXPECT_GT(p["predicted_ms"].get<double>(), 0.0) << strategy;
    EXPECT_DOUBLE_EQ(p["predicted_ms"].get<double>(), j["predicted_ms"].get<double>());
    EXPECT_DOUBLE_EQ(p["measured_ms"].get<double>(), j["latency_ms"]["median"].get<double>());
    EXPECT_GT(p["measured_ms"].get<double>(), 0.0);
    EXPECT_NEAR(p["ratio"].get<double>(), p["measured_ms"].get<double>() / p["predicted_ms"].get<double>(), 1e-9);

    // The same plan, exported: count the steps it implies.
    Result plan = vkfuse("plan " + model_ + " --strategy " + strategy + " --json " + path("plan.json"));
    ASSERT_EQ(plan.exit_code, 0) << plan.err;
    std::ifstream pf(path("plan.json"));
    const auto pj = nlohmann::json::parse(pf);
    std::size_t expected = 0;
    bool previous_host = false;
    for (const auto& step : pj["order"]) {
      const bool host = step["kind"] == "host_op";
      if (host && !previous_host) ++expected;  // a new host segment
      previous_host = host;
    }
    for (const auto& u : pj["units"]) expected += 1 + (u["uploads"].empty() ? 0 : 1) + (u["downloads"].empty() ? 0 : 1);
    ASSERT_EQ(p["steps"].size(), expected) << strategy << ": " << p.dump(1);
    if (strategy == "cpu") {
      EXPECT_EQ(expected, 1u);
    } else {
      EXPECT_GE(expected, 3u) << "a unit with its upload and download";
    }

    double predicted = 0, measured = 0;
    for (const auto& s : p["steps"]) {
      const std::string device = s["device"];
      EXPECT_TRUE(device == "host" || device == "accelerator" || device == "link") << device;
      EXPECT_FALSE(s["name"].get<std::string>().empty());
      EXPECT_GT(s["predicted_ms"].get<double>(), 0.0) << s.dump();
      EXPECT_GE(s["measured_ms"].get<double>(), 0.0) << s.dump();
      if (device == "link") {
        EXPECT_GT(s["bytes"].get<std::int64_t>(), 0) << s.dump();
      } else {
        EXPECT_GT(s["measured_ms"].get<double>(), 0.0) << s.dump();
        EXPECT_EQ(s["bytes"].get<std::int64_t>(), 0) << s.dump();
      }
      predicted += s["predicted_ms"].get<double>();
      measured += s["measured_ms"].get<double>();
    }
    EXPECT_NEAR(p["steps_predicted_ms"].get<double>(), predicted, 1e-9);
    EXPECT_NEAR(p["steps_measured_ms"].get<double>(), measured, 1e-9);
    // The steps are the run, less the executor's own bookkeeping.
    EXPECT_LE(measured, 1.5 * j["latency_ms"]["max"].get<double>() + 0.05) << p.dump(1);
    if (pj["shares_host_cores"].is_boolean() && pj["shares_host_cores"].get<bool>()) {
      EXPECT_NEAR(predicted, p["predicted_ms"].get<double>(), 1e-6 * predicted + 1e-9)
          << "sequential plan: the steps add up to the total";
    }
  }
  // The human report says both, with their ratio.
  Result r = vkfuse("run " + model_ + " --iters 2 --warmup 1 -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("predicted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("measured"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ratio"), std::string::npos) << r.out;
}

TEST_F(CliTest, InfoReportsFlopsAndParameters) {
  Result r = vkfuse("info " + model_ + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  // Conv 3x3, 2→3 channels, 5x5 output: 2 * 25 * 3 * 18 = 2700 FLOPs; GAP reads 75.
  EXPECT_EQ(j["flops"], 2700 + 75);
  EXPECT_EQ(j["parameters"], 3 * 2 * 9 + 3);  // BN folded into the conv's bias
  EXPECT_EQ(j["ops"]["Conv"], 1);
  EXPECT_FALSE(j["ops"].contains("BatchNormalization"));
}

TEST_F(CliTest, InfoReportsTheHostArena) {
  Result r = vkfuse("info " + model_ + " --json -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  // x [1,2,5,5], the conv's output [1,3,5,5] (BN and Relu fused) and y
  // [1,3,1,1]: 128 floats one buffer each. Blocks are rounded to 16 floats;
  // x dies at the conv, where y is not yet live, so y reuses x's block:
  // 80 + 64 floats.
  EXPECT_EQ(j["host_unplanned_bytes"], (50 + 75 + 3) * 4);
  EXPECT_EQ(j["host_arena_bytes"], (80 + 64) * 4);
  EXPECT_NE(j["host_kernels"].get<std::string>(), "");

  r = vkfuse("info " + model_ + " -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("host arena  0.0 MiB peak activation memory (0.0 MiB without reuse)"), std::string::npos)
      << r.out;
}

// Through the public API: reuse makes ResNet-18's arena a fraction of its tensors.
// `info --memory STRATEGY` loads the model that way and reports what it holds.
TEST_F(CliTest, InfoReportsMemoryWhenAsked) {
  Result cpu = vkfuse("info " + model_ + " --memory cpu --json -q");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  auto j = nlohmann::json::parse(cpu.out);
  EXPECT_EQ(j["memory_strategy"], "cpu");
  EXPECT_GT(j["memory_bytes"]["host_weights"].get<std::int64_t>(), 0);
  EXPECT_EQ(j["memory_bytes"]["device_weights"].get<std::int64_t>(), 0);
  Result plain = vkfuse("info " + model_ + " --json -q");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_FALSE(nlohmann::json::parse(plain.out).contains("memory_bytes"));  // no executors unless asked
  Result text = vkfuse("info " + model_ + " --memory gpu -q");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("memory (gpu) host:"), std::string::npos) << text.out;
}

TEST(ModelSummary, HostArenaOfResNet18) {
  vkfuse::LoadOptions opts;
  opts.strategy = "reference";
  const auto s = vkfuse::Model::builtin("resnet18", opts).summary();
  EXPECT_GT(s.host_arena_bytes, 0);
  EXPECT_LT(s.host_arena_bytes * 2, s.host_unplanned_bytes);
  EXPECT_FALSE(s.host_kernels.empty());
}

// What a loaded ResNet-18 holds, per side: repacked weights within 2x the
// model's parameters (BatchNorm folded in; Winograd's transformed filters
// are the most), the
// activation arena as planned, nothing on the side it does not use.
TEST(ModelMemory, ResNet18OnTheHostAndOnTheDevice) {
  vkfuse::LoadOptions opts;
  opts.strategy = "cpu";
  opts.threads = 2;
  const vkfuse::Model cpu = vkfuse::Model::builtin("resnet18", opts);
  const std::int64_t params = cpu.summary().parameter_count * 4;
  const vkfuse::MemoryReport h = cpu.memory();
  EXPECT_GE(h.host_weight_bytes, params * 9 / 10);
  EXPECT_LE(h.host_weight_bytes, 2 * params);
  EXPECT_EQ(h.host_activation_bytes, cpu.summary().host_arena_bytes);
  EXPECT_EQ(h.device_weight_bytes + h.device_activation_bytes + h.device_staging_bytes, 0);
  EXPECT_GT(h.peak_host_rss_bytes, h.host_weight_bytes);
  if (vkfuse::list_devices().empty()) GTEST_SKIP() << "no Vulkan device";
  opts.strategy = "gpu";
  const vkfuse::MemoryReport d = vkfuse::Model::builtin("resnet18", opts).memory();
  EXPECT_GE(d.device_weight_bytes, params * 9 / 10);  // BatchNorm folded into the convolutions
  EXPECT_LE(d.device_weight_bytes, 2 * params);
  EXPECT_GT(d.device_activation_bytes, 0);
  EXPECT_LE(d.device_activation_bytes, cpu.summary().host_unplanned_bytes);
  EXPECT_EQ(d.host_weight_bytes + d.host_activation_bytes, 0);
}

TEST_F(CliTest, DevicesDoesNotFail) {
  Result r = vkfuse("devices");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
}

// Without the Vulkan loader (VKFUSE_VULKAN_LOADER names a file that is not
// there) vkfuse still starts: the default strategy runs on the host and says
// why, an explicit GPU strategy is one clear error, `devices` lists none.
// The CLI does not link libvulkan at all (it is opened at run time).
TEST_F(CliTest, WithoutTheVulkanLoaderTheHostRunsAndSaysWhy) {
  setenv("VKFUSE_VULKAN_LOADER", path("no-such-libvulkan.so.1").c_str(), 1);
  const Result run = vkfuse("run " + model_ + " -n 1");
  const Result gpu = vkfuse("run " + model_ + " -s gpu -n 1 -q");
  const Result devices = vkfuse("devices");
  unsetenv("VKFUSE_VULKAN_LOADER");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("no-such-libvulkan.so.1"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("running on the host"), std::string::npos) << run.err;
  EXPECT_NE(gpu.exit_code, 0);
  EXPECT_LT(gpu.exit_code, 128) << gpu.err;
  EXPECT_NE(gpu.err.find("libvulkan1"), std::string::npos) << gpu.err;
  EXPECT_EQ(devices.exit_code, 0) << devices.err;
  EXPECT_NE(devices.out.find("no Vulkan devices found"), std::string::npos) << devices.out;
  const std::string ldd = path("ldd.txt");
  ASSERT_EQ(std::system(("ldd " + std::string(VKFUSE_CLI) + " > " + ldd).c_str()), 0);
  std::ifstream f(ldd);
  const std::string libs((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(libs.find("libvulkan.so"), std::string::npos) << libs;  // (a preloaded driver, libvulkan_lvp, may show)
}

TEST_F(CliTest, MissingEmptyTruncatedAndRandomFiles) {
  expect_one_line_error("run " + path("nope.onnx"), {"nope.onnx"});
  write_bytes("empty.onnx", "");
  expect_one_line_error("run " + path("empty.onnx"), {"empty.onnx", "empty"});
  const std::string bytes = vkfuse::testing::conv_bn_relu_model().bytes();
  write_bytes("truncated.onnx", bytes.substr(0, bytes.size() / 2));
  expect_one_line_error("run " + path("truncated.onnx"), {"truncated.onnx"});
  std::mt19937 rng(42);
  std::string noise(10000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  write_bytes("random.onnx", noise);
  expect_one_line_error("run " + path("random.onnx"), {"random.onnx", "not a valid ONNX model"});
  expect_one_line_error("info " + path("random.onnx"), {"not a valid ONNX model"});
}

TEST_F(CliTest, CyclesDanglingInputsAndUnsupportedOps) {
  OnnxBuilder cyc;
  cyc.input("x", {2}).output("y");
  cyc.node("Add", {"x", "b"}, {"a"}, "first");
  cyc.node("Relu", {"a"}, {"b"}, "second");
  cyc.node("Relu", {"a"}, {"y"}, "third");
  cyc.save(path("cycle.onnx"));
  expect_one_line_error("run " + path("cycle.onnx"), {"cycle"});

  OnnxBuilder dangling;
  dangling.input("x", {2}).output("y");
  dangling.node("Add", {"x", "ghost"}, {"y"}, "adder");
  dangling.save(path("dangling.onnx"));
  expect_one_line_error("run " + path("dangling.onnx"), {"ghost", "adder"});

  OnnxBuilder lstm;
  lstm.input("x", {1, 4, 8}).output("y");
  lstm.node("LSTM", {"x"}, {"y"}, "my_lstm");
  lstm.save(path("lstm.onnx"));
  expect_one_line_error("run " + path("lstm.onnx"), {"LSTM", "my_lstm"});
}

TEST_F(CliTest, WrongInputSizeOrShape) {
  write_floats("short.bin", ramp(49));
  expect_one_line_error("run " + model_ + " --input " + path("short.bin"), {"short.bin", "196 bytes", "200 bytes"});
  write_bytes("odd.bin", "abcde");
  expect_one_line_error("run " + model_ + " --input " + path("odd.bin"), {"odd.bin"});
  write_bytes("shape.npy", npy_bytes("(2, 5, 5)", ramp(50)));
  expect_one_line_error("run " + model_ + " --input " + path("shape.npy"), {"shape.npy", "2x5x5", "1x2x5x5"});
  expect_one_line_error("run " + model_ + " --input " + path("missing.bin"), {"missing.bin"});
  expect_one_line_error("run " + model_ + " --input nope=" + path("short.bin"), {"nope"});
}

TEST_F(CliTest, UnknownStrategyOrModelName) {
  expect_one_line_error("run " + model_ + " --strategy warp", {"warp", "reference"});
  expect_one_line_error("run resnet1000", {"resnet1000", "resnet18"});
}

TEST_F(CliTest, PlanWritesTextJsonAndDot) {
  Result r = vkfuse("plan " + model_ + " --link edge --json " + path("plan.json") + " --dot " + path("plan.dot"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("edge"), std::string::npos) << "every report names the link in force";
  EXPECT_NE(r.out.find("predicted"), std::string::npos);  // the plan's predicted time
  std::ifstream jf(path("plan.json"));
  auto j = nlohmann::json::parse(jf);
  EXPECT_EQ(j["strategy"], "fused");
  std::ifstream df(path("plan.dot"));
  std::string dot((std::istreambuf_iterator<char>(df)), std::istreambuf_iterator<char>());
  EXPECT_EQ(dot.rfind("digraph", 0), 0u);
  expect_one_line_error("plan " + model_ + " --link warp9", {"warp9"});
  expect_one_line_error("plan " + model_ + " --strategy sideways", {"sideways"});
  expect_one_line_error("plan " + model_ + " --profile " + path("missing.json"), {"missing.json"});
}

TEST_F(CliTest, RunsASavedPlanAndRejectsOneThatDoesNotFit) {
  // Save a gpu plan, run it (the same answer as the reference), then break it.
  ASSERT_EQ(vkfuse("plan " + model_ + " --strategy gpu --json " + path("plan.json")).exit_code, 0);
  Result ref = vkfuse("run " + model_ + " --strategy reference --output " + path("ref.bin"));
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  Result r = vkfuse("run " + model_ + " --plan " + path("plan.json") + " --json --output " + path("got.bin"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["strategy"], "gpu") << "the saved plan's strategy is the one in force";
  std::ifstream a(path("ref.bin"), std::ios::binary), b(path("got.bin"), std::ios::binary);
  std::string ra((std::istreambuf_iterator<char>(a)), std::istreambuf_iterator<char>());
  std::string rb((std::istreambuf_iterator<char>(b)), std::istreambuf_iterator<char>());
  ASSERT_EQ(ra.size(), rb.size());
  ASSERT_EQ(ra.size() % 4, 0u);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ra.size() / 4; ++i) {
    float p, q;
    std::memcpy(&p, ra.data() + 4 * i, 4);
    std::memcpy(&q, rb.data() + 4 * i, 4);
    num += (static_cast<double>(p) - q) * (static_cast<double>(p) - q);
    den += static_cast<double>(p) * p;
  }
  EXPECT_LT(std::sqrt(num / den), 1e-4);

  std::ifstream jf(path("plan.json"));
  auto plan = nlohmann::json::parse(jf);
  auto bad = plan;
  bad["nodes"][0]["name"] = "no_such_node";
  std::ofstream(path("unknown.json")) << bad.dump();
  expect_one_line_error("run " + model_ + " --plan " + path("unknown.json"), {"no_such_node", "vkfuse plan"});
  expect_one_line_error("run " + model_ + " --plan " + path("missing.json"), {"missing.json"});
  std::ofstream(path("garbage.json")) << "{ not json";
  expect_one_line_error("run " + model_ + " --plan " + path("garbage.json"), {"JSON"});
}

TEST_F(CliTest, PipelineReportsThroughputAndPercentiles) {
  Result r = vkfuse("run " + model_ + " --strategy gpu --pipeline 2 --iters 6 --warmup 1 --json -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pipeline"], 2);
  EXPECT_GT(j["throughput_per_s"].get<double>(), 0);
  EXPECT_LE(j["latency_ms"]["p50"].get<double>(), j["latency_ms"]["p90"].get<double>());
  EXPECT_LE(j["latency_ms"]["p90"].get<double>(), j["latency_ms"]["p99"].get<double>());
  expect_one_line_error("run " + model_ + " --pipeline 0", {"pipeline"});
}

// One loaded model, several runs in flight from several threads: every run
// gives the answer a run alone gives, for every kind of plan.
TEST(Pipeline, ConcurrentRunsGiveTheSameAnswers) {
  const auto bytes = vkfuse::testing::conv_bn_relu_model().byte_vector();
  for (const char* strategy : {"reference", "cpu", "gpu", "naive"}) {
    vkfuse::LoadOptions opts;
    opts.strategy = strategy;
    opts.threads = 1;
    opts.calibrate = false;
    opts.link = "bw=200,lat=300";  // an emulated link, so that runs overlap on it
    auto alone = vkfuse::Model::load_bytes(bytes, opts);
    opts.pipeline = 3;
    auto shared = vkfuse::Model::load_bytes(bytes, opts);
    const auto& in = alone.inputs()[0];
    const auto& out = alone.outputs()[0];
    constexpr int kThreads = 4, kRuns = 3;
    std::vector<std::vector<float>> x(kThreads), want(kThreads), got(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      x[t].resize(static_cast<std::size_t>(in.element_count()));
      for (std::size_t i = 0; i < x[t].size(); ++i) x[t][i] = std::sin(0.1f * static_cast<float>(i) + static_cast<float>(t));
      want[t].resize(static_cast<std::size_t>(out.element_count()));
      got[t].resize(want[t].size());
      const vkfuse::InputBuffer ib[] = {{in.name, x[t]}};
      const vkfuse::OutputBuffer ob[] = {{out.name, want[t]}};
      alone.run(ib, ob);
    }
    std::vector<std::thread> threads;
    std::vector<int> mismatches(kThreads, 0);
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int r = 0; r < kRuns; ++r) {
          std::fill(got[t].begin(), got[t].end(), 0.f);
          const vkfuse::InputBuffer ib[] = {{in.name, x[t]}};
          const vkfuse::OutputBuffer ob[] = {{out.name, got[t]}};
          shared.run(ib, ob);
          if (got[t] != want[t]) ++mismatches[t];
        }
      });
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << strategy << ", thread " << t;
  }
}

TEST_F(CliTest, PlanWhatIfAgainstAFasterAcceleratorProfile) {
  // A hand-written accelerator ten times faster than the default host, behind
  // the edge link: the built-in ResNet-18 should then offload, and say the
  // plan is predicted.
  auto fast = vkfuse::planner::default_host_profile();
  fast.name = "what-if accelerator";
  fast.kind = "vulkan";
  for (auto& c : fast.classes) {
    for (auto& p : c.throughput) p.gflops *= 10;
    c.bandwidth_gbs *= 10;
  }
  vkfuse::planner::save_device_profile(fast, path("fast.json"));
  Result r = vkfuse("plan resnet18 --link edge --profile " + path("fast.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("what-if accelerator"), std::string::npos);
  EXPECT_NE(r.out.find("PREDICTED"), std::string::npos);
  EXPECT_NE(r.out.find(" accel "), std::string::npos) << r.out;
  Result t = vkfuse("plan resnet18 --table --profile " + path("fast.json"));
  ASSERT_EQ(t.exit_code, 0) << t.err;
  for (auto s : {"cpu", "gpu", "naive", "fused", "passes", "fuse-all", "per-op"}) EXPECT_NE(t.out.find(s), std::string::npos) << s;
}

// A default plan that offloads (a what-if accelerator ten times this host on
// a fast link): the first result comes from the host while the accelerator's
// part builds, and the timed runs use the plan once it is ready.
TEST_F(CliTest, TheFirstResultComesFromTheHostWhileThePlanBuilds) {
  if (vkfuse::list_devices().empty()) GTEST_SKIP() << "no Vulkan device";
  vkfuse::testing::two_conv_model().save(path("two_conv.onnx"));
  const std::string profile = std::string(VKFUSE_SOURCE_DIR) + "/tools/profiles/whatif-10x-accelerator.json";
  Result r = vkfuse("run " + path("two_conv.onnx") + " --profile " + profile + " --link local --json -n 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const double first = j["first_result_ms"], ready = j["plan_ready_ms"], load = j["load_ms"];
  EXPECT_GT(first, load);
  EXPECT_GE(ready, first);
  EXPECT_GT(j["dispatches"].get<int>(), 0) << "the timed runs did not use the plan";
  EXPECT_GT(j["load_phases_ms"]["background"].get<double>(), 0);
  EXPECT_NE(r.err.find("first result (from the host)"), std::string::npos) << r.err;
}
