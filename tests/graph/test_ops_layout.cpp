// tests/graph/test_ops_layout.cpp — reference kernels of graph/ops/layout_ops.cpp
// (Slice, Split, Expand, Tile, DepthToSpace, SpaceToDepth, ConstantOfShape,
// Range, Cast) and graph/ops/resize.cpp (Resize, Upsample) against
// hand-computed results, never values produced by the kernel under test.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "graph/ops.h"
#include "tests/graph/op_test_util.h"

namespace vkfuse::graph {
namespace {

using namespace op_test;


std::vector<OutputInfo> infer(const Node& node, std::vector<InputInfo> inputs, std::int64_t opset = 13) {
  return infer_node(OpContext{node, opset, 1}, inputs);
}

// ---------------------------------------------------------------------------
// Slice

TEST(Slice, StartsEndsAxesSteps) {
  // x = [[0..3], [4..7], [8..11]]; rows 0..2 step 2, columns 1..3.
  const Tensor x = Tensor::from_f32({3, 4}, iota_f(12));
  const Tensor starts = ints({0, 1}), ends = ints({3, 3}), axes = ints({0, 1}), steps = ints({2, 1});
  auto y = run(make_node("Slice"), {&x, &starts, &ends, &axes, &steps});
  expect_f32(y[0], {2, 2}, {1, 2, 9, 10});
}

TEST(Slice, NegativeIndicesClampAndNegativeStep) {
  const Tensor x = Tensor::from_f32({5}, iota_f(5));
  // start -1 -> 4, end INT64_MIN clamps to -1: all elements, reversed.
  const Tensor starts = ints({-1}), ends = ints({INT64_MIN}), axes = ints({-1}), steps = ints({-1});
  expect_f32(run(make_node("Slice"), {&x, &starts, &ends, &axes, &steps})[0], {5}, {4, 3, 2, 1, 0});
  // step -2 from 10 (clamped to 4) down to 0 exclusive: 4, 2.
  const Tensor s2 = ints({10}), e2 = ints({0}), st2 = ints({-2});
  expect_f32(run(make_node("Slice"), {&x, &s2, &e2, &axes, &st2})[0], {2}, {4, 2});
  // end past the end clamps; start past the end gives an empty result.
  const Tensor s3 = ints({-3}), e3 = ints({1000});
  expect_f32(run(make_node("Slice"), {&x, &s3, &e3})[0], {3}, {2, 3, 4});
  const Tensor s4 = ints({7});
  expect_f32(run(make_node("Slice"), {&x, &s4, &e3})[0], {0}, {});
}

TEST(Slice, Int64AndAttributeForm) {
  const Tensor x = Tensor::from_i64({2, 3}, {1, 2, 3, 4, 5, 6});
  Attributes a;
  a.set("starts", std::vector<std::int64_t>{1});
  a.set("ends", std::vector<std::int64_t>{3});
  a.set("axes", std::vector<std::int64_t>{1});
  expect_i64(run(make_node("Slice", a), {&x}, 9)[0], {2, 2}, {2, 3, 5, 6});
}

TEST(Slice, ErrorsNameTheNode) {
  const Tensor starts = ints({0});
  // A start that is not constant: unsupported, naming the node.
  const Error e = error_of([&] {
    infer(make_node("Slice"), {info({4}), info({1}, DType::i64), info({1}, DType::i64, &starts)});
  });
  EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
  EXPECT_NE(std::string(e.what()).find("Slice_test"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("starts"), std::string::npos) << e.what();
  const Tensor x = Tensor::from_f32({4}, iota_f(4));
  const Tensor zero = ints({0}), axis9 = ints({9});
  EXPECT_EQ(error_of([&] { run(make_node("Slice"), {&x, &starts, &starts, &zero, &zero}); }).kind(),
            ErrorKind::InvalidModel);  // step 0
  EXPECT_EQ(error_of([&] { run(make_node("Slice"), {&x, &starts, &starts, &axis9}); }).kind(),
            ErrorKind::InvalidModel);  // axis out of range
}

// ---------------------------------------------------------------------------
// Split

TEST(Split, EqualParts) {
  const Tensor x = Tensor::from_f32({2, 4}, iota_f(8));
  Attributes a;
  a.set("axis", std::int64_t{1});
  auto y = run(make_node("Split", a, 2), {&x});
  ASSERT_EQ(y.size(), 2u);
  expect_f32(y[0], {2, 2}, {0, 1, 4, 5});
  expect_f32(y[1], {2, 2}, {2, 3, 6, 7});
}

TEST(Split, SizesAsInputAndAttribute) {
  const Tensor x = Tensor::from_i64({5}, {10, 11, 12, 13, 14});
  const Tensor sizes = ints({2, 0, 3});
  auto y = run(make_node("Split", {}, 3), {&x, &sizes});
  expect_i64(y[0], {2}, {10, 11});
  expect_i64(y[1], {0}, {});
  expect_i64(y[2], {3}, {12, 13, 14});
  Attributes a;
  a.set("split", std::vector<std::int64_t>{4, 1});
  auto z = run(make_node("Split", a, 2), {&x}, 11);
  expect_i64(z[0], {4}, {10, 11, 12, 13});
  expect_i64(z[1], {1}, {14});
}

TEST(Split, Errors) {
  const Tensor x = Tensor::from_f32({5}, iota_f(5));
  EXPECT_EQ(error_of([&] { run(make_node("Split", {}, 2), {&x}); }).kind(), ErrorKind::InvalidModel);  // 5 / 2
  const Tensor bad = ints({2, 2});
  EXPECT_EQ(error_of([&] { run(make_node("Split", {}, 2), {&x, &bad}); }).kind(), ErrorKind::InvalidModel);
  EXPECT_EQ(error_of([&] { infer(make_node("Split", {}, 2), {info({5}), info({2}, DType::i64)}); }).kind(),
            ErrorKind::Unsupported);
}

// ---------------------------------------------------------------------------
// Expand, Tile

TEST(Expand, Bidirectional) {
  // [3, 1] with shape [2, 1, 2] -> [2, 3, 2]; the 1 in the target keeps x's 3.
  const Tensor x = Tensor::from_f32({3, 1}, {1, 2, 3});
  const Tensor shape = ints({2, 1, 2});
  expect_f32(run(make_node("Expand"), {&x, &shape})[0], {2, 3, 2}, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
  const Tensor bad = ints({2, 2});
  EXPECT_EQ(error_of([&] { run(make_node("Expand"), {&x, &bad}); }).kind(), ErrorKind::InvalidModel);
}

TEST(Tile, Repeats) {
  const Tensor x = Tensor::from_i64({2, 2}, {1, 2, 3, 4});
  const Tensor reps = ints({2, 3});
  expect_i64(run(make_node("Tile"), {&x, &reps})[0], {4, 6},
             {1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4});
  const Tensor short_reps = ints({2});
  EXPECT_EQ(error_of([&] { run(make_node("Tile"), {&x, &short_reps}); }).kind(), ErrorKind::InvalidModel);
}

// ---------------------------------------------------------------------------
// DepthToSpace, SpaceToDepth

TEST(DepthToSpace, DcrAndCrd) {
  // 1x8x1x1 with blocksize 2: 2 output channels of 2x2.
  const Tensor x = Tensor::from_f32({1, 8, 1, 1}, iota_f(8));
  Attributes dcr;
  dcr.set("blocksize", std::int64_t{2});
  // DCR: input channel = (by * 2 + bx) * 2 + c.
  expect_f32(run(make_node("DepthToSpace", dcr), {&x})[0], {1, 2, 2, 2}, {0, 2, 4, 6, 1, 3, 5, 7});
  Attributes crd = dcr;
  crd.set("mode", std::string("CRD"));
  // CRD: input channel = c * 4 + by * 2 + bx.
  expect_f32(run(make_node("DepthToSpace", crd), {&x})[0], {1, 2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
}

TEST(SpaceToDepth, Blocks) {
  // 1x1x2x4 -> 1x4x1x2; output channel (by * 2 + bx) holds x[by][2w + bx].
  const Tensor x = Tensor::from_f32({1, 1, 2, 4}, iota_f(8));
  Attributes a;
  a.set("blocksize", std::int64_t{2});
  expect_f32(run(make_node("SpaceToDepth", a), {&x})[0], {1, 4, 1, 2}, {0, 2, 1, 3, 4, 6, 5, 7});
  const Tensor odd = Tensor::from_f32({1, 1, 3, 4}, iota_f(12));
  EXPECT_EQ(error_of([&] { run(make_node("SpaceToDepth", a), {&odd}); }).kind(), ErrorKind::InvalidModel);
}

// ---------------------------------------------------------------------------
// ConstantOfShape, Range, Cast

TEST(ConstantOfShape, ValueAndDefault) {
  const Tensor shape = ints({2, 3});
  expect_f32(run(make_node("ConstantOfShape"), {&shape})[0], {2, 3}, {0, 0, 0, 0, 0, 0});
  Attributes a;
  a.set("value", Tensor::from_i64({1}, {7}));
  expect_i64(run(make_node("ConstantOfShape", a), {&shape})[0], {2, 3}, {7, 7, 7, 7, 7, 7});
  const Tensor empty = Tensor::from_i64({0}, {});
  Attributes f;
  f.set("value", Tensor::from_f32({1}, {1.5f}));
  expect_f32(run(make_node("ConstantOfShape", f), {&empty})[0], {}, {1.5f});
  EXPECT_EQ(error_of([&] { infer(make_node("ConstantOfShape"), {info({2}, DType::i64)}); }).kind(),
            ErrorKind::Unsupported);
}

TEST(Range, FloatAndInt) {
  const Tensor s = Tensor::scalar_f32(1.f), l = Tensor::scalar_f32(2.f), d = Tensor::scalar_f32(0.25f);
  expect_f32(run(make_node("Range"), {&s, &l, &d})[0], {4}, {1.f, 1.25f, 1.5f, 1.75f});
  const Tensor si = Tensor::from_i64({}, {10}), li = Tensor::from_i64({}, {4}), di = Tensor::from_i64({}, {-3});
  expect_i64(run(make_node("Range"), {&si, &li, &di})[0], {2}, {10, 7});
  // limit behind start for a positive delta: empty.
  const Tensor dp = Tensor::from_i64({}, {3});
  expect_i64(run(make_node("Range"), {&si, &li, &dp})[0], {0}, {});
  EXPECT_EQ(error_of([&] { infer(make_node("Range"), {info({}), info({}, DType::f32, &l), info({}, DType::f32, &d)}); })
                .kind(),
            ErrorKind::Unsupported);
}

TEST(Cast, FloatInt64) {
  Attributes to_i64;
  to_i64.set("to", std::int64_t{7});
  const Tensor x = Tensor::from_f32({4}, {1.9f, -1.9f, 0.5f, -0.f});
  expect_i64(run(make_node("Cast", to_i64), {&x})[0], {4}, {1, -1, 0, 0});
  Attributes to_f32;
  to_f32.set("to", std::int64_t{1});
  const Tensor i = Tensor::from_i64({2}, {-3, 5});
  expect_f32(run(make_node("Cast", to_f32), {&i})[0], {2}, {-3.f, 5.f});
  expect_f32(run(make_node("Cast", to_f32), {&x})[0], {4}, {1.9f, -1.9f, 0.5f, -0.f});
  Attributes to_half;
  to_half.set("to", std::int64_t{10});
  const Error e = error_of([&] { run(make_node("Cast", to_half), {&x}); });
  EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
  EXPECT_NE(std::string(e.what()).find("FLOAT16"), std::string::npos) << e.what();
}

// Narrower integer types are held as int64, wrapped into their range as C
// and numpy wrap them (the integer expectations are numpy's astype; floats
// truncate toward zero, then wrap). Exports cast shape arithmetic to int32.
TEST(Cast, NarrowIntegersWrap) {
  auto cast_to = [](std::int64_t to) {
    Attributes a;
    a.set("to", to);
    return a;
  };
  const Tensor i = Tensor::from_i64({4}, {300, -129, 70000, 5000000000});
  expect_i64(run(make_node("Cast", cast_to(6)), {&i})[0], {4}, {300, -129, 70000, 705032704});  // int32
  expect_i64(run(make_node("Cast", cast_to(3)), {&i})[0], {4}, {44, 127, 112, 0});              // int8
  expect_i64(run(make_node("Cast", cast_to(2)), {&i})[0], {4}, {44, 127, 112, 0});              // uint8
  expect_i64(run(make_node("Cast", cast_to(5)), {&i})[0], {4}, {300, -129, 4464, -3584});        // int16
  expect_i64(run(make_node("Cast", cast_to(4)), {&i})[0], {4}, {300, 65407, 4464, 61952});       // uint16
  expect_i64(run(make_node("Cast", cast_to(12)), {&i})[0], {4}, {300, 4294967167, 70000, 705032704});  // uint32
  const Tensor x = Tensor::from_f32({3}, {2.7f, -2.7f, 65537.5f});
  expect_i64(run(make_node("Cast", cast_to(6)), {&x})[0], {3}, {2, -2, 65537});
  expect_i64(run(make_node("Cast", cast_to(4)), {&x})[0], {3}, {2, 65534, 1});
}

// ---------------------------------------------------------------------------
// Resize, Upsample

Attributes resize_attrs(const std::string& mode, const std::string& coord = "half_pixel",
                        const std::string& nearest = "round_prefer_floor") {
  Attributes a;
  a.set("mode", mode);
  a.set("coordinate_transformation_mode", coord);
  a.set("nearest_mode", nearest);
  return a;
}

TEST(Resize, NearestUpsampleScales) {
  // 1x1x2x2 x2 in both axes, half_pixel: each pixel becomes a 2x2 block.
  const Tensor x = Tensor::from_f32({1, 1, 2, 2}, {1, 2, 3, 4});
  const Tensor scales = floats({1, 1, 2, 2});
  auto y = run(make_node("Resize", resize_attrs("nearest")), {&x, nullptr, &scales});
  expect_f32(y[0], {1, 1, 4, 4}, {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
}

TEST(Resize, NearestModesAndInt64) {
  // 1-D length 2 -> 3 with asymmetric coordinates: x = o * 2/3 = 0, 0.667, 1.333.
  const Tensor x = Tensor::from_i64({2}, {10, 20});
  const Tensor sizes = ints({3});
  const Tensor empty = Tensor::from_f32({0}, {});
  auto run_mode = [&](const std::string& m) {
    return run(make_node("Resize", resize_attrs("nearest", "asymmetric", m)), {&x, &empty, &empty, &sizes})[0];
  };
  expect_i64(run_mode("floor"), {3}, {10, 10, 20});
  expect_i64(run_mode("ceil"), {3}, {10, 20, 20});  // ceil(1.333) = 2 clamps to 1
  expect_i64(run_mode("round_prefer_floor"), {3}, {10, 20, 20});
  // Length 2 -> 4, asymmetric: x = 0, 0.5, 1, 1.5: the ties decide.
  const Tensor sizes4 = ints({4});
  auto run4 = [&](const std::string& m) {
    return run(make_node("Resize", resize_attrs("nearest", "asymmetric", m)), {&x, &empty, &empty, &sizes4})[0];
  };
  expect_i64(run4("round_prefer_floor"), {4}, {10, 10, 20, 20});
  expect_i64(run4("round_prefer_ceil"), {4}, {10, 20, 20, 20});
}

TEST(Resize, LinearCoordinateModes) {
  // 1-D [0, 10] resized to 4.
  const Tensor x = Tensor::from_f32({2}, {0, 10});
  const Tensor sizes = ints({4});
  auto lin = [&](const std::string& coord) {
    return run(make_node("Resize", resize_attrs("linear", coord)), {&x, nullptr, nullptr, &sizes})[0];
  };
  // half_pixel: x = (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped at the edges).
  expect_near(lin("half_pixel"), {4}, {0, 2.5f, 7.5f, 10});
  expect_near(lin("pytorch_half_pixel"), {4}, {0, 2.5f, 7.5f, 10});
  // align_corners: x = o * 1 / 3.
  expect_near(lin("align_corners"), {4}, {0, 10.f / 3, 20.f / 3, 10});
  // asymmetric: x = o / 2 = 0, 0.5, 1, 1.5.
  expect_near(lin("asymmetric"), {4}, {0, 5, 10, 10});
}

TEST(Resize, BilinearDownsampleScales) {
  // 2x4 scaled by 0.5: half_pixel maps output (0, j) to (0.5, 2j + 0.5): the
  // mean of each 2x2 block.
  const Tensor x = Tensor::from_f32({1, 1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  const Tensor scales = floats({1, 1, 0.5f, 0.5f});
  auto y = run(make_node("Resize", resize_attrs("linear")), {&x, nullptr, &scales});
  expect_near(y[0], {1, 1, 1, 2}, {3.5f, 5.5f});
}

TEST(Resize, PytorchHalfPixelToOne) {
  // Output length 1: pytorch_half_pixel maps it to 0, half_pixel to the middle.
  const Tensor x = Tensor::from_f32({3}, {2, 4, 9});
  const Tensor sizes = ints({1});
  expect_near(run(make_node("Resize", resize_attrs("linear", "pytorch_half_pixel")), {&x, nullptr, nullptr, &sizes})[0],
              {1}, {2});
  expect_near(run(make_node("Resize", resize_attrs("linear", "half_pixel")), {&x, nullptr, nullptr, &sizes})[0], {1},
              {4});
}

TEST(Resize, Cubic) {
  // 1-D [0, 0, 8, 0, 0] -> 10 (scale 2), asymmetric: output 5 sits at x = 2.5.
  // Keys with a = -0.75 at r = 0.5: weights -0.09375, 0.59375, 0.59375, -0.09375.
  const Tensor x = Tensor::from_f32({5}, {0, 0, 8, 0, 0});
  const Tensor scales = floats({2});
  auto y = run(make_node("Resize", resize_attrs("cubic", "asymmetric")), {&x, nullptr, &scales});
  ASSERT_EQ(y[0].shape(), (Shape{10}));
  EXPECT_NEAR(y[0].f32()[4], 8.f, 1e-6f);                 // x = 2
  EXPECT_NEAR(y[0].f32()[5], 8.f * 0.59375f, 1e-6f);      // x = 2.5
  EXPECT_NEAR(y[0].f32()[3], 8.f * 0.59375f, 1e-6f);      // x = 1.5
  EXPECT_NEAR(y[0].f32()[2], 0.f, 1e-6f);                 // x = 1
  EXPECT_NEAR(y[0].f32()[1], 8.f * -0.09375f, 1e-6f);     // x = 0.5, taps -1..2
}

TEST(Resize, TfCropAndResizeExtrapolates) {
  // roi [0.5, 1.5] of a 1-D [0, 10, 20]: x = 0.5*2 + o*1*2/2 = 1, 2, 3; 3 is
  // outside and takes the extrapolation value.
  const Tensor x = Tensor::from_f32({3}, {0, 10, 20});
  const Tensor roi = floats({0.5f, 1.5f});
  const Tensor sizes = ints({3});
  Attributes a = resize_attrs("linear", "tf_crop_and_resize");
  a.set("extrapolation_value", 7.f);
  expect_near(run(make_node("Resize", a), {&x, &roi, nullptr, &sizes})[0], {3}, {10, 20, 7});
}

TEST(Resize, Errors) {
  const Tensor x = Tensor::from_f32({1, 1, 2, 2}, {1, 2, 3, 4});
  const Tensor scales = floats({1, 1, 2, 2});
  const Tensor sizes = ints({1, 1, 4, 4});
  // Both scales and sizes.
  EXPECT_EQ(error_of([&] { run(make_node("Resize"), {&x, nullptr, &scales, &sizes}); }).kind(),
            ErrorKind::InvalidModel);
  // Neither.
  EXPECT_EQ(error_of([&] { run(make_node("Resize"), {&x, nullptr, nullptr, nullptr}); }).kind(),
            ErrorKind::InvalidModel);
  // Runtime scales.
  const Error e = error_of(
      [&] { infer(make_node("Resize"), {info({1, 1, 2, 2}), info({0}), info({4})}); });
  EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
  EXPECT_NE(std::string(e.what()).find("Resize_test"), std::string::npos) << e.what();
  // Linear on int64.
  const Tensor xi = Tensor::from_i64({2}, {1, 2});
  const Tensor s1 = floats({2});
  EXPECT_EQ(error_of([&] { run(make_node("Resize", resize_attrs("linear")), {&xi, nullptr, &s1}); }).kind(),
            ErrorKind::Unsupported);
}

TEST(Upsample, NearestAndLinear) {
  // Opset 9: scales input; asymmetric coordinates, nearest rounds down.
  const Tensor x = Tensor::from_f32({1, 1, 1, 2}, {1, 2});
  const Tensor scales = floats({1, 1, 2, 3});
  Attributes nearest;
  nearest.set("mode", std::string("nearest"));
  expect_f32(run(make_node("Upsample", nearest), {&x, &scales}, 9)[0], {1, 1, 2, 6},
             {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
  // Opset 7: scales attribute; linear x = o / 2 = 0, 0.5, 1, 1.5.
  Attributes linear;
  linear.set("mode", std::string("linear"));
  linear.set("scales", std::vector<float>{1, 2});
  const Tensor x2 = Tensor::from_f32({1, 2}, {0, 4});
  expect_near(run(make_node("Upsample", linear), {&x2}, 7)[0], {1, 4}, {0, 2, 4, 4});
}

}  // namespace
}  // namespace vkfuse::graph
