// tests/models/test_zoo_models.cpp — whole CNNs from torchvision and timm
// against PyTorch's outputs, through the public API and through the CLI.
//
// The models (random weights, calibrated BatchNorm statistics) and their
// reference data are exported at test-setup time by tools/export_torchvision.py
// and tools/export_timm.py (fixtures data.torchvision, data.timm) into
// ${VKFUSE_TESTDATA}/<zoo>/:
//   NAME.onnx, NAME.input.{npy,bin}, NAME.output.{npy,bin}
// (.bin: raw little-endian float32; .npy: the same data, with its shape).
// A missing export is a failure, never a skip.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "vkfuse/vkfuse.h"

namespace fs = std::filesystem;

namespace {

constexpr double kTolerance = 1e-4;  // relative L2 error, fp32

// Each zoo's "ci" set by default and its "full" set with VKFUSE_ZOO_SET=full
// (ctest -L zoo_full): they must match SETS in tools/export_torchvision.py
// and tools/export_timm.py.
const char* const kTorchvisionCi[] = {"resnet18",      "resnet50",     "inception_v3",
                                      "googlenet",     "mobilenet_v2", "squeezenet1_1",
                                      "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"};
const char* const kTorchvisionMore[] = {"alexnet",          "resnet34",           "resnext50_32x4d",
                                        "densenet121",      "squeezenet1_0",      "shufflenet_v2_x1_0",
                                        "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet1_0",
                                        "efficientnet_b0",  "regnet_x_400mf",     "regnet_y_400mf",
                                        "vgg11",            "wide_resnet50_2",    "efficientnet_v2_s",
                                        "convnext_tiny",    "swin_t",             "vit_b_16",
                                        "maxvit_t"};
const char* const kTimmCi[] = {"efficientnet_b0", "mobilenetv3_large_100", "convnext_atto",
                               "ghostnet_100",    "hrnet_w18_small",       "cspresnet50"};
const char* const kTimmFull[] = {"efficientnet_b0",  "mobilenetv3_large_100", "regnetx_002", "regnety_002",
                                 "convnext_atto",    "ghostnet_100",          "rexnet_100",  "hrnet_w18_small",
                                 "dla34",            "mnasnet_100",           "resnext26ts", "cspresnet50",
                                 "dpn48b",           "res2net50_14w_8s",      "selecsls42b", "tinynet_e",
                                 "vgg11"};

fs::path data_dir(const std::string& zoo) { return fs::path(VKFUSE_TESTDATA) / zoo; }

std::vector<float> read_f32(const fs::path& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) {
    ADD_FAILURE() << "cannot open " << path;
    return {};
  }
  const auto size = static_cast<std::size_t>(f.tellg());
  if (size % sizeof(float) != 0) ADD_FAILURE() << path << ": size " << size << " is not a multiple of 4";
  std::vector<float> v(size / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

// The shape from a .npy header (float32, C order expected).
std::vector<std::int64_t> npy_shape(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[8] = {};
  f.read(magic, 8);
  if (!f || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    ADD_FAILURE() << path << " is not a .npy file";
    return {};
  }
  std::uint32_t header_len = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    f.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
  }
  std::string header(header_len, '\0');
  f.read(header.data(), header_len);
  if (header.find("'descr': '<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
    ADD_FAILURE() << path << ": expected little-endian float32 in C order, header " << header;
  std::vector<std::int64_t> shape;
  const auto open = header.find("'shape': (");
  if (open == std::string::npos) {
    ADD_FAILURE() << path << ": no shape in header " << header;
    return shape;
  }
  const char* p = header.c_str() + open + std::strlen("'shape': (");
  while (*p && *p != ')') {
    char* end = nullptr;
    const long long d = std::strtoll(p, &end, 10);
    if (end == p) {
      ++p;
      continue;
    }
    shape.push_back(d);
    p = end;
  }
  return shape;
}

double relative_l2(std::span<const float> out, std::span<const float> ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(out[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::string shape_string(const std::vector<std::int64_t>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) r += ',';
    r += std::to_string(s[i]);
  }
  return r + "]";
}

// Every model through every executing strategy this build offers (the
// planner's mixed strategies are covered on small graphs in tests/runtime),
// and the default strategy under each link preset.
struct ModelCase {
  std::string zoo, model, strategy;
};

std::vector<ModelCase> model_cases() {
  std::vector<ModelCase> cases;
  const auto available = vkfuse::available_strategies();
  auto add = [&](const char* zoo, const char* m) {
    for (const char* s : {"reference", "cpu", "gpu"})
      if (std::find(available.begin(), available.end(), s) != available.end()) cases.push_back({zoo, m, s});
  };
  const char* set = std::getenv("VKFUSE_ZOO_SET");
  const bool full = set && std::string(set) == "full";
  for (const char* m : kTorchvisionCi) add("torchvision", m);
  if (full)
    for (const char* m : kTorchvisionMore) add("torchvision", m);
  if (full) {
    for (const char* m : kTimmFull) add("timm", m);
  } else {
    for (const char* m : kTimmCi) add("timm", m);
  }
  return cases;
}

class ZooModel : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    zoo_ = GetParam().zoo;
    name_ = GetParam().model;
    strategy_ = GetParam().strategy;
    base_ = data_dir(zoo_) / name_;
    for (const char* suffix : {".onnx", ".input.npy", ".input.bin", ".output.npy", ".output.bin"}) {
      const fs::path p = base_.string() + suffix;
      ASSERT_TRUE(fs::is_regular_file(p))
          << p << " is missing: run the fixture test data." << zoo_ << " (ctest -R data." << zoo_ << ") or "
          << "tools/export_" << zoo_ << ".py --out " << data_dir(zoo_).string();
    }
    input_ = read_f32(path(".input.bin"));
    ref_ = read_f32(path(".output.bin"));
    input_shape_ = npy_shape(path(".input.npy"));
    output_shape_ = npy_shape(path(".output.npy"));
    ASSERT_FALSE(input_.empty());
    ASSERT_FALSE(ref_.empty());
  }
  fs::path path(const char* suffix) const { return base_.string() + suffix; }

  std::string zoo_, name_, strategy_;
  fs::path base_;
  std::vector<float> input_, ref_;
  std::vector<std::int64_t> input_shape_, output_shape_;
};

TEST_P(ZooModel, ApiMatchesPyTorch) {
  vkfuse::LoadOptions opts;
  opts.strategy = strategy_;
  opts.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  try {
    auto t0 = std::chrono::steady_clock::now();
    auto model = vkfuse::Model::load(path(".onnx").string(), opts);
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_EQ(model.inputs().size(), 1u);
    ASSERT_EQ(model.outputs().size(), 1u);
    const auto& in = model.inputs()[0];
    const auto& out = model.outputs()[0];
    EXPECT_EQ(in.name, "input");
    EXPECT_EQ(out.name, "output");
    ASSERT_EQ(in.shape, input_shape_) << "input shape " << shape_string(in.shape);
    ASSERT_EQ(out.shape, output_shape_) << "output shape " << shape_string(out.shape);
    ASSERT_EQ(static_cast<std::size_t>(in.element_count()), input_.size());
    ASSERT_EQ(static_cast<std::size_t>(out.element_count()), ref_.size());

    std::vector<float> result(ref_.size(), std::nanf(""));
    const vkfuse::InputBuffer ib[] = {{in.name, input_}};
    const vkfuse::OutputBuffer ob[] = {{out.name, result}};
    model.run(ib, ob);
    auto t2 = std::chrono::steady_clock::now();

    const double err = relative_l2(result, ref_);
    std::cout << name_ << " (" << strategy_ << "): load " << std::chrono::duration<double, std::milli>(t1 - t0).count() << " ms, run "
              << std::chrono::duration<double, std::milli>(t2 - t1).count() << " ms (" << opts.threads
              << " threads), relative L2 error " << err << "\n";
    EXPECT_LE(err, kTolerance) << name_ << ": relative L2 error against PyTorch";
  } catch (const vkfuse::Error& e) {
    FAIL() << name_ << ": vkfuse::Error(" << vkfuse::error_kind_name(e.kind()) << "): " << e.what();
  }
}

// The default strategy under every link preset (and the measured link),
// planned against the 2x what-if accelerator so that it places work on the
// device (against lavapipe's own profile the host wins everywhere): wherever
// the planner puts each op, the outputs are PyTorch's.
TEST_P(ZooModel, DefaultStrategyUnderEveryLink) {
  if (strategy_ != "gpu") GTEST_SKIP() << "once per model (with the gpu cases)";
  for (const char* link : {"measured", "local", "edge"}) {
    SCOPED_TRACE(link);
    try {
      vkfuse::LoadOptions opts;
      opts.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      opts.link = link;
      opts.calibrate = false;
      opts.accel_profile = std::string(VKFUSE_SOURCE_DIR) + "/tools/profiles/whatif-2x-accelerator.json";
      auto model = vkfuse::Model::load(path(".onnx").string(), opts);
      model.wait_until_built();  // the planned placement, not the host answering meanwhile
      std::vector<float> result(ref_.size(), std::nanf(""));
      const vkfuse::InputBuffer ib[] = {{model.inputs()[0].name, input_}};
      const vkfuse::OutputBuffer ob[] = {{model.outputs()[0].name, result}};
      const auto t = model.run(ib, ob);
      const double err = relative_l2(result, ref_);
      std::cout << name_ << " (" << model.strategy() << ", link " << link << "): " << t.dispatches
                << " dispatches, relative L2 error " << err << "\n";
      EXPECT_LE(err, kTolerance);
    } catch (const vkfuse::Error& e) {
      ADD_FAILURE() << name_ << ": vkfuse::Error(" << vkfuse::error_kind_name(e.kind()) << "): " << e.what();
    }
  }
}

// Plans on the real backends: a plan made against a what-if accelerator
// (tools/profiles: most of the model on the accelerator) is saved as JSON,
// loaded back with LoadOptions::plan and run here on Halide + lavapipe; then
// the same plan edited by hand, every pooling op moved to the host (a mixed
// plan: units split around host ops). Outputs match PyTorch, and each plan
// moves exactly the bytes it lists, transfer step by transfer step (values
// passed from unit to unit stay on the device).
TEST_P(ZooModel, SavedAndEditedPlansRunOnTheRealBackends) {
  if (strategy_ != "gpu") GTEST_SKIP() << "once per model (with the gpu cases)";
  if (zoo_ != "torchvision") GTEST_SKIP() << "the torchvision models cover plan files";
  try {
    vkfuse::LoadOptions opts;
    opts.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    opts.calibrate = false;
    opts.link = "local";
    auto model = vkfuse::Model::load(path(".onnx").string(), opts);
    vkfuse::PlanOptions po;
    po.link = "local";
    po.accel_profile = std::string(VKFUSE_SOURCE_DIR) + "/tools/profiles/whatif-2x-accelerator.json";
    const vkfuse::PlanReport made = model.plan(po);
    ASSERT_GT(made.accel_ops, 0) << made.text;
    // The edit: pooling ops to the host (in a model without any, such as
    // MNASNet, whose mean folds into its classifier, or ViT, the last op);
    // accelerator ops between two host ops (in the graph's order) form one
    // unit, so the units stay acyclic.
    auto edited = nlohmann::json::parse(made.json);
    const bool has_pooling = std::any_of(edited["nodes"].begin(), edited["nodes"].end(),
                                         [](const auto& n) { return n["class"] == "pooling"; });
    ASSERT_FALSE(edited["nodes"].empty());
    if (!has_pooling) edited["nodes"].back()["unit"] = nullptr;
    int host_ops_seen = 0;
    for (auto& n : edited["nodes"]) {
      if (n["class"] == "pooling") n["unit"] = nullptr;
      if (n["unit"].is_null()) {
        ++host_ops_seen;
      } else {
        n["unit"] = host_ops_seen;
      }
    }
    for (const auto& [label, json] : {std::pair{"saved", made.json}, std::pair{"pools on the host", edited.dump()}}) {
      SCOPED_TRACE(label);
      const fs::path saved = fs::path(::testing::TempDir()) / (name_ + "." + std::to_string(json.size()) + ".plan.json");
      std::ofstream(saved) << json;
      opts.plan = saved.string();
      auto planned = vkfuse::Model::load(path(".onnx").string(), opts);
      const auto& in = planned.inputs()[0];
      const auto& out = planned.outputs()[0];
      std::vector<float> result(ref_.size(), std::nanf(""));
      const vkfuse::InputBuffer ib[] = {{in.name, input_}};
      const vkfuse::OutputBuffer ob[] = {{out.name, result}};
      const auto t = planned.run(ib, ob);
      const double err = relative_l2(result, ref_);
      std::int64_t up = 0, down = 0;
      int units = 0, host_segments = 0;
      for (const auto& step : t.steps) {
        if (step.device == "link") (step.name.find("upload") != std::string::npos ? up : down) += step.bytes;
        units += step.device == "accelerator" ? 1 : 0;
        host_segments += step.device == "host" ? 1 : 0;
      }
      std::cout << name_ << " (" << label << " what-if plan): " << units << " units, " << host_segments
                << " host segments, " << t.bytes_uploaded << " B up, " << t.bytes_downloaded
                << " B down, relative L2 error " << err << "\n";
      EXPECT_LE(err, kTolerance) << name_ << ": relative L2 error against PyTorch";
      EXPECT_EQ(t.bytes_uploaded, up);
      EXPECT_EQ(t.bytes_downloaded, down);
      if (std::string(label) != "saved") {
        EXPECT_GT(host_segments, 0);
        EXPECT_GT(units, 0);
      }
    }
  } catch (const vkfuse::Error& e) {
    FAIL() << name_ << ": vkfuse::Error(" << vkfuse::error_kind_name(e.kind()) << "): " << e.what();
  }
}

// One model of what fuses: for every strategy, the kernels a plan predicts
// (planner/kernel_fusion.h, priced by the cost model) are the dispatches the
// Vulkan executor runs, and its host kernels (HostFusion) and copies to
// planar (planner/host_layout.h) the steps the Halide lowering runs. Plans
// against the 2x what-if accelerator, so that each strategy puts work on the
// device.
TEST_P(ZooModel, PlannedKernelsAreTheExecutedKernels) {
  if (strategy_ != "gpu") GTEST_SKIP() << "once per model (with the gpu cases)";
  vkfuse::LoadOptions opts;
  opts.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  opts.calibrate = false;
  opts.link = "local";
  auto model = vkfuse::Model::load(path(".onnx").string(), opts);
  for (const char* strategy : {"gpu", "naive", "fused", "passes", "fuse-all", "per-op", "cpu"}) {
    SCOPED_TRACE(strategy);
    try {
      vkfuse::PlanOptions po;
      po.strategy = strategy;
      po.link = "local";
      po.accel_profile = std::string(VKFUSE_SOURCE_DIR) + "/tools/profiles/whatif-2x-accelerator.json";
      const vkfuse::PlanReport plan = model.plan(po);
      const fs::path saved = fs::path(::testing::TempDir()) / (name_ + "." + strategy + ".plan.json");
      std::ofstream(saved) << plan.json;
      opts.plan = saved.string();
      auto planned = vkfuse::Model::load(path(".onnx").string(), opts);
      std::vector<float> result(ref_.size());
      const vkfuse::InputBuffer ib[] = {{planned.inputs()[0].name, input_}};
      const vkfuse::OutputBuffer ob[] = {{planned.outputs()[0].name, result}};
      const auto t = planned.run(ib, ob);
      std::cout << name_ << " (" << strategy << "): " << plan.units << " units, " << plan.kernels
                << " planned kernels, " << t.dispatches << " dispatched; " << plan.host_kernels
                << " planned host kernels, " << t.host_kernels << " run; " << plan.host_copies
                << " planned copies to planar, " << t.host_copies << " run\n";
      EXPECT_EQ(t.dispatches, plan.kernels);
      EXPECT_EQ(t.host_kernels, plan.host_kernels);
      EXPECT_EQ(t.host_copies, plan.host_copies);
      EXPECT_EQ(t.bytes_uploaded, plan.bytes_uploaded);
      EXPECT_EQ(t.bytes_downloaded, plan.bytes_downloaded);
      EXPECT_LE(relative_l2(result, ref_), kTolerance);
    } catch (const vkfuse::Error& e) {
      const std::string what = e.what();
      ADD_FAILURE() << name_ << ": vkfuse::Error(" << vkfuse::error_kind_name(e.kind()) << "): " << what;
    }
  }
}

TEST_P(ZooModel, CliMatchesPyTorch) {
  if (zoo_ != "torchvision") GTEST_SKIP() << "the torchvision models cover the CLI";
  // The CLI hands the strategy to the API, which ApiMatchesPyTorch runs on
  // every model; on lavapipe a large model's CLI run cost 15-23 s of CI.
  if (strategy_ == "gpu" && name_ != "resnet18")
    GTEST_SKIP() << "the CLI runs the gpu strategy on the default model (resnet18) only";
  const fs::path tmp = fs::temp_directory_path() / ("vkfuse-test-models-" + std::to_string(::getpid()) + "-" + name_);
  fs::create_directories(tmp);
  const fs::path out_bin = tmp / "output.bin";
  const std::string cmd = std::string("'") + VKFUSE_CLI + "' run '" + path(".onnx").string() + "' --input '" +
                          path(".input.bin").string() + "' --output '" + out_bin.string() +
                          "' --strategy " + strategy_ + " 2>&1";
  std::string log;
  int status = -1;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) log.append(buf, n);
    status = ::pclose(p);
  }
  const bool ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  ASSERT_TRUE(ok) << cmd << "\nexit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << ", output:\n" << log;
  ASSERT_TRUE(fs::is_regular_file(out_bin)) << cmd << " wrote no " << out_bin << "; output:\n" << log;
  const auto result = read_f32(out_bin);
  ASSERT_EQ(result.size(), ref_.size()) << out_bin << " holds " << result.size() << " floats, expected " << ref_.size();
  const double err = relative_l2(result, ref_);
  std::cout << name_ << " (cli, " << strategy_ << "): relative L2 error " << err << "\n";
  EXPECT_LE(err, kTolerance) << name_ << ": CLI output's relative L2 error against PyTorch";
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

std::string model_test_name(const ::testing::TestParamInfo<ModelCase>& info) {
  return info.param.zoo + "_" + info.param.model + "_" + info.param.strategy;
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooModel, ::testing::ValuesIn(model_cases()), model_test_name);

}  // namespace
