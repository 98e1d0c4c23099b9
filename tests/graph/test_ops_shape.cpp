// Reference kernels of graph/ops/shape_ops.cpp: Concat, Flatten, Reshape,
// Transpose, Pad, Shape, Gather, Unsqueeze, Squeeze, Identity, Dropout,
// Constant. Expected values are written out by hand (or by an explicit index
// formula), never produced by the kernel under test.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "graph/ops.h"
#include "tests/graph/op_test_util.h"

namespace vkfuse::graph {
namespace {

using namespace op_test;

ErrorKind error_kind_of(const std::function<void()>& f) { return error_of(f).kind(); }
std::string error_message_of(const std::function<void()>& f) { return error_of(f).what(); }

// ---------------------------------------------------------------------------
// Concat

TEST(OpsShape, ConcatAxes) {
  Tensor a = Tensor::from_f32({2, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::from_f32({2, 2}, {5, 6, 7, 8});
  Attributes ax0, ax1, axm1;
  ax0.set("axis", std::int64_t{0});
  ax1.set("axis", std::int64_t{1});
  axm1.set("axis", std::int64_t{-1});
  expect_f32(run(make_node("Concat", ax0), {&a, &b})[0], {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  expect_f32(run(make_node("Concat", ax1), {&a, &b})[0], {2, 4}, {1, 2, 5, 6, 3, 4, 7, 8});
  expect_f32(run(make_node("Concat", axm1), {&a, &b})[0], {2, 4}, {1, 2, 5, 6, 3, 4, 7, 8});

  // Three inputs of different widths along axis 1 of a [1,C,1] tensor.
  Tensor c1 = Tensor::from_f32({1, 1, 2}, {1, 2});
  Tensor c2 = Tensor::from_f32({1, 2, 2}, {3, 4, 5, 6});
  Tensor c3(DType::f32, {1, 0, 2});  // empty
  expect_f32(run(make_node("Concat", ax1), {&c1, &c3, &c2})[0], {1, 3, 2}, {1, 2, 3, 4, 5, 6});
}

TEST(OpsShape, ConcatInt64ShapeArithmetic) {
  Tensor a = ints({1});
  Tensor b = ints({-1});
  Tensor c = ints({7, 7});
  Attributes ax0;
  ax0.set("axis", std::int64_t{0});
  expect_i64(run(make_node("Concat", ax0), {&a, &b, &c})[0], {4}, {1, -1, 7, 7});
}

TEST(OpsShape, ConcatMismatchThrows) {
  Tensor a = Tensor::from_f32({2, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::from_f32({3, 3}, iota_f(9));
  Attributes ax0;
  ax0.set("axis", std::int64_t{0});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Concat", ax0), {&a, &b}); }), ErrorKind::InvalidModel);
  Attributes ax2;
  ax2.set("axis", std::int64_t{2});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Concat", ax2), {&a, &a}); }), ErrorKind::InvalidModel);
}

// ---------------------------------------------------------------------------
// Flatten

TEST(OpsShape, Flatten) {
  Tensor x = Tensor::from_f32({2, 3, 4}, iota_f(24));
  auto flat = [&](std::optional<std::int64_t> axis) {
    Attributes at;
    if (axis) at.set("axis", *axis);
    return run(make_node("Flatten", at), {&x})[0];
  };
  expect_f32(flat(std::nullopt), {2, 12}, iota_f(24));
  expect_f32(flat(0), {1, 24}, iota_f(24));
  expect_f32(flat(2), {6, 4}, iota_f(24));
  expect_f32(flat(3), {24, 1}, iota_f(24));
  expect_f32(flat(-1), {6, 4}, iota_f(24));
  expect_f32(flat(-3), {1, 24}, iota_f(24));
  EXPECT_EQ(error_kind_of([&] { flat(4); }), ErrorKind::InvalidModel);

  Tensor xi = Tensor::from_i64({2, 1, 2}, {5, 6, 7, 8});
  expect_i64(run(make_node("Flatten"), {&xi})[0], {2, 2}, {5, 6, 7, 8});
}

// ---------------------------------------------------------------------------
// Reshape

TEST(OpsShape, ReshapeZeroAndMinusOne) {
  Tensor x = Tensor::from_f32({2, 3, 4}, iota_f(24));
  Tensor s1 = ints({4, 0, -1});  // 0 copies dim 1 (3), -1 -> 2
  expect_f32(run(make_node("Reshape"), {&x, &s1})[0], {4, 3, 2}, iota_f(24));
  Tensor s2 = ints({-1});
  expect_f32(run(make_node("Reshape"), {&x, &s2})[0], {24}, iota_f(24));
  Tensor s3 = ints({2, 0, 1, -1});
  expect_f32(run(make_node("Reshape"), {&x, &s3})[0], {2, 3, 1, 4}, iota_f(24));
  Tensor s4 = ints({-1, 2, 3, 4});
  expect_f32(run(make_node("Reshape"), {&x, &s4})[0], {1, 2, 3, 4}, iota_f(24));

  Tensor xi = Tensor::from_i64({4}, {1, 2, 3, 4});
  Tensor s5 = ints({2, 2});
  expect_i64(run(make_node("Reshape"), {&xi, &s5})[0], {2, 2}, {1, 2, 3, 4});
}

TEST(OpsShape, ReshapeAllowZero) {
  Tensor x(DType::f32, {0, 3, 4});
  Tensor s = ints({3, 4, 0});
  Attributes az;
  az.set("allowzero", std::int64_t{1});
  auto out = run(make_node("Reshape", az), {&x, &s}, 14);
  EXPECT_EQ(out[0].shape(), (Shape{3, 4, 0}));
  // Without allowzero the 0 copies dim 2 (4): 3*4*4 != 0 elements.
  EXPECT_EQ(error_kind_of([&] { run(make_node("Reshape"), {&x, &s}, 14); }), ErrorKind::InvalidModel);
}

TEST(OpsShape, ReshapeErrors) {
  Tensor x = Tensor::from_f32({2, 8}, iota_f(16));
  Tensor bad = ints({3, 5});
  const std::string msg = error_message_of([&] { run(make_node("Reshape"), {&x, &bad}); });
  EXPECT_NE(msg.find("Reshape to 3x5 from 2x8: element counts differ"), std::string::npos) << msg;
  Tensor two_neg = ints({-1, -1});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Reshape"), {&x, &two_neg}); }), ErrorKind::InvalidModel);
  Tensor indivisible = ints({3, -1});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Reshape"), {&x, &indivisible}); }), ErrorKind::InvalidModel);

  // A target shape that is not a constant at shape-inference time.
  Node n = make_node("Reshape");
  std::vector<InputInfo> in{info({2, 8}), info({2}, DType::i64)};
  EXPECT_EQ(error_kind_of([&] { infer_node(OpContext{n, 13, 1}, in); }), ErrorKind::Unsupported);
  EXPECT_THROW(infer_node(OpContext{n, 13, 1}, in), vkfuse::Error);

  // ...while a constant one infers without the data being constant.
  Tensor s = ints({4, -1});
  in[1].constant = &s;
  auto out = infer_node(OpContext{n, 13, 1}, in);
  EXPECT_EQ(out[0].shape, (Shape{4, 4}));
}

// ---------------------------------------------------------------------------
// Transpose

TEST(OpsShape, TransposeDefaultPermReverses) {
  Tensor x = Tensor::from_f32({2, 3, 4}, iota_f(24));
  auto out = run(make_node("Transpose"), {&x})[0];
  ASSERT_EQ(out.shape(), (Shape{4, 3, 2}));
  for (std::int64_t k = 0; k < 4; ++k)
    for (std::int64_t j = 0; j < 3; ++j)
      for (std::int64_t i = 0; i < 2; ++i)
        EXPECT_EQ(out.f32()[(k * 3 + j) * 2 + i], static_cast<float>(i * 12 + j * 4 + k));
}

TEST(OpsShape, TransposeExplicitPerm) {
  Tensor x = Tensor::from_f32({2, 3, 4}, iota_f(24));
  Attributes at;
  at.set("perm", std::vector<std::int64_t>{1, 2, 0});
  auto out = run(make_node("Transpose", at), {&x})[0];
  ASSERT_EQ(out.shape(), (Shape{3, 4, 2}));
  // out[j][k][i] = x[i][j][k]; spot-check by hand:
  EXPECT_EQ(out.f32()[0], 0.f);    // out[0][0][0] = x[0][0][0]
  EXPECT_EQ(out.f32()[1], 12.f);   // out[0][0][1] = x[1][0][0]
  EXPECT_EQ(out.f32()[2], 1.f);    // out[0][1][0] = x[0][0][1]
  EXPECT_EQ(out.f32()[9], 16.f);   // out[1][0][1] = x[1][1][0]
  EXPECT_EQ(out.f32()[23], 23.f);  // out[2][3][1] = x[1][2][3]
  for (std::int64_t j = 0; j < 3; ++j)
    for (std::int64_t k = 0; k < 4; ++k)
      for (std::int64_t i = 0; i < 2; ++i)
        EXPECT_EQ(out.f32()[(j * 4 + k) * 2 + i], static_cast<float>(i * 12 + j * 4 + k));

  Tensor xi = Tensor::from_i64({2, 3}, {1, 2, 3, 4, 5, 6});
  expect_i64(run(make_node("Transpose"), {&xi})[0], {3, 2}, {1, 4, 2, 5, 3, 6});

  Attributes bad;
  bad.set("perm", std::vector<std::int64_t>{0, 0, 1});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Transpose", bad), {&x}); }), ErrorKind::InvalidModel);
}

// ---------------------------------------------------------------------------
// Pad

TEST(OpsShape, PadConstantAsymmetric) {
  Tensor x = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor pads = ints({0, 1, 1, 2});  // [x0_begin, x1_begin, x0_end, x1_end]
  Tensor value = Tensor::scalar_f32(9.f);
  Attributes at;
  at.set("mode", std::string("constant"));
  expect_f32(run(make_node("Pad", at), {&x, &pads, &value})[0], {3, 6},
             {9, 1, 2, 3, 9, 9,  //
              9, 4, 5, 6, 9, 9,  //
              9, 9, 9, 9, 9, 9});
  // default mode is constant, default value 0
  expect_f32(run(make_node("Pad"), {&x, &pads})[0], {3, 6},
             {0, 1, 2, 3, 0, 0,  //
              0, 4, 5, 6, 0, 0,  //
              0, 0, 0, 0, 0, 0});
}

TEST(OpsShape, PadReflect) {
  Tensor x = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor pads = ints({1, 2, 0, 1});
  Attributes at;
  at.set("mode", std::string("reflect"));
  expect_f32(run(make_node("Pad", at), {&x, &pads})[0], {3, 6},
             {6, 5, 4, 5, 6, 5,  //
              3, 2, 1, 2, 3, 2,  //
              6, 5, 4, 5, 6, 5});
  Tensor v = Tensor::from_f32({4}, {1, 2, 3, 4});
  Tensor p1 = ints({2, 1});
  expect_f32(run(make_node("Pad", at), {&v, &p1})[0], {7}, {3, 2, 1, 2, 3, 4, 3});
}

TEST(OpsShape, PadEdge) {
  Tensor x = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor pads = ints({1, 2, 0, 1});
  Attributes at;
  at.set("mode", std::string("edge"));
  expect_f32(run(make_node("Pad", at), {&x, &pads})[0], {3, 6},
             {1, 1, 1, 2, 3, 3,  //
              1, 1, 1, 2, 3, 3,  //
              4, 4, 4, 5, 6, 6});
  Tensor v = Tensor::from_f32({4}, {1, 2, 3, 4});
  Tensor p1 = ints({2, 1});
  expect_f32(run(make_node("Pad", at), {&v, &p1})[0], {7}, {1, 1, 1, 2, 3, 4, 4});
}

TEST(OpsShape, PadOldOpsetAttributesAndInt64) {
  Attributes at;
  at.set("pads", std::vector<std::int64_t>{1, 0, 0, 1});
  at.set("value", -1.5f);
  Tensor x = Tensor::from_f32({1, 2}, {7, 8});
  expect_f32(run(make_node("Pad", at), {&x}, 2)[0], {2, 3}, {-1.5f, -1.5f, -1.5f, 7, 8, -1.5f});

  Tensor xi = Tensor::from_i64({2}, {10, 20});
  Tensor p = ints({1, 2});
  Tensor vi = Tensor::from_i64({}, {-7});
  expect_i64(run(make_node("Pad"), {&xi, &p, &vi})[0], {5}, {-7, 10, 20, -7, -7});
}

TEST(OpsShape, PadNegativeCrops) {
  Tensor x = Tensor::from_f32({5}, {1, 2, 3, 4, 5});
  Tensor p = ints({-1, 1});
  expect_f32(run(make_node("Pad"), {&x, &p})[0], {5}, {2, 3, 4, 5, 0});
}

TEST(OpsShape, PadErrors) {
  Node n = make_node("Pad");
  std::vector<InputInfo> in{info({1, 3, 4, 4}), info({8}, DType::i64)};
  EXPECT_EQ(error_kind_of([&] { infer_node(OpContext{n, 13, 1}, in); }), ErrorKind::Unsupported);
  Tensor wrong = ints({1, 1});
  in[1].shape = {2};
  in[1].constant = &wrong;
  EXPECT_EQ(error_kind_of([&] { infer_node(OpContext{n, 13, 1}, in); }), ErrorKind::InvalidModel);
  Attributes wrap;
  wrap.set("mode", std::string("wrap"));
  Tensor x = Tensor::from_f32({2}, {1, 2});
  Tensor p = ints({1, 1});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Pad", wrap), {&x, &p}); }), ErrorKind::Unsupported);
}

// ---------------------------------------------------------------------------
// Shape

TEST(OpsShape, Shape) {
  Tensor x(DType::f32, {3, 4, 5});
  auto shape_with = [&](std::optional<std::int64_t> start, std::optional<std::int64_t> end) {
    Attributes at;
    if (start) at.set("start", *start);
    if (end) at.set("end", *end);
    return run(make_node("Shape", at), {&x}, 15)[0];
  };
  expect_i64(shape_with(std::nullopt, std::nullopt), {3}, {3, 4, 5});
  expect_i64(shape_with(1, std::nullopt), {2}, {4, 5});
  expect_i64(shape_with(std::nullopt, 1), {1}, {3});
  expect_i64(shape_with(-1, std::nullopt), {1}, {5});
  expect_i64(shape_with(std::nullopt, -1), {2}, {3, 4});
  expect_i64(shape_with(1, -1), {1}, {4});
  expect_i64(shape_with(1, 2), {1}, {4});
  expect_i64(shape_with(-10, std::nullopt), {3}, {3, 4, 5});
  expect_i64(shape_with(std::nullopt, 10), {3}, {3, 4, 5});
  expect_i64(shape_with(2, 1), {0}, {});

  Tensor xi = Tensor::from_i64({2, 3}, {1, 2, 3, 4, 5, 6});
  expect_i64(run(make_node("Shape"), {&xi})[0], {2}, {2, 3});
  Tensor s = Tensor::scalar_f32(1.f);
  expect_i64(run(make_node("Shape"), {&s})[0], {0}, {});

  // Inference needs only the shape.
  Node n = make_node("Shape");
  std::vector<InputInfo> in{info({1, 3, 224, 224})};
  auto out = infer_node(OpContext{n, 13, 1}, in);
  EXPECT_EQ(out[0].dtype, DType::i64);
  EXPECT_EQ(out[0].shape, (Shape{4}));
}

// ---------------------------------------------------------------------------
// Gather

TEST(OpsShape, GatherAxis0NegativeIndex) {
  Tensor data = Tensor::from_f32({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor idx = ints({2, -3, 1});
  expect_f32(run(make_node("Gather"), {&data, &idx})[0], {3, 2}, {5, 6, 1, 2, 3, 4});

  Tensor ar = Tensor::from_f32({10}, iota_f(10));
  Tensor neg = ints({0, -9, -10});
  expect_f32(run(make_node("Gather"), {&ar, &neg})[0], {3}, {0, 1, 0});
}

TEST(OpsShape, GatherAxis1With2dIndices) {
  Tensor data = Tensor::from_f32({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Tensor idx = Tensor::from_i64({1, 2}, {0, 2});
  Attributes ax1;
  ax1.set("axis", std::int64_t{1});
  expect_f32(run(make_node("Gather", ax1), {&data, &idx})[0], {3, 1, 2}, {1, 3, 4, 6, 7, 9});
  Attributes axm1;
  axm1.set("axis", std::int64_t{-1});
  Tensor idx2 = Tensor::from_i64({2, 2}, {-1, 0, 1, 1});
  expect_f32(run(make_node("Gather", axm1), {&data, &idx2})[0], {3, 2, 2},
             {3, 1, 2, 2, 6, 4, 5, 5, 9, 7, 8, 8});
}

TEST(OpsShape, GatherInt64ScalarIndex) {
  // Shape -> Gather(0) as in torchvision's flatten: a scalar index drops the axis.
  Tensor shape = ints({1, 512, 7, 7});
  Tensor zero = Tensor::from_i64({}, {0});
  expect_i64(run(make_node("Gather"), {&shape, &zero})[0], {}, {1});
  Tensor last = Tensor::from_i64({}, {-1});
  expect_i64(run(make_node("Gather"), {&shape, &last})[0], {}, {7});
}

TEST(OpsShape, GatherErrors) {
  Tensor data = Tensor::from_f32({3}, {1, 2, 3});
  Tensor idx = ints({3});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Gather"), {&data, &idx}); }), ErrorKind::InvalidModel);
  Tensor fidx = Tensor::from_f32({1}, {0});
  EXPECT_THROW(run(make_node("Gather"), {&data, &fidx}), vkfuse::Error);
  // Inference from shapes only.
  Node n = make_node("Gather");
  n.attrs.set("axis", std::int64_t{1});
  std::vector<InputInfo> in{info({2, 5, 4}), info({3, 2}, DType::i64)};
  EXPECT_EQ(infer_node(OpContext{n, 13, 1}, in)[0].shape, (Shape{2, 3, 2, 4}));
}

// ---------------------------------------------------------------------------
// Unsqueeze / Squeeze

TEST(OpsShape, UnsqueezeAttributeStyle) {
  Attributes at;
  at.set("axes", std::vector<std::int64_t>{0});
  Tensor x = Tensor::from_f32({3, 4}, iota_f(12));
  expect_f32(run(make_node("Unsqueeze", at), {&x}, 11)[0], {1, 3, 4}, iota_f(12));
  Attributes at2;
  at2.set("axes", std::vector<std::int64_t>{-1, 1});
  expect_f32(run(make_node("Unsqueeze", at2), {&x}, 11)[0], {3, 1, 4, 1}, iota_f(12));
}

TEST(OpsShape, UnsqueezeInputStyle) {
  Tensor x = Tensor::from_f32({3, 4, 5}, iota_f(60));
  Tensor two = ints({1, 4});
  EXPECT_EQ(run(make_node("Unsqueeze"), {&x, &two})[0].shape(), (Shape{3, 1, 4, 5, 1}));
  Tensor unsorted = ints({5, 4, 2});
  EXPECT_EQ(run(make_node("Unsqueeze"), {&x, &unsorted})[0].shape(), (Shape{3, 4, 1, 5, 1, 1}));
  Tensor x2 = Tensor::from_f32({1, 3, 1, 5}, iota_f(15));
  Tensor neg = ints({-2});
  expect_f32(run(make_node("Unsqueeze"), {&x2, &neg})[0], {1, 3, 1, 1, 5}, iota_f(15));
  // int64 scalar -> [1] (shape arithmetic before a Concat)
  Tensor s = Tensor::from_i64({}, {42});
  Tensor z = ints({0});
  expect_i64(run(make_node("Unsqueeze"), {&s, &z})[0], {1}, {42});

  Tensor dup = ints({1, 1});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Unsqueeze"), {&x, &dup}); }), ErrorKind::InvalidModel);
  Node n = make_node("Unsqueeze");
  std::vector<InputInfo> in{info({3}), info({1}, DType::i64)};
  EXPECT_EQ(error_kind_of([&] { infer_node(OpContext{n, 13, 1}, in); }), ErrorKind::Unsupported);
}

TEST(OpsShape, SqueezeBothStyles) {
  Tensor x = Tensor::from_f32({1, 3, 1, 2}, iota_f(6));
  Attributes at;
  at.set("axes", std::vector<std::int64_t>{0});
  expect_f32(run(make_node("Squeeze", at), {&x}, 11)[0], {3, 1, 2}, iota_f(6));
  Tensor neg = ints({-2});
  expect_f32(run(make_node("Squeeze"), {&x, &neg}, 13)[0], {1, 3, 2}, iota_f(6));
  // no axes: every 1 goes
  expect_f32(run(make_node("Squeeze"), {&x}, 13)[0], {3, 2}, iota_f(6));
  expect_f32(run(make_node("Squeeze"), {&x}, 11)[0], {3, 2}, iota_f(6));
  Tensor xi = Tensor::from_i64({1}, {9});
  expect_i64(run(make_node("Squeeze"), {&xi})[0], {}, {9});

  Tensor bad = ints({1});
  const std::string msg = error_message_of([&] { run(make_node("Squeeze"), {&x, &bad}); });
  EXPECT_NE(msg.find("size 3"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------
// Identity, Dropout, Constant

TEST(OpsShape, IdentityAndDropout) {
  Tensor x = Tensor::from_f32({3}, {-1, 0, 1});
  expect_f32(run(make_node("Identity"), {&x})[0], {3}, {-1, 0, 1});
  Tensor xi = ints({4, 5});
  expect_i64(run(make_node("Identity"), {&xi})[0], {2}, {4, 5});

  Attributes old;
  old.set("ratio", 0.2f);
  expect_f32(run(make_node("Dropout", old), {&x}, 11)[0], {3}, {-1, 0, 1});
  Tensor r = Tensor::scalar_f32(0.1f);
  expect_f32(run(make_node("Dropout"), {&x, &r}, 13)[0], {3}, {-1, 0, 1});

  Node with_mask = make_node("Dropout");
  with_mask.outputs = {0, 1};
  const auto masked = run(with_mask, {&x});
  expect_f32(masked[0], {3}, {-1, 0, 1});
  expect_i64(masked[1], {3}, {1, 1, 1});  // inference keeps every element
  Node mask_omitted = make_node("Dropout");
  mask_omitted.outputs = {0, kNoValue};
  expect_f32(run(mask_omitted, {&x})[0], {3}, {-1, 0, 1});

  Tensor half = Tensor::scalar_f32(0.5f);
  Tensor on = Tensor::from_i64({}, {1});
  EXPECT_EQ(error_kind_of([&] { run(make_node("Dropout"), {&x, &half, &on}); }), ErrorKind::Unsupported);
  Tensor off = Tensor::from_i64({}, {0});
  expect_f32(run(make_node("Dropout"), {&x, &half, &off})[0], {3}, {-1, 0, 1});
}

TEST(OpsShape, FusedActivationOnDataMovement) {
  Node n = make_node("Reshape");
  n.activation.kind = Activation::Kind::Relu;
  Tensor x = Tensor::from_f32({4}, {-1, 2, -3, 4});
  Tensor s = ints({2, 2});
  expect_f32(run(n, {&x, &s})[0], {2, 2}, {0, 2, 0, 4});
}

TEST(OpsShape, Constant) {
  Attributes tv;
  tv.set("value", Tensor::from_f32({2, 2}, {1, 2, 3, 4}));
  expect_f32(run(make_node("Constant", tv), {})[0], {2, 2}, {1, 2, 3, 4});
  Attributes ti;
  ti.set("value", Tensor::from_i64({1}, {-1}));
  expect_i64(run(make_node("Constant", ti), {})[0], {1}, {-1});
  Attributes vf;
  vf.set("value_float", 2.5f);
  expect_f32(run(make_node("Constant", vf), {})[0], {}, {2.5f});
  Attributes vfs;
  vfs.set("value_floats", std::vector<float>{1.5f, -2.f});
  expect_f32(run(make_node("Constant", vfs), {})[0], {2}, {1.5f, -2.f});
  Attributes vi;
  vi.set("value_int", std::int64_t{7});
  expect_i64(run(make_node("Constant", vi), {})[0], {}, {7});
  Attributes vis;
  vis.set("value_ints", std::vector<std::int64_t>{0, -1, 3});
  expect_i64(run(make_node("Constant", vis), {})[0], {3}, {0, -1, 3});

  Node n = make_node("Constant", tv);
  auto out = infer_node(OpContext{n, 13, 1}, {});
  EXPECT_EQ(out[0].shape, (Shape{2, 2}));
  EXPECT_EQ(error_kind_of([&] { run(make_node("Constant"), {}); }), ErrorKind::InvalidModel);
}

TEST(OpsShape, Registered) {
  for (const char* op : {"Concat", "Flatten", "Reshape", "Transpose", "Pad", "Shape", "Gather", "Unsqueeze",
                         "Squeeze", "Identity", "Dropout", "Constant"})
    EXPECT_NE(find_op(op), nullptr) << op;
}

}  // namespace
}  // namespace vkfuse::graph
