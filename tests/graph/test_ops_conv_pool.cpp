// tests/graph/test_ops_conv_pool.cpp — the reference Conv, ConvTranspose,
// MaxPool, AveragePool and GlobalAveragePool kernels on small hand-computed
// cases.
//
// Expected values are worked out by hand (in the comments) or copied from the
// hand-written expectations of the ONNX backend node tests (onnx 1.12,
// onnx/backend/test/case/node/{conv,maxpool,averagepool}.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {
namespace {

Node make_node(const std::string& op) {
  Node n;
  n.name = "n0";
  n.op_type = op;
  return n;
}

Tensor run(const Node& n, std::vector<const Tensor*> inputs, std::int64_t opset = 13, int threads = 1) {
  auto outs = evaluate_node(OpContext{n, opset, threads}, inputs);
  EXPECT_GE(outs.size(), 1u);
  return std::move(outs.at(0));
}

void expect_tensor(const Tensor& t, const Shape& shape, const std::vector<float>& values, float tol = 1e-5f) {
  ASSERT_EQ(t.shape(), shape) << "got " << shape_string(t.shape());
  ASSERT_EQ(t.numel(), static_cast<std::int64_t>(values.size()));
  for (std::size_t i = 0; i < values.size(); ++i)
    EXPECT_NEAR(t.f32()[i], values[i], tol * std::max(1.f, std::abs(values[i]))) << "at flat index " << i;
}

// 0, 1, 2, ... n-1 (or start, start+1, ...), shaped.
Tensor iota(Shape shape, float start = 0.f) {
  std::vector<float> v(static_cast<std::size_t>(element_count(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return Tensor::from_f32(std::move(shape), std::move(v));
}

Tensor ones(Shape shape) {
  return Tensor::from_f32(shape, std::vector<float>(static_cast<std::size_t>(element_count(shape)), 1.f));
}

void expect_error(const Node& n, std::vector<const Tensor*> inputs, ErrorKind kind) {
  try {
    evaluate_node(OpContext{n, 13, 1}, inputs);
    ADD_FAILURE() << "expected vkfuse::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find("n0"), std::string::npos) << "message should name the node: " << e.what();
  }
}

// ---- Conv -------------------------------------------------------------------

TEST(Conv, Basic2x2KernelNoPad) {
  // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]]
  // y00 = 1*1+2*2+4*3+5*4 = 37, y01 = 2+6+15+24 = 47,
  // y10 = 4+10+21+32 = 67,     y11 = 5+12+24+36 = 77
  Tensor x = iota({1, 1, 3, 3}, 1.f);
  Tensor w = Tensor::from_f32({1, 1, 2, 2}, {1, 2, 3, 4});
  Node n = make_node("Conv");
  expect_tensor(run(n, {&x, &w}), {1, 1, 2, 2}, {37, 47, 67, 77});
}

TEST(Conv, OnnxExamplePadsAndNoPads) {
  // onnx conv.py: 5x5 input 0..24, 3x3 ones kernel.
  Tensor x = iota({1, 1, 5, 5});
  Tensor w = ones({1, 1, 3, 3});
  Node n = make_node("Conv");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{3, 3});
  n.attrs.set("pads", std::vector<std::int64_t>{1, 1, 1, 1});
  expect_tensor(run(n, {&x, &w}), {1, 1, 5, 5},
                {12, 21, 27, 33, 24, 33, 54, 63, 72, 51, 63, 99, 108, 117, 81, 93, 144, 153, 162, 111,
                 72, 111, 117, 123, 84});
  n.attrs.set("pads", std::vector<std::int64_t>{0, 0, 0, 0});
  expect_tensor(run(n, {&x, &w}), {1, 1, 3, 3}, {54, 63, 72, 99, 108, 117, 144, 153, 162});
}

TEST(Conv, StridesAndAsymmetricPads) {
  // onnx conv.py, 7x5 input 0..34, 3x3 ones kernel, stride 2.
  Tensor x = iota({1, 1, 7, 5});
  Tensor w = ones({1, 1, 3, 3});
  Node n = make_node("Conv");
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  n.attrs.set("pads", std::vector<std::int64_t>{1, 1, 1, 1});
  expect_tensor(run(n, {&x, &w}), {1, 1, 4, 3}, {12, 27, 24, 63, 108, 81, 123, 198, 141, 112, 177, 124});
  n.attrs.set("pads", std::vector<std::int64_t>{0, 0, 0, 0});
  expect_tensor(run(n, {&x, &w}), {1, 1, 3, 2}, {54, 72, 144, 162, 234, 252});
  // Padding along H only: pads = [top=1, left=0, bottom=1, right=0].
  n.attrs.set("pads", std::vector<std::int64_t>{1, 0, 1, 0});
  expect_tensor(run(n, {&x, &w}), {1, 1, 4, 2}, {21, 33, 99, 117, 189, 207, 171, 183});
}

TEST(Conv, AsymmetricPadsBeginOnly) {
  // 1x1x2x2 input [[1,2],[3,4]], 2x2 ones kernel, pads top=1,left=1, bottom=0,right=0:
  // padded = [[0,0,0],[0,1,2],[0,3,4]] -> sums of 2x2 windows: [[1,3],[4,10]].
  Tensor x = Tensor::from_f32({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor w = ones({1, 1, 2, 2});
  Node n = make_node("Conv");
  n.attrs.set("pads", std::vector<std::int64_t>{1, 1, 0, 0});
  expect_tensor(run(n, {&x, &w}), {1, 1, 2, 2}, {1, 3, 4, 10});
}

TEST(Conv, AutoPadSameLowerStride2Onnx) {
  // onnx conv.py test_conv_with_autopad_same; kernel_shape taken from W.
  Tensor x = iota({1, 1, 5, 5});
  Tensor w = ones({1, 1, 3, 3});
  Node n = make_node("Conv");
  n.attrs.set("auto_pad", std::string("SAME_LOWER"));
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  expect_tensor(run(n, {&x, &w}), {1, 1, 3, 3}, {12, 27, 24, 63, 108, 81, 72, 117, 84});
}

TEST(Conv, AutoPadSameUpperVsLowerOddTotalPad) {
  // 4x4 input x[i][j] = 4i+j, 3x3 ones kernel, stride 2 -> out 2x2, total pad
  // (2-1)*2+3-4 = 1 per axis.
  // SAME_UPPER (pad after): windows rows/cols {0..2} and {2..3,pad}.
  //   y00 = sum_{i,j<3} 4i+j = 36+9 = 45; y01 = rows 0-2, cols 2-3: 24+15 = 39
  //   y10 = rows 2-3, cols 0-2: 60+6 = 66; y11 = rows 2-3, cols 2-3: 40+10 = 50
  // SAME_LOWER (pad before): windows {pad,0..1} and {1..3}.
  //   y00 = rows 0-1, cols 0-1: 8+2 = 10; y01 = rows 0-1, cols 1-3: 12+12 = 24
  //   y10 = rows 1-3, cols 0-1: 48+3 = 51; y11 = rows 1-3, cols 1-3: 72+18 = 90
  Tensor x = iota({1, 1, 4, 4});
  Tensor w = ones({1, 1, 3, 3});
  Node n = make_node("Conv");
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  n.attrs.set("auto_pad", std::string("SAME_UPPER"));
  expect_tensor(run(n, {&x, &w}), {1, 1, 2, 2}, {45, 39, 66, 50});
  n.attrs.set("auto_pad", std::string("SAME_LOWER"));
  expect_tensor(run(n, {&x, &w}), {1, 1, 2, 2}, {10, 24, 51, 90});
  n.attrs.set("auto_pad", std::string("VALID"));
  n.attrs.set("pads", std::vector<std::int64_t>{5, 5, 5, 5});  // ignored under VALID
  expect_tensor(run(n, {&x, &w}), {1, 1, 1, 1}, {45});
}

TEST(Conv, OneDimensionalSameUpperAndLower) {
  // x = [1,2,3,4], w = [1,10], stride 1: total pad 1.
  // SAME_UPPER: [1+20, 2+30, 3+40, 4+0] ; SAME_LOWER: [0+10, 1+20, 2+30, 3+40]
  Tensor x = Tensor::from_f32({1, 1, 4}, {1, 2, 3, 4});
  Tensor w = Tensor::from_f32({1, 1, 2}, {1, 10});
  Node n = make_node("Conv");
  n.attrs.set("auto_pad", std::string("SAME_UPPER"));
  expect_tensor(run(n, {&x, &w}), {1, 1, 4}, {21, 32, 43, 4});
  n.attrs.set("auto_pad", std::string("SAME_LOWER"));
  expect_tensor(run(n, {&x, &w}), {1, 1, 4}, {10, 21, 32, 43});
}

TEST(Conv, Dilation) {
  // 5x5 input x[i][j] = 5i+j, 2x2 ones kernel dilated by 2 -> 3x3 output:
  // y[i][j] = x[i][j] + x[i][j+2] + x[i+2][j] + x[i+2][j+2] = 20i + 4j + 24.
  Tensor x = iota({1, 1, 5, 5});
  Tensor w = ones({1, 1, 2, 2});
  Node n = make_node("Conv");
  n.attrs.set("dilations", std::vector<std::int64_t>{2, 2});
  std::vector<float> expect;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) expect.push_back(static_cast<float>(20 * i + 4 * j + 24));
  expect_tensor(run(n, {&x, &w}), {1, 1, 3, 3}, expect);
}

TEST(Conv, DepthwiseGroups) {
  // Two channels, group=2: channel 0 = 1..9 with a 2x2 ones kernel (window
  // sums 1+2+4+5=12, 16, 24, 28); channel 1 = 10,20..90 with kernel [[0,0],[0,1]]
  // (picks the bottom-right element: 50, 60, 80, 90).
  std::vector<float> xv;
  for (int i = 1; i <= 9; ++i) xv.push_back(static_cast<float>(i));
  for (int i = 1; i <= 9; ++i) xv.push_back(static_cast<float>(10 * i));
  Tensor x = Tensor::from_f32({1, 2, 3, 3}, xv);
  Tensor w = Tensor::from_f32({2, 1, 2, 2}, {1, 1, 1, 1, 0, 0, 0, 1});
  Node n = make_node("Conv");
  n.attrs.set("group", std::int64_t{2});
  expect_tensor(run(n, {&x, &w}, 13, 2), {1, 2, 2, 2}, {12, 16, 24, 28, 50, 60, 80, 90});
}

TEST(Conv, GroupsWithSeveralChannelsPerGroup) {
  // C=4, group=2, M=4, 1x1 kernels on a 1x1 image x = [1,2,3,4]:
  // group 0 (inputs 1,2): y0 = 1*1+2*2 = 5, y1 = 1*(-1)+2*0 = -1
  // group 1 (inputs 3,4): y2 = 3*3+4*4 = 25, y3 = 3*0+4*10 = 40
  Tensor x = Tensor::from_f32({1, 4, 1, 1}, {1, 2, 3, 4});
  Tensor w = Tensor::from_f32({4, 2, 1, 1}, {1, 2, -1, 0, 3, 4, 0, 10});
  Node n = make_node("Conv");
  n.attrs.set("group", std::int64_t{2});
  expect_tensor(run(n, {&x, &w}), {1, 4, 1, 1}, {5, -1, 25, 40});
}

TEST(Conv, BiasAndFusedRelu) {
  // 1x1 conv, two output channels with weights +1 and -1, bias 0.5 each.
  // x = [1,-2,3,-4]; ch0 = x+0.5 = [1.5,-1.5,3.5,-3.5]; ch1 = -x+0.5 = [-0.5,2.5,-2.5,4.5]
  Tensor x = Tensor::from_f32({1, 1, 2, 2}, {1, -2, 3, -4});
  Tensor w = Tensor::from_f32({2, 1, 1, 1}, {1, -1});
  Tensor b = Tensor::from_f32({2}, {0.5f, 0.5f});
  Node n = make_node("Conv");
  expect_tensor(run(n, {&x, &w, &b}), {1, 2, 2, 2}, {1.5f, -1.5f, 3.5f, -3.5f, -0.5f, 2.5f, -2.5f, 4.5f});
  n.activation.kind = Activation::Kind::Relu;
  expect_tensor(run(n, {&x, &w, &b}), {1, 2, 2, 2}, {1.5f, 0, 3.5f, 0, 0, 2.5f, 0, 4.5f});
  // An omitted bias (nullptr) is the same as no bias.
  expect_tensor(run(n, {&x, &w, nullptr}), {1, 2, 2, 2}, {1, 0, 3, 0, 0, 2, 0, 4});
}

TEST(Conv, BatchAndThreads) {
  // N=2: the second image is the first times 10; 2x2 kernel [[1,2],[3,4]] on 1..9
  // gives 37,47,67,77 (see Basic2x2KernelNoPad).
  std::vector<float> xv;
  for (int i = 1; i <= 9; ++i) xv.push_back(static_cast<float>(i));
  for (int i = 1; i <= 9; ++i) xv.push_back(static_cast<float>(10 * i));
  Tensor x = Tensor::from_f32({2, 1, 3, 3}, xv);
  Tensor w = Tensor::from_f32({1, 1, 2, 2}, {1, 2, 3, 4});
  Node n = make_node("Conv");
  expect_tensor(run(n, {&x, &w}, 13, 4), {2, 1, 2, 2}, {37, 47, 67, 77, 370, 470, 670, 770});
}

TEST(Conv, ThreeDimensional) {
  // 2x2x2 input 1..8, 2x2x2 ones kernel -> 36; with stride 1 and pad 1 at the
  // end of each axis, the corner output sees only element 8.
  Tensor x = iota({1, 1, 2, 2, 2}, 1.f);
  Tensor w = ones({1, 1, 2, 2, 2});
  Node n = make_node("Conv");
  expect_tensor(run(n, {&x, &w}), {1, 1, 1, 1, 1}, {36});
  n.attrs.set("pads", std::vector<std::int64_t>{0, 0, 0, 1, 1, 1});
  Tensor y = run(n, {&x, &w});
  ASSERT_EQ(y.shape(), (Shape{1, 1, 2, 2, 2}));
  EXPECT_FLOAT_EQ(y.f32()[0], 36.f);
  EXPECT_FLOAT_EQ(y.f32()[7], 8.f);
  EXPECT_FLOAT_EQ(y.f32()[1], 2.f + 4 + 6 + 8);  // w = 1 column: elements with w-index 1
}

TEST(Conv, InferShapeWithoutEvaluating) {
  // ResNet stem: 1x3x224x224, 64x3x7x7, stride 2, pad 3 -> 1x64x112x112.
  Node n = make_node("Conv");
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  n.attrs.set("pads", std::vector<std::int64_t>{3, 3, 3, 3});
  std::vector<InputInfo> in(2);
  in[0].shape = {1, 3, 224, 224};
  in[1].shape = {64, 3, 7, 7};
  auto out = infer_node(OpContext{n, 13, 1}, in);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].shape, (Shape{1, 64, 112, 112}));
  EXPECT_EQ(out[0].dtype, DType::f32);
}

TEST(Conv, Errors) {
  Tensor x = iota({1, 3, 4, 4});
  Tensor w = ones({2, 2, 3, 3});  // expects 2 input channels, X has 3
  Node n = make_node("Conv");
  expect_error(n, {&x, &w}, ErrorKind::InvalidModel);
  try {
    evaluate_node(OpContext{n, 13, 1}, std::vector<const Tensor*>{&x, &w});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("channels"), std::string::npos) << e.what();
  }

  // group does not divide the output channels
  Tensor x4 = iota({1, 4, 4, 4});
  Tensor w3 = ones({3, 2, 1, 1});
  Node g = make_node("Conv");
  g.attrs.set("group", std::int64_t{2});
  expect_error(g, {&x4, &w3}, ErrorKind::InvalidModel);

  // kernel_shape disagrees with W
  Tensor w1 = ones({1, 3, 3, 3});
  Node k = make_node("Conv");
  k.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2});
  expect_error(k, {&x, &w1}, ErrorKind::InvalidModel);

  // bias of the wrong size
  Tensor b = ones({2});
  expect_error(make_node("Conv"), {&x, &w1, &b}, ErrorKind::InvalidModel);

  // kernel larger than the input
  Tensor w7 = ones({1, 3, 7, 7});
  expect_error(make_node("Conv"), {&x, &w7}, ErrorKind::InvalidModel);

  // unsupported auto_pad and dtype
  Node a = make_node("Conv");
  a.attrs.set("auto_pad", std::string("SAME_MIDDLE"));
  expect_error(a, {&x, &w1}, ErrorKind::Unsupported);
  Tensor xi = Tensor::from_i64({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor wi = ones({1, 1, 1, 1});
  expect_error(make_node("Conv"), {&xi, &wi}, ErrorKind::Unsupported);

  // rank mismatch between X and W
  Tensor w2d = ones({1, 3});
  expect_error(make_node("Conv"), {&x, &w2d}, ErrorKind::InvalidModel);
}

// ---- ConvTranspose ----------------------------------------------------------
// Full (unpadded) output: y[i*s + k*d] += x[i] * w[k], length s*(in-1) + op + (k-1)*d + 1.

TEST(ConvTranspose, OneDimensionalBasic) {
  // x = [1,2,3], w = [1,10,100]: y = [1, 10+2, 100+20+3, 200+30, 300].
  Tensor x = Tensor::from_f32({1, 1, 3}, {1, 2, 3});
  Tensor w = Tensor::from_f32({1, 1, 3}, {1, 10, 100});
  Node n = make_node("ConvTranspose");
  expect_tensor(run(n, {&x, &w}), {1, 1, 5}, {1, 12, 123, 230, 300});
}

TEST(ConvTranspose, Stride2OutputPaddingBiasAndPads) {
  // x = [1,2], w = [1,10], stride 2, output_padding 1: length 2*1+1+2 = 5,
  // y = [1, 10, 2, 20, 0]; the output_padding column gets only the bias.
  Tensor x = Tensor::from_f32({1, 1, 2}, {1, 2});
  Tensor w = Tensor::from_f32({1, 1, 2}, {1, 10});
  Tensor b = Tensor::from_f32({1}, {0.5f});
  Node n = make_node("ConvTranspose");
  n.attrs.set("strides", std::vector<std::int64_t>{2});
  n.attrs.set("output_padding", std::vector<std::int64_t>{1});
  expect_tensor(run(n, {&x, &w, &b}), {1, 1, 5}, {1.5f, 10.5f, 2.5f, 20.5f, 0.5f});
  // pads [1, 1] crop one column off each end.
  n.attrs.set("pads", std::vector<std::int64_t>{1, 1});
  expect_tensor(run(n, {&x, &w}), {1, 1, 3}, {10, 2, 20});
}

TEST(ConvTranspose, Dilation) {
  // x = [1,2], w = [1,10], dilation 2: y[i + 2k]: y = [1, 2, 10, 20].
  Tensor x = Tensor::from_f32({1, 1, 2}, {1, 2});
  Tensor w = Tensor::from_f32({1, 1, 2}, {1, 10});
  Node n = make_node("ConvTranspose");
  n.attrs.set("dilations", std::vector<std::int64_t>{2});
  expect_tensor(run(n, {&x, &w}), {1, 1, 4}, {1, 2, 10, 20});
  // output_padding may reach the stride (1) when it is below the dilation.
  n.attrs.set("output_padding", std::vector<std::int64_t>{1});
  expect_tensor(run(n, {&x, &w}), {1, 1, 5}, {1, 2, 10, 20, 0});
}

TEST(ConvTranspose, TwoDimensionalStride2Blocks) {
  // 2x2 ones kernel at stride 2: every input pixel becomes a 2x2 block.
  Tensor x = Tensor::from_f32({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor w = ones({1, 1, 2, 2});
  Node n = make_node("ConvTranspose");
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  expect_tensor(run(n, {&x, &w}), {1, 1, 4, 4}, {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
}

TEST(ConvTranspose, GroupedChannels) {
  // C=4, group=2, W [4, 2, 1] -> M=4, 1x1 kernels; x = [1,2,3,4],
  // W rows c0=[1,2], c1=[3,4], c2=[5,6], c3=[7,8] (columns = output channel in group).
  // group 0: y0 = 1*1+2*3 = 7, y1 = 1*2+2*4 = 10
  // group 1: y2 = 3*5+4*7 = 43, y3 = 3*6+4*8 = 50
  Tensor x = Tensor::from_f32({1, 4, 1}, {1, 2, 3, 4});
  Tensor w = Tensor::from_f32({4, 2, 1}, {1, 2, 3, 4, 5, 6, 7, 8});
  Node n = make_node("ConvTranspose");
  n.attrs.set("group", std::int64_t{2});
  expect_tensor(run(n, {&x, &w}, 13, 3), {1, 4, 1}, {7, 10, 43, 50});
}

TEST(ConvTranspose, SeveralInputChannelsSumAndFusedRelu) {
  // C=2, M=1, 1-D: x0 = [1,2], x1 = [3,4], w0 = [1,1], w1 = [-1,0], bias -1.
  // scatter of x0: [1,3,2], of x1: [-3,-4,0]; sum + bias = [-3,-2,1].
  Tensor x = Tensor::from_f32({1, 2, 2}, {1, 2, 3, 4});
  Tensor w = Tensor::from_f32({2, 1, 2}, {1, 1, -1, 0});
  Tensor b = Tensor::from_f32({1}, {-1});
  Node n = make_node("ConvTranspose");
  expect_tensor(run(n, {&x, &w, &b}), {1, 1, 3}, {-3, -2, 1});
  n.activation.kind = Activation::Kind::Relu;
  expect_tensor(run(n, {&x, &w, &b}), {1, 1, 3}, {0, 0, 1});
}

TEST(ConvTranspose, AutoPadSameUpperAndLower) {
  // x = [1,2], w = [1,10,100], stride 2: full = [1, 10, 100+2, 20, 200] (length 5),
  // SAME targets 2*2 = 4, total padding 1: SAME_UPPER crops the end, SAME_LOWER the start.
  Tensor x = Tensor::from_f32({1, 1, 2}, {1, 2});
  Tensor w = Tensor::from_f32({1, 1, 3}, {1, 10, 100});
  Node n = make_node("ConvTranspose");
  n.attrs.set("strides", std::vector<std::int64_t>{2});
  n.attrs.set("auto_pad", std::string("SAME_UPPER"));
  expect_tensor(run(n, {&x, &w}), {1, 1, 4}, {1, 10, 102, 20});
  n.attrs.set("auto_pad", std::string("SAME_LOWER"));
  expect_tensor(run(n, {&x, &w}), {1, 1, 4}, {10, 102, 20, 200});
  n.attrs.set("auto_pad", std::string("VALID"));
  n.attrs.set("pads", std::vector<std::int64_t>{1, 1});  // ignored under VALID
  expect_tensor(run(n, {&x, &w}), {1, 1, 5}, {1, 10, 102, 20, 200});
}

TEST(ConvTranspose, OutputShapeComputesPads) {
  // Same full output [1, 10, 102, 20, 200] as above.
  Tensor x = Tensor::from_f32({1, 1, 2}, {1, 2});
  Tensor w = Tensor::from_f32({1, 1, 3}, {1, 10, 100});
  Node n = make_node("ConvTranspose");
  n.attrs.set("strides", std::vector<std::int64_t>{2});
  n.attrs.set("pads", std::vector<std::int64_t>{2, 2});  // ignored: output_shape wins
  // total padding 1; without SAME_UPPER the odd pixel comes off the start.
  n.attrs.set("output_shape", std::vector<std::int64_t>{4});
  expect_tensor(run(n, {&x, &w}), {1, 1, 4}, {10, 102, 20, 200});
  // The full-rank form [N, M, spatial] is accepted too.
  n.attrs.set("output_shape", std::vector<std::int64_t>{1, 1, 4});
  expect_tensor(run(n, {&x, &w}), {1, 1, 4}, {10, 102, 20, 200});
  // total padding -1 (floor split: begin 0, end -1): one zero appended.
  n.attrs.set("output_shape", std::vector<std::int64_t>{6});
  expect_tensor(run(n, {&x, &w}), {1, 1, 6}, {1, 10, 102, 20, 200, 0});
  // SAME_UPPER with total -1: begin -1, end 0: one zero prepended.
  n.attrs.set("auto_pad", std::string("SAME_UPPER"));
  expect_tensor(run(n, {&x, &w}), {1, 1, 6}, {0, 1, 10, 102, 20, 200});
}

TEST(ConvTranspose, ThreeDimensionalAndBatch) {
  // N=2 (second image = first * 10), D-only kernel [1,1] on x = [1,2] along D:
  // y = [1, 3, 2] along D, H = W = 1.
  Tensor x = Tensor::from_f32({2, 1, 2, 1, 1}, {1, 2, 10, 20});
  Tensor w = ones({1, 1, 2, 1, 1});
  Node n = make_node("ConvTranspose");
  expect_tensor(run(n, {&x, &w}, 13, 2), {2, 1, 3, 1, 1}, {1, 3, 2, 10, 30, 20});
}

TEST(ConvTranspose, InferShapeWithoutEvaluating) {
  // DCGAN generator step: 1x512x4x4, W 512x256x4x4, stride 2, pads 1 -> 1x256x8x8.
  Node n = make_node("ConvTranspose");
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  n.attrs.set("pads", std::vector<std::int64_t>{1, 1, 1, 1});
  std::vector<InputInfo> in(2);
  in[0].shape = {1, 512, 4, 4};
  in[1].shape = {512, 256, 4, 4};
  auto out = infer_node(OpContext{n, 13, 1}, in);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].shape, (Shape{1, 256, 8, 8}));
  EXPECT_EQ(out[0].dtype, DType::f32);
}

TEST(ConvTranspose, Errors) {
  Tensor x = iota({1, 3, 2});
  // W's first dim must be C (3), not M.
  Tensor w2 = ones({2, 1, 2});
  expect_error(make_node("ConvTranspose"), {&x, &w2}, ErrorKind::InvalidModel);

  // C = 3 not divisible by group = 2
  Tensor w3 = ones({3, 1, 2});
  Node g = make_node("ConvTranspose");
  g.attrs.set("group", std::int64_t{2});
  expect_error(g, {&x, &w3}, ErrorKind::InvalidModel);

  // output_padding not below the stride (2) nor the dilation (1)
  Node op = make_node("ConvTranspose");
  op.attrs.set("strides", std::vector<std::int64_t>{2});
  op.attrs.set("output_padding", std::vector<std::int64_t>{2});
  expect_error(op, {&x, &w3}, ErrorKind::InvalidModel);
  op.attrs.set("output_padding", std::vector<std::int64_t>{-1});
  expect_error(op, {&x, &w3}, ErrorKind::InvalidModel);

  // pads larger than the full output: 1*(2-1) + 2 - 2 - 2 = -1
  Node p = make_node("ConvTranspose");
  p.attrs.set("pads", std::vector<std::int64_t>{2, 2});
  expect_error(p, {&x, &w3}, ErrorKind::InvalidModel);

  // output_shape of the wrong rank, or not positive
  Node os = make_node("ConvTranspose");
  os.attrs.set("output_shape", std::vector<std::int64_t>{4, 4});
  expect_error(os, {&x, &w3}, ErrorKind::InvalidModel);
  os.attrs.set("output_shape", std::vector<std::int64_t>{0});
  expect_error(os, {&x, &w3}, ErrorKind::InvalidModel);

  // kernel_shape disagrees with W; bias of the wrong size (M = 1)
  Node k = make_node("ConvTranspose");
  k.attrs.set("kernel_shape", std::vector<std::int64_t>{3});
  expect_error(k, {&x, &w3}, ErrorKind::InvalidModel);
  Tensor b = ones({3});
  expect_error(make_node("ConvTranspose"), {&x, &w3, &b}, ErrorKind::InvalidModel);

  // unsupported dtype and rank
  Tensor xi = Tensor::from_i64({1, 1, 2}, {1, 2});
  Tensor w1 = ones({1, 1, 1});
  expect_error(make_node("ConvTranspose"), {&xi, &w1}, ErrorKind::Unsupported);
  Tensor x4 = ones({1, 1, 1, 1, 1, 1});
  Tensor w4 = ones({1, 1, 1, 1, 1, 1});
  expect_error(make_node("ConvTranspose"), {&x4, &w4}, ErrorKind::Unsupported);
}

// ---- MaxPool ----------------------------------------------------------------

TEST(MaxPool, Stride2) {
  // 4x4 input 1..16, 2x2 windows, stride 2 -> maxima 6, 8, 14, 16.
  Tensor x = iota({1, 1, 4, 4}, 1.f);
  Node n = make_node("MaxPool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2});
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  expect_tensor(run(n, {&x}), {1, 1, 2, 2}, {6, 8, 14, 16});
}

TEST(MaxPool, PrecomputedPadsOnnx) {
  Tensor x = iota({1, 1, 5, 5}, 1.f);
  Node n = make_node("MaxPool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{5, 5});
  n.attrs.set("pads", std::vector<std::int64_t>{2, 2, 2, 2});
  expect_tensor(run(n, {&x}), {1, 1, 5, 5},
                {13, 14, 15, 15, 15, 18, 19, 20, 20, 20, 23, 24, 25, 25, 25, 23, 24, 25, 25, 25, 23, 24, 25, 25, 25});
}

TEST(MaxPool, PaddingNeverWinsOverNegatives) {
  // All-negative input with padding: the pad must not contribute a 0.
  Tensor x = Tensor::from_f32({1, 1, 1, 2}, {-3, -5});
  Node n = make_node("MaxPool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{1, 2});
  n.attrs.set("pads", std::vector<std::int64_t>{0, 1, 0, 1});
  expect_tensor(run(n, {&x}), {1, 1, 1, 3}, {-3, -3, -5});
}

TEST(MaxPool, CeilModeOnnx) {
  // onnx maxpool.py test_maxpool_2d_ceil: 4x4 input 1..16, k3 s2.
  Tensor x = iota({1, 1, 4, 4}, 1.f);
  Node n = make_node("MaxPool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{3, 3});
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  expect_tensor(run(n, {&x}), {1, 1, 1, 1}, {11});  // floor: (4-3)/2+1 = 1
  n.attrs.set("ceil_mode", std::int64_t{1});
  expect_tensor(run(n, {&x}), {1, 1, 2, 2}, {11, 12, 15, 16});  // ceil: 2
}

TEST(MaxPool, CeilModeDropsWindowStartingInEndPadding) {
  // 1-D x = [1,2,3], k2 s2, pads 1 both sides: ceil((3+2-2)/2)+1 = 3, but the
  // third window would start at padded index 4 = in + pad_begin (only end
  // padding) and is dropped: windows [pad,1] -> 1 and [2,3] -> 3.
  Tensor x = Tensor::from_f32({1, 1, 3}, {1, 2, 3});
  Node n = make_node("MaxPool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{2});
  n.attrs.set("strides", std::vector<std::int64_t>{2});
  n.attrs.set("pads", std::vector<std::int64_t>{1, 1});
  n.attrs.set("ceil_mode", std::int64_t{1});
  expect_tensor(run(n, {&x}), {1, 1, 2}, {1, 3});
}

TEST(MaxPool, DilationsOnnx) {
  Tensor x = iota({1, 1, 4, 4}, 1.f);
  Node n = make_node("MaxPool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2});
  n.attrs.set("dilations", std::vector<std::int64_t>{2, 2});
  expect_tensor(run(n, {&x}), {1, 1, 2, 2}, {11, 12, 15, 16});
}

TEST(MaxPool, SameUpperOnnx) {
  Tensor x = iota({1, 1, 5, 5}, 1.f);
  Node n = make_node("MaxPool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{3, 3});
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  n.attrs.set("auto_pad", std::string("SAME_UPPER"));
  expect_tensor(run(n, {&x}), {1, 1, 3, 3}, {7, 9, 10, 17, 19, 20, 22, 24, 25});
}

TEST(MaxPool, SameLowerOneDimensional) {
  // x = [4,1,3,2], k2 s1: SAME_LOWER pads one at the start: [pad,4] [4,1] [1,3] [3,2]
  // -> [4,4,3,3]; SAME_UPPER pads at the end: [4,1] [1,3] [3,2] [2,pad] -> [4,3,3,2].
  Tensor x = Tensor::from_f32({1, 1, 4}, {4, 1, 3, 2});
  Node n = make_node("MaxPool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{2});
  n.attrs.set("auto_pad", std::string("SAME_LOWER"));
  expect_tensor(run(n, {&x}), {1, 1, 4}, {4, 4, 3, 3});
  n.attrs.set("auto_pad", std::string("SAME_UPPER"));
  expect_tensor(run(n, {&x}), {1, 1, 4}, {4, 3, 3, 2});
}

TEST(MaxPool, ChannelsAndBatchWithThreads) {
  // 2 images x 2 channels of 2x2; global 2x2 window -> max of each plane.
  Tensor x = Tensor::from_f32({2, 2, 2, 2}, {1, 5, 2, 3, -1, -2, -3, -4, 9, 0, 0, 0, 7, 8, 6, 5});
  Node n = make_node("MaxPool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2});
  expect_tensor(run(n, {&x}, 13, 3), {2, 2, 1, 1}, {5, -1, 9, 8});
}

TEST(MaxPool, Errors) {
  Tensor x = iota({1, 1, 4, 4});
  Node n = make_node("MaxPool");  // no kernel_shape
  expect_error(n, {&x}, ErrorKind::InvalidModel);

  Node idx = make_node("MaxPool");
  idx.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2});
  idx.outputs = {1, 2};  // Y and Indices both requested
  expect_error(idx, {&x}, ErrorKind::Unsupported);
  idx.outputs = {1, kNoValue};  // Indices omitted: fine
  EXPECT_NO_THROW(evaluate_node(OpContext{idx, 13, 1}, std::vector<const Tensor*>{&x}));

  Node k3 = make_node("MaxPool");
  k3.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2, 2});  // rank mismatch
  expect_error(k3, {&x}, ErrorKind::InvalidModel);

  Tensor xi = Tensor::from_i64({1, 1, 2, 2}, {1, 2, 3, 4});
  Node i = make_node("MaxPool");
  i.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2});
  expect_error(i, {&xi}, ErrorKind::Unsupported);
}

// ---- AveragePool ------------------------------------------------------------

TEST(AveragePool, PrecomputedPadsExcludeAndIncludePadOnnx) {
  Tensor x = iota({1, 1, 5, 5}, 1.f);
  Node n = make_node("AveragePool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{5, 5});
  n.attrs.set("pads", std::vector<std::int64_t>{2, 2, 2, 2});
  expect_tensor(run(n, {&x}), {1, 1, 5, 5},
                {7, 7.5f, 8, 8.5f, 9, 9.5f, 10, 10.5f, 11, 11.5f, 12, 12.5f, 13, 13.5f, 14, 14.5f, 15, 15.5f, 16, 16.5f,
                 17, 17.5f, 18, 18.5f, 19});
  n.attrs.set("count_include_pad", std::int64_t{1});
  expect_tensor(run(n, {&x}), {1, 1, 5, 5},
                {2.52f, 3.6f, 4.8f, 4.08f, 3.24f, 4.56f, 6.4f, 8.4f, 7.04f, 5.52f, 7.2f, 10, 13, 10.8f, 8.4f,
                 6.96f, 9.6f, 12.4f, 10.24f, 7.92f, 6.12f, 8.4f, 10.8f, 8.88f, 6.84f});
}

TEST(AveragePool, CeilModeOnnx) {
  // onnx averagepool.py test_averagepool_2d_ceil: the partial windows average
  // only the input elements they cover.
  Tensor x = iota({1, 1, 4, 4}, 1.f);
  Node n = make_node("AveragePool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{3, 3});
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  n.attrs.set("ceil_mode", std::int64_t{1});
  expect_tensor(run(n, {&x}), {1, 1, 2, 2}, {6, 7.5f, 12, 13.5f});
}

TEST(AveragePool, CeilModeWithPadsBothCountRules) {
  // 1-D x = [1,2,3,4], k3 s2, pads [1,1], ceil_mode: ceil((4+2-3)/2)+1 = 3
  // windows (padded coordinates): [pad,1,2], [2,3,4], [4,pad,<past end>].
  // count_include_pad=0: (1+2)/2 = 1.5, 9/3 = 3, 4/1 = 4
  // count_include_pad=1: (0+1+2)/3 = 1, 9/3 = 3, (4+0)/2 = 2  (the tap past the
  //   end padding is not counted, as in PyTorch)
  Tensor x = Tensor::from_f32({1, 1, 4}, {1, 2, 3, 4});
  Node n = make_node("AveragePool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{3});
  n.attrs.set("strides", std::vector<std::int64_t>{2});
  n.attrs.set("pads", std::vector<std::int64_t>{1, 1});
  n.attrs.set("ceil_mode", std::int64_t{1});
  expect_tensor(run(n, {&x}), {1, 1, 3}, {1.5f, 3, 4});
  n.attrs.set("count_include_pad", std::int64_t{1});
  expect_tensor(run(n, {&x}), {1, 1, 3}, {1, 3, 2});
  n.attrs.set("ceil_mode", std::int64_t{0});  // floor: (4+2-3)/2+1 = 2
  expect_tensor(run(n, {&x}), {1, 1, 2}, {1, 3});
}

TEST(AveragePool, CountIncludePad2D) {
  // 2x2 input [[1,2],[3,4]], k2 s1, pads 1 all round -> 3x3 output.
  // include pad: every window has 4 taps: [1,3,2, 4,10,6, 3,7,4]/4
  // exclude pad: corners 1 element, edges 2, centre 4:
  //   [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4]
  Tensor x = Tensor::from_f32({1, 1, 2, 2}, {1, 2, 3, 4});
  Node n = make_node("AveragePool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2});
  n.attrs.set("pads", std::vector<std::int64_t>{1, 1, 1, 1});
  expect_tensor(run(n, {&x}), {1, 1, 3, 3}, {1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4});
  n.attrs.set("count_include_pad", std::int64_t{1});
  expect_tensor(run(n, {&x}), {1, 1, 3, 3}, {0.25f, 0.75f, 0.5f, 1, 2.5f, 1.5f, 0.75f, 1.75f, 1});
}

TEST(AveragePool, SameUpperOnnx) {
  Tensor x = iota({1, 1, 5, 5}, 1.f);
  Node n = make_node("AveragePool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{3, 3});
  n.attrs.set("strides", std::vector<std::int64_t>{2, 2});
  n.attrs.set("auto_pad", std::string("SAME_UPPER"));
  expect_tensor(run(n, {&x}), {1, 1, 3, 3}, {4, 5.5f, 7, 11.5f, 13, 14.5f, 19, 20.5f, 22});
}

TEST(AveragePool, SameLowerAndUpperOneDimensional) {
  // x = [1,2,3,4], k2: SAME_LOWER windows [pad,1] [1,2] [2,3] [3,4] -> [1,1.5,2.5,3.5]
  // SAME_UPPER windows [1,2] [2,3] [3,4] [4,pad] -> [1.5,2.5,3.5,4]  (pads excluded)
  Tensor x = Tensor::from_f32({1, 1, 4}, {1, 2, 3, 4});
  Node n = make_node("AveragePool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{2});
  n.attrs.set("auto_pad", std::string("SAME_LOWER"));
  expect_tensor(run(n, {&x}), {1, 1, 4}, {1, 1.5f, 2.5f, 3.5f});
  n.attrs.set("auto_pad", std::string("SAME_UPPER"));
  expect_tensor(run(n, {&x}), {1, 1, 4}, {1.5f, 2.5f, 3.5f, 4});
}

TEST(AveragePool, StridesNoPadThreeDimensional) {
  // 2x2x2 input 1..8, one 2x2x2 window -> mean 4.5
  Tensor x = iota({1, 1, 2, 2, 2}, 1.f);
  Node n = make_node("AveragePool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2, 2});
  expect_tensor(run(n, {&x}), {1, 1, 1, 1, 1}, {4.5f});
}

TEST(AveragePool, Errors) {
  Tensor x = iota({1, 1, 4, 4});
  Node n = make_node("AveragePool");
  n.attrs.set("kernel_shape", std::vector<std::int64_t>{5, 5});  // larger than the input
  expect_error(n, {&x}, ErrorKind::InvalidModel);
  Node c = make_node("AveragePool");
  c.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2});
  c.attrs.set("pads", std::vector<std::int64_t>{1, 1});  // needs 4 entries
  expect_error(c, {&x}, ErrorKind::InvalidModel);
  Tensor x2 = iota({4, 4});
  Node r = make_node("AveragePool");
  r.attrs.set("kernel_shape", std::vector<std::int64_t>{2, 2});
  expect_error(r, {&x2}, ErrorKind::Unsupported);
}

// ---- GlobalAveragePool ------------------------------------------------------

TEST(GlobalAveragePool, MeansPerPlane) {
  // image 0: ch0 [1,2,3,4] -> 2.5, ch1 [10,20,30,40] -> 25
  // image 1: ch0 [-1,1,-1,1] -> 0, ch1 [0,0,0,8] -> 2
  Tensor x = Tensor::from_f32({2, 2, 2, 2}, {1, 2, 3, 4, 10, 20, 30, 40, -1, 1, -1, 1, 0, 0, 0, 8});
  Node n = make_node("GlobalAveragePool");
  expect_tensor(run(n, {&x}, 13, 2), {2, 2, 1, 1}, {2.5f, 25, 0, 2});
}

TEST(GlobalAveragePool, OneDimensionalAndFusedActivation) {
  Tensor x = Tensor::from_f32({1, 2, 3}, {1, 2, 3, -4, -5, -6});
  Node n = make_node("GlobalAveragePool");
  expect_tensor(run(n, {&x}), {1, 2, 1}, {2, -5});
  n.activation.kind = Activation::Kind::Relu;
  expect_tensor(run(n, {&x}), {1, 2, 1}, {2, 0});
}

TEST(GlobalAveragePool, Errors) {
  Tensor x = iota({2, 3});
  expect_error(make_node("GlobalAveragePool"), {&x}, ErrorKind::InvalidModel);
  Tensor xi = Tensor::from_i64({1, 1, 2}, {1, 2});
  expect_error(make_node("GlobalAveragePool"), {&xi}, ErrorKind::Unsupported);
}

}  // namespace
}  // namespace vkfuse::graph
