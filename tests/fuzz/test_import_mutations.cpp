// A deterministic fuzz pass that runs in every test run (and under ASan/UBSan
// in CI): thousands of byte-level mutations and truncations of valid models
// must each load and run or fail with vkfuse::Error — never crash, hang or
// touch memory they should not.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "tests/fuzz/import_one.h"
#include "tests/onnx_builder.h"

namespace {

std::vector<std::uint8_t> seed_model(int which) {
  using vkfuse::testing::OnnxBuilder;
  if (which == 0) return vkfuse::testing::conv_bn_relu_model().byte_vector();
  OnnxBuilder b(11);
  b.input("x", {1, 4, 6, 6}).output("y");
  b.initializer_i64("zero", {}, {0});
  b.initializer_i64("minus_one", {1}, {-1});
  auto& p = b.node("MaxPool", {"x"}, {"p"});
  OnnxBuilder::attr_ints(p, "kernel_shape", {2, 2});
  OnnxBuilder::attr_ints(p, "strides", {2, 2});
  b.node("Shape", {"p"}, {"s"});
  b.node("Gather", {"s", "zero"}, {"n"});
  auto& u = b.node("Unsqueeze", {"n"}, {"n1"});
  OnnxBuilder::attr_ints(u, "axes", {0});
  auto& c = b.node("Concat", {"n1", "minus_one"}, {"shape"});
  OnnxBuilder::attr_int(c, "axis", 0);
  b.node("Reshape", {"p", "shape"}, {"r"});
  b.initializer("w", {36, 3}, std::vector<float>(108, 0.01f));
  b.node("MatMul", {"r", "w"}, {"m"});
  b.node("Softmax", {"m"}, {"y"});
  return b.byte_vector();
}

TEST(ImportMutations, NeverCrash) {
  std::mt19937 rng(1234);
  int loaded = 0, rejected = 0;
  for (int which = 0; which < 2; ++which) {
    const auto seed = seed_model(which);
    ASSERT_TRUE(vkfuse::testing::import_and_run(seed)) << "seed model " << which << " must load";
    for (int iter = 0; iter < 1500; ++iter) {
      auto bytes = seed;
      const int kind = static_cast<int>(rng() % 4);
      if (kind == 0) {
        bytes.resize(rng() % bytes.size());  // truncate
      } else {
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
          auto& b = bytes[rng() % bytes.size()];
          if (kind == 1) b = static_cast<std::uint8_t>(rng());
          else if (kind == 2) b ^= static_cast<std::uint8_t>(1u << (rng() % 8));
          else b = static_cast<std::uint8_t>(b + 1);
        }
      }
      (vkfuse::testing::import_and_run(bytes) ? loaded : rejected)++;
    }
  }
  // Both outcomes must occur, or the mutations are not exercising anything.
  EXPECT_GT(loaded, 0);
  EXPECT_GT(rejected, 0);
  std::printf("mutations: %d loaded and ran, %d rejected with vkfuse::Error\n", loaded, rejected);
}

}  // namespace

// Every input of the fuzzers' seed corpus, the regressions they found
// included (tools/fuzz.sh), through the whole API path: load, then run.
TEST(ImportMutations, CorpusAndRegressionsLoadOrFailCleanly) {
  const std::filesystem::path corpus = std::filesystem::path(VKFUSE_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
  int seen = 0, regressions = 0;
  for (const auto& e : std::filesystem::directory_iterator(corpus)) {
    std::ifstream f(e.path(), std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const bool loaded = vkfuse::testing::import_and_run(
        {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    const bool regression = e.path().filename().string().rfind("regression-", 0) == 0;
    // The seeds are valid models; the regressions are the malformed inputs that once crashed.
    EXPECT_EQ(loaded, !regression) << e.path();
    ++seen;
    regressions += regression;
  }
  EXPECT_GE(seen, 3);
  EXPECT_GE(regressions, 2);
}
