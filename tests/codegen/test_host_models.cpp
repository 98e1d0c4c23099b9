// Whole models through the host executor: the zoo against the reference
// executor, and torchvision exports against PyTorch.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "planner/planner.h"
#include "tests/codegen/host_test_util.h"

using namespace vkfuse::testing;
namespace g = vkfuse::graph;

TEST(HostModels, ResNet18MatchesReference) {
  g::Graph graph = g::build_zoo_model("resnet18");
  g::prepare_graph(graph, 2);
  std::string desc;
  EXPECT_LE(compare_host_to_reference(graph, 1, 2, &desc), 1e-4);
  EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
  std::printf("%s\n", desc.c_str());
}

TEST(HostModels, InceptionV3MatchesReference) {
  g::Graph graph = g::build_zoo_model("inception_v3");
  g::prepare_graph(graph, 2);
  std::string desc;
  EXPECT_LE(compare_host_to_reference(graph, 2, 2, &desc), 1e-4);
  EXPECT_EQ(desc.find("fallback"), std::string::npos) << desc;
  std::printf("%s\n", desc.c_str());
}

// torchvision exports (tools/export_torchvision.py) against PyTorch's outputs.
// The files come from the test fixtures of tests/models, or from
// $VKFUSE_TORCHVISION_DIR; the test skips a model whose files are missing.
namespace {

std::string torchvision_dir() {
  if (const char* d = std::getenv("VKFUSE_TORCHVISION_DIR")) return d;
  return std::string(VKFUSE_TESTDATA) + "/torchvision";
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

class HostTorchvision : public ::testing::TestWithParam<std::string> {};

TEST_P(HostTorchvision, MatchesPyTorch) {
  const std::string base = torchvision_dir() + "/" + GetParam();
  std::ifstream probe(base + ".onnx");
  if (!probe) GTEST_SKIP() << base << ".onnx not found";
  g::Graph graph = g::import_onnx(g::ModelFile(base + ".onnx").bytes());
  g::prepare_graph(graph, 2);
  const auto x = read_floats(base + ".input.bin");
  const auto ref = read_floats(base + ".output.bin");
  ASSERT_EQ(graph.inputs.size(), 1u);
  ASSERT_EQ(static_cast<std::int64_t>(x.size()), g::element_count(graph.value(graph.inputs[0]).shape));
  std::vector<float> y(ref.size());
  vkfuse::runtime::ExecutorOptions opts;
  opts.threads = 2;
  vkfuse::runtime::HostExecutor host(graph, opts);
  const float* in[] = {x.data()};
  float* out[] = {y.data()};
  host.run(in, out);
  EXPECT_LE(rel_l2(y, ref), 1e-4) << host.description();
  EXPECT_TRUE(host.fallback_ops().empty()) << host.description();
  // The layers the all-host plan prices in blocked channels (and its copies
  // to planar) are those the lowering runs so.
  namespace pl = vkfuse::planner;
  pl::PlanOptions cpu;
  cpu.strategy = "cpu";
  const pl::Plan plan =
      pl::make_plan(graph, pl::default_host_profile(), pl::default_lavapipe_profile(), pl::local_link(), cpu);
  std::set<int> planned, run;
  for (std::size_t i = 0; i < plan.nodes.size(); ++i)
    if (plan.nodes[i].blocked) planned.insert(static_cast<int>(i));
  int copies = 0;
  for (const auto& step : host.program().steps()) {
    if (step.kernel == "to_planar") ++copies;
    else if (step.kernel.find("blocked") != std::string::npos) run.insert(step.node);
  }
  EXPECT_EQ(planned, run);
  EXPECT_EQ(plan.host_copies, copies);
  std::printf("%s: %s; %zu steps in blocked channels, %d copies to planar\n", GetParam().c_str(),
              host.description().c_str(), run.size(), copies);
}

INSTANTIATE_TEST_SUITE_P(Models, HostTorchvision,
                         ::testing::Values("resnet18", "resnet50", "inception_v3", "googlenet", "mobilenet_v2",
                                           "squeezenet1_1", "lraspp_mobilenet_v3_large", "mobilenet_v3_large",
                                           "mobilenet_v3_small", "mnasnet1_0"));

}  // namespace
