// One suite, every backend: small single-op and fused-pattern models run
// through each strategy the build offers and compared with the reference
// strategy (naive kernels, double accumulation), relative L2 error ≤ 1e-4
// (≤ 1e-2 in fp16). New backends join by appearing in available_strategies().
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <random>
#include <span>

#include <nlohmann/json.hpp>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "tests/onnx_builder.h"
#include "vkfuse/vkfuse.h"

using vkfuse::testing::OnnxBuilder;

namespace {

using Shape = std::vector<std::int64_t>;

std::int64_t count(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// Deterministic pseudo-random weights in [-scale, scale].
std::vector<float> values(const Shape& s, std::uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(static_cast<std::size_t>(count(s)));
  for (auto& x : v) x = u(rng);
  return v;
}

struct Case {
  std::string name;
  std::function<OnnxBuilder()> build;
};

// Conv from "x" [1, cin, h, w] with the given attributes; y has shape `out`.
struct ConvSpec {
  std::int64_t cin = 3, cout = 8, h = 13, w = 11, kh = 3, kw = 3;
  Shape strides{1, 1}, pads{1, 1, 1, 1}, dilations{1, 1};
  std::int64_t group = 1;
  bool bias = true;
  std::string activation = "";  // or an ONNX op applied after the conv
  bool residual = false;   // Add the conv's output to a second input "r"
};

OnnxBuilder conv_model(const ConvSpec& c) {
  OnnxBuilder b;
  b.input("x", {1, c.cin, c.h, c.w});
  const std::int64_t eh = (c.kh - 1) * c.dilations[0] + 1, ew = (c.kw - 1) * c.dilations[1] + 1;
  const std::int64_t oh = (c.h + c.pads[0] + c.pads[2] - eh) / c.strides[0] + 1;
  const std::int64_t ow = (c.w + c.pads[1] + c.pads[3] - ew) / c.strides[1] + 1;
  const Shape out{1, c.cout, oh, ow};
  if (c.residual) b.input("r", out);
  const Shape ws{c.cout, c.cin / c.group, c.kh, c.kw};
  b.initializer("w", ws, values(ws, 1, 1.f / std::sqrt(static_cast<float>(count(ws) / c.cout))));
  std::vector<std::string> ins{"x", "w"};
  if (c.bias) {
    b.initializer("b", {c.cout}, values({c.cout}, 2, 0.5f));
    ins.push_back("b");
  }
  std::string y = "conv";
  auto& n = b.node("Conv", ins, {y}, "conv");
  OnnxBuilder::attr_ints(n, "kernel_shape", {c.kh, c.kw});
  OnnxBuilder::attr_ints(n, "strides", c.strides);
  OnnxBuilder::attr_ints(n, "pads", c.pads);
  OnnxBuilder::attr_ints(n, "dilations", c.dilations);
  OnnxBuilder::attr_int(n, "group", c.group);
  if (c.residual) {
    b.node("Add", {y, "r"}, {"sum"}, "residual");
    y = "sum";
  }
  if (!c.activation.empty()) {
    if (c.activation == "Clip") {
      b.initializer("lo", {}, {0.f});
      b.initializer("hi", {}, {0.6f});
      b.node("Clip", {y, "lo", "hi"}, {"act"}, "act");
    } else {
      b.node(c.activation, {y}, {"act"}, "act");
    }
    y = "act";
  }
  b.node("Identity", {y}, {"y"});
  b.output("y", out);
  return b;
}

OnnxBuilder pool_model(const std::string& op, Shape kernel, Shape strides, Shape pads, std::int64_t ceil_mode,
                       std::int64_t count_include_pad) {
  OnnxBuilder b;
  b.input("x", {1, 5, 14, 13}).output("y");
  auto& n = b.node(op, {"x"}, {"y"});
  OnnxBuilder::attr_ints(n, "kernel_shape", kernel);
  OnnxBuilder::attr_ints(n, "strides", strides);
  OnnxBuilder::attr_ints(n, "pads", pads);
  OnnxBuilder::attr_int(n, "ceil_mode", ceil_mode);
  if (op == "AveragePool") OnnxBuilder::attr_int(n, "count_include_pad", count_include_pad);
  return b;
}

OnnxBuilder unary_model(const std::string& op, Shape shape = {1, 6, 7, 9}) {
  OnnxBuilder b;
  b.input("x", shape).output("y");
  b.node(op, {"x"}, {"y"});
  return b;
}

OnnxBuilder binary_model(const std::string& op, Shape a, Shape c, bool constant_b) {
  OnnxBuilder b;
  b.input("x", a).output("y");
  if (constant_b) {
    auto v = values(c, 5);
    if (op == "Div")
      for (auto& x : v) x = x >= 0 ? x + 0.5f : x - 0.5f;  // keep away from zero
    b.initializer("c", c, v);
  } else {
    b.input("c", c);
  }
  b.node(op, {"x", "c"}, {"y"});
  return b;
}

std::vector<Case> cases() {
  std::vector<Case> cs;
  auto conv = [&](std::string name, ConvSpec c) { cs.push_back({"Conv_" + name, [c] { return conv_model(c); }}); };
  conv("3x3", {});
  conv("3x3_stride2", {.strides = {2, 2}});
  conv("1x1", {.cin = 16, .cout = 24, .kh = 1, .kw = 1, .pads = {0, 0, 0, 0}});
  conv("1x1_stride2", {.cin = 16, .cout = 8, .kh = 1, .kw = 1, .strides = {2, 2}, .pads = {0, 0, 0, 0}});
  conv("5x5", {.cin = 4, .cout = 6, .kh = 5, .kw = 5, .pads = {2, 2, 2, 2}});
  conv("7x7_stride2_stem", {.cin = 3, .cout = 16, .h = 32, .w = 30, .kh = 7, .kw = 7, .strides = {2, 2}, .pads = {3, 3, 3, 3}});
  conv("1x7", {.cin = 8, .cout = 8, .kh = 1, .kw = 7, .pads = {0, 3, 0, 3}});
  conv("7x1", {.cin = 8, .cout = 8, .kh = 7, .kw = 1, .pads = {3, 0, 3, 0}});
  conv("depthwise", {.cin = 12, .cout = 12, .group = 12});
  conv("depthwise_stride2", {.cin = 12, .cout = 12, .strides = {2, 2}, .group = 12});
  conv("groups", {.cin = 8, .cout = 12, .group = 4});
  conv("dilation2", {.pads = {2, 2, 2, 2}, .dilations = {2, 2}});
  conv("asymmetric_pads", {.pads = {0, 1, 2, 0}});
  conv("no_bias", {.bias = false});
  conv("odd_channels", {.cin = 5, .cout = 17, .h = 9, .w = 10});
  conv("wide", {.cin = 64, .cout = 64, .h = 14, .w = 14});
  for (std::string act : {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish"})
    conv("then_" + act, {.activation = act});
  conv("residual_add_relu", {.cin = 8, .cout = 8, .activation = "Relu", .residual = true});
  conv("residual_add", {.cin = 8, .cout = 8, .residual = true});

  auto pool = [&](std::string name, std::string op, Shape k, Shape s, Shape p, std::int64_t ceil, std::int64_t cip) {
    cs.push_back({name, [=] { return pool_model(op, k, s, p, ceil, cip); }});
  };
  pool("MaxPool_3x3_s2_p1", "MaxPool", {3, 3}, {2, 2}, {1, 1, 1, 1}, 0, 0);
  pool("MaxPool_3x3_s2_ceil", "MaxPool", {3, 3}, {2, 2}, {0, 0, 0, 0}, 1, 0);
  pool("MaxPool_2x2_s2", "MaxPool", {2, 2}, {2, 2}, {0, 0, 0, 0}, 0, 0);
  pool("AveragePool_3x3_s1_p1_include_pad", "AveragePool", {3, 3}, {1, 1}, {1, 1, 1, 1}, 0, 1);
  pool("AveragePool_3x3_s1_p1_exclude_pad", "AveragePool", {3, 3}, {1, 1}, {1, 1, 1, 1}, 0, 0);
  pool("AveragePool_3x3_s2_ceil", "AveragePool", {3, 3}, {2, 2}, {0, 1, 1, 0}, 1, 1);
  cs.push_back({"GlobalAveragePool", [] { return unary_model("GlobalAveragePool"); }});

  for (std::string op : {"Relu", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu"})
    cs.push_back({"Unary_" + op, [op] { return unary_model(op); }});
  cs.push_back({"Clip_standalone", [] {
                  OnnxBuilder b;
                  b.input("x", {2, 3, 4, 5}).output("y");
                  b.initializer("lo", {}, {-0.25f});
                  b.initializer("hi", {}, {0.5f});
                  b.node("Clip", {"x", "lo", "hi"}, {"y"});
                  return b;
                }});
  for (std::string op : {"Add", "Mul", "Sub", "Div"}) {
    cs.push_back({op + "_same_shape", [op] { return binary_model(op, {1, 4, 5, 6}, {1, 4, 5, 6}, false); }});
    cs.push_back({op + "_channel_broadcast", [op] { return binary_model(op, {1, 4, 5, 6}, {1, 4, 1, 1}, true); }});
    cs.push_back({op + "_scalar", [op] { return binary_model(op, {2, 3, 5}, {}, true); }});
  }
  cs.push_back({"Add_both_broadcast", [] { return binary_model("Add", {2, 1, 5}, {3, 1}, false); }});

  cs.push_back({"Gemm_transB_bias", [] {
                  OnnxBuilder b;
                  b.input("x", {2, 64}).output("y");
                  b.initializer("w", {10, 64}, values({10, 64}, 7, 0.2f));
                  b.initializer("b", {10}, values({10}, 8));
                  auto& n = b.node("Gemm", {"x", "w", "b"}, {"y"});
                  OnnxBuilder::attr_int(n, "transB", 1);
                  return b;
                }});
  cs.push_back({"Gemm_alpha_beta_relu", [] {
                  OnnxBuilder b;
                  b.input("x", {3, 20}).output("y");
                  b.initializer("w", {20, 7}, values({20, 7}, 9, 0.3f));
                  b.initializer("b", {1, 7}, values({1, 7}, 10));
                  auto& n = b.node("Gemm", {"x", "w", "b"}, {"g"});
                  OnnxBuilder::attr_float(n, "alpha", 0.5f);
                  OnnxBuilder::attr_float(n, "beta", 2.0f);
                  b.node("Relu", {"g"}, {"y"});
                  return b;
                }});
  cs.push_back({"MatMul_batched", [] {
                  OnnxBuilder b;
                  b.input("x", {2, 5, 12}).output("y");
                  b.initializer("w", {12, 9}, values({12, 9}, 11, 0.3f));
                  b.node("MatMul", {"x", "w"}, {"y"});
                  return b;
                }});
  cs.push_back({"Softmax_classes", [] {
                  OnnxBuilder b;
                  b.input("x", {2, 1000}).output("y");
                  b.node("Softmax", {"x"}, {"y"});
                  return b;
                }});
  cs.push_back({"Softmax_axis1_4d", [] {
                  OnnxBuilder b;
                  b.input("x", {1, 5, 3, 4}).output("y");
                  auto& n = b.node("Softmax", {"x"}, {"y"});
                  OnnxBuilder::attr_int(n, "axis", 1);
                  return b;
                }});
  cs.push_back({"BatchNormalization_standalone", [] {
                  OnnxBuilder b;
                  b.input("x", {1, 6, 5, 7}).output("y");
                  b.initializer("s", {6}, values({6}, 12));
                  b.initializer("bias", {6}, values({6}, 13));
                  b.initializer("m", {6}, values({6}, 14));
                  auto var = values({6}, 15);
                  for (auto& v : var) v = std::fabs(v) + 0.1f;
                  b.initializer("v", {6}, var);
                  b.node("BatchNormalization", {"x", "s", "bias", "m", "v"}, {"y"});
                  return b;
                }});
  cs.push_back({"Concat_channels_of_convs", [] {
                  OnnxBuilder b;
                  b.input("x", {1, 4, 9, 9}).output("y");
                  b.initializer("w1", {3, 4, 1, 1}, values({3, 4, 1, 1}, 16));
                  b.initializer("w2", {5, 4, 3, 3}, values({5, 4, 3, 3}, 17, 0.3f));
                  b.node("Conv", {"x", "w1"}, {"a"});
                  auto& c2 = b.node("Conv", {"x", "w2"}, {"c"});
                  OnnxBuilder::attr_ints(c2, "pads", {1, 1, 1, 1});
                  auto& p = b.node("MaxPool", {"x"}, {"p"});
                  OnnxBuilder::attr_ints(p, "kernel_shape", {3, 3});
                  OnnxBuilder::attr_ints(p, "pads", {1, 1, 1, 1});
                  auto& n = b.node("Concat", {"a", "c", "p"}, {"y"});
                  OnnxBuilder::attr_int(n, "axis", 1);
                  return b;
                }});
  cs.push_back({"Flatten_then_Gemm", [] {
                  OnnxBuilder b;
                  b.input("x", {1, 8, 3, 3}).output("y");
                  b.node("Flatten", {"x"}, {"f"});
                  b.initializer("w", {72, 5}, values({72, 5}, 18, 0.2f));
                  b.node("Gemm", {"f", "w"}, {"y"});
                  return b;
                }});
  cs.push_back({"Reshape_Transpose", [] {
                  OnnxBuilder b;
                  b.input("x", {1, 6, 4, 5}).output("y");
                  b.initializer_i64("shape", {4}, {1, 2, 3, 20});
                  b.node("Reshape", {"x", "shape"}, {"r"});
                  auto& t = b.node("Transpose", {"r"}, {"y"});
                  OnnxBuilder::attr_ints(t, "perm", {0, 3, 1, 2});
                  return b;
                }});
  cs.push_back({"Pad_constant", [] {
                  OnnxBuilder b;
                  b.input("x", {1, 3, 5, 4}).output("y");
                  b.initializer_i64("pads", {8}, {0, 0, 1, 2, 0, 1, 0, 3});
                  b.initializer("v", {}, {0.25f});
                  auto& n = b.node("Pad", {"x", "pads", "v"}, {"y"});
                  (void)n;
                  return b;
                }});
  // What the CNN zoos bring (timm, segmentation heads): each a pattern as
  // exported at opset 13.
  for (std::string op : {"Exp", "Tanh", "Softplus", "Erf", "Neg", "Abs"})
    cs.push_back({"Unary_" + op, [op] { return unary_model(op); }});
  for (std::string gate : {"Sigmoid", "HardSigmoid"})  // SiLU and opset 13's HardSwish: the Conv's epilogue
    cs.push_back({"Conv_then_x_times_" + gate, [gate] {
                    OnnxBuilder b;
                    b.input("x", {1, 4, 7, 6}).output("y");
                    b.initializer("w", {6, 4, 3, 3}, values({6, 4, 3, 3}, 26, 0.4f));
                    OnnxBuilder::attr_ints(b.node("Conv", {"x", "w"}, {"c"}), "pads", {1, 1, 1, 1});
                    auto& g = b.node(gate, {"c"}, {"g"});
                    if (gate == "HardSigmoid") OnnxBuilder::attr_float(g, "alpha", 1.f / 6.f);
                    b.node("Mul", {"c", "g"}, {"y"});
                    return b;
                  }});
  for (const Shape& perm : {Shape{0, 2, 3, 1}, Shape{0, 3, 1, 2}, Shape{1, 0, 3, 2}, Shape{0, 2, 1, 3}, Shape{3, 2, 1, 0}})
    cs.push_back({"Transpose_" + std::to_string(perm[0]) + std::to_string(perm[1]) + std::to_string(perm[2]) +
                      std::to_string(perm[3]),
                  [perm] {
                    OnnxBuilder b;
                    b.input("x", {2, 5, 37, 33}).output("y");
                    OnnxBuilder::attr_ints(b.node("Transpose", {"x"}, {"y"}), "perm", perm);
                    return b;
                  }});
  for (std::string op : {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"})
    for (const Shape& axes : {Shape{1}, Shape{-1}, Shape{1, 2}})
      cs.push_back({op + "_axes" + std::to_string(axes.size()) + "_" + std::to_string(axes[0] + 1), [op, axes] {
                      OnnxBuilder b;
                      b.input("x", {2, 5, 7, 3}).output("y");
                      if (op == "ReduceSum") {  // opset 13: axes are an input
                        b.initializer_i64("axes", {static_cast<std::int64_t>(axes.size())}, axes);
                        b.node(op, {"x", "axes"}, {"y"});
                      } else {
                        OnnxBuilder::attr_ints(b.node(op, {"x"}, {"y"}), "axes", axes);
                      }
                      return b;
                    }});
  cs.push_back({"Slice_negative_steps", [] {
                  OnnxBuilder b;
                  b.input("x", {1, 6, 9, 8}).output("y");
                  b.initializer_i64("st", {3}, {-1, 7, 1});
                  b.initializer_i64("en", {3}, {-100, 0, 6});
                  b.initializer_i64("ax", {3}, {3, 2, 1});
                  b.initializer_i64("sp", {3}, {-2, -3, 2});
                  b.node("Slice", {"x", "st", "en", "ax", "sp"}, {"y"});
                  return b;
                }});
  cs.push_back({"SqueezeExcitation", [] {  // ReduceMean -> 1x1 -> Relu -> 1x1 -> Sigmoid -> Mul
                  OnnxBuilder b;
                  b.input("x", {1, 8, 6, 6}).output("y");
                  b.initializer("w1", {4, 8, 1, 1}, values({4, 8, 1, 1}, 18, 0.4f));
                  b.initializer("w2", {8, 4, 1, 1}, values({8, 4, 1, 1}, 19, 0.4f));
                  auto& r = b.node("ReduceMean", {"x"}, {"s"});
                  OnnxBuilder::attr_ints(r, "axes", {2, 3});
                  b.node("Conv", {"s", "w1"}, {"c1"});
                  b.node("Relu", {"c1"}, {"r1"});
                  b.node("Conv", {"r1", "w2"}, {"c2"});
                  b.node("Sigmoid", {"c2"}, {"g"});
                  b.node("Mul", {"x", "g"}, {"y"});
                  return b;
                }});
  // Channel gates as the host runs them (each plane scaled by its factor):
  // a batch with one gate per image, the gate as the first operand and a
  // Relu after the Mul; a constant scale shared by the batch on odd planes.
  cs.push_back({"ChannelGate_batch2_gate_first_Relu", [] {
                  OnnxBuilder b;
                  b.input("x", {2, 5, 7, 9}).input("s", {2, 5, 1, 1}).output("y");
                  b.node("Sigmoid", {"s"}, {"g"});
                  b.node("Mul", {"g", "x"}, {"m"});
                  b.node("Relu", {"m"}, {"y"});
                  return b;
                }});
  cs.push_back({"ChannelScale_constant_shared_by_the_batch", [] {
                  OnnxBuilder b;
                  b.input("x", {3, 6, 5, 3}).output("y");
                  b.initializer("k", {1, 6, 1, 1}, values({1, 6, 1, 1}, 22));
                  b.node("Mul", {"x", "k"}, {"y"});
                  return b;
                }});
  cs.push_back({"LayerNormDecomposed_Gelu", [] {  // ConvNeXt's channels-last LayerNorm, then GELU (Erf form)
                  OnnxBuilder b;
                  b.input("x", {1, 6, 5, 8}).output("y");
                  b.initializer("two", {}, {2.f});
                  b.initializer("eps", {}, {1e-6f});
                  b.initializer("gamma", {6}, values({6}, 20));
                  b.initializer("beta", {6}, values({6}, 21));
                  b.initializer("sqrt2", {}, {1.4142135f});
                  b.initializer("one", {}, {1.f});
                  b.initializer("half", {}, {0.5f});
                  OnnxBuilder::attr_ints(b.node("Transpose", {"x"}, {"t"}), "perm", {0, 2, 3, 1});
                  OnnxBuilder::attr_ints(b.node("ReduceMean", {"t"}, {"mean"}), "axes", {-1});
                  b.node("Sub", {"t", "mean"}, {"d"});
                  b.node("Pow", {"d", "two"}, {"d2"});
                  OnnxBuilder::attr_ints(b.node("ReduceMean", {"d2"}, {"var"}), "axes", {-1});
                  b.node("Add", {"var", "eps"}, {"ve"});
                  b.node("Sqrt", {"ve"}, {"sd"});
                  b.node("Div", {"d", "sd"}, {"n"});
                  b.node("Mul", {"n", "gamma"}, {"ng"});
                  b.node("Add", {"ng", "beta"}, {"ln"});
                  b.node("Div", {"ln", "sqrt2"}, {"u"});
                  b.node("Erf", {"u"}, {"e"});
                  b.node("Add", {"e", "one"}, {"e1"});
                  b.node("Mul", {"ln", "e1"}, {"m"});
                  b.node("Mul", {"m", "half"}, {"gelu"});
                  OnnxBuilder::attr_ints(b.node("Transpose", {"gelu"}, {"y"}), "perm", {0, 3, 1, 2});
                  return b;
                }});
  cs.push_back({"GhostSliceConcat", [] {  // Conv, then the first channels of it concatenated with a cheap op
                  OnnxBuilder b;
                  b.input("x", {1, 4, 7, 7}).output("y");
                  b.initializer("w", {6, 4, 1, 1}, values({6, 4, 1, 1}, 22, 0.5f));
                  b.initializer_i64("st", {1}, {0});
                  b.initializer_i64("en", {1}, {5});
                  b.initializer_i64("ax", {1}, {1});
                  b.node("Conv", {"x", "w"}, {"c"});
                  b.node("Relu", {"c"}, {"r"});
                  b.node("Sigmoid", {"r"}, {"cheap"});
                  OnnxBuilder::attr_int(b.node("Concat", {"r", "cheap"}, {"cat"}), "axis", 1);
                  b.node("Slice", {"cat", "st", "en", "ax"}, {"y"});
                  return b;
                }});
  cs.push_back({"SplitLeakyReluConcat", [] {  // CSPNet's split
                  OnnxBuilder b;
                  b.input("x", {1, 8, 5, 5}).output("y");
                  b.initializer_i64("parts", {2}, {3, 5});
                  OnnxBuilder::attr_int(b.node("Split", {"x", "parts"}, {"a", "b"}), "axis", 1);
                  OnnxBuilder::attr_float(b.node("LeakyRelu", {"b"}, {"lb"}), "alpha", 0.1f);
                  OnnxBuilder::attr_int(b.node("Concat", {"lb", "a"}, {"y"}), "axis", 1);
                  return b;
                }});
  cs.push_back({"ResizeBilinearAdd", [] {  // a feature-pyramid neck: upsample x2, add the lateral
                  OnnxBuilder b;
                  b.input("x", {1, 4, 5, 6}).input("lat", {1, 4, 10, 12}).output("y");
                  b.initializer("roi", {0}, {});
                  b.initializer("scales", {4}, {1, 1, 2, 2});
                  auto& r = b.node("Resize", {"x", "roi", "scales"}, {"up"});
                  OnnxBuilder::attr_string(r, "mode", "linear");
                  OnnxBuilder::attr_string(r, "coordinate_transformation_mode", "pytorch_half_pixel");
                  b.node("Add", {"up", "lat"}, {"y"});
                  return b;
                }});
  cs.push_back({"ResizeNearestSizes", [] {  // HRNet's upsampling
                  OnnxBuilder b;
                  b.input("x", {1, 3, 4, 5}).output("y");
                  b.initializer("roi", {0}, {});
                  b.initializer("scales", {0}, {});
                  b.initializer_i64("sizes", {4}, {1, 3, 8, 10});
                  auto& r = b.node("Resize", {"x", "roi", "scales", "sizes"}, {"y"});
                  OnnxBuilder::attr_string(r, "coordinate_transformation_mode", "asymmetric");
                  OnnxBuilder::attr_string(r, "nearest_mode", "floor");
                  return b;
                }});
  for (std::string mode : {"cubic", "linear"})
    cs.push_back({"Resize_" + mode + "_align_corners_down", [mode] {
                    OnnxBuilder b;
                    b.input("x", {1, 2, 9, 7}).output("y");
                    b.initializer("roi", {0}, {});
                    b.initializer("scales", {4}, {1, 1, 0.6f, 0.5f});
                    auto& r = b.node("Resize", {"x", "roi", "scales"}, {"y"});
                    OnnxBuilder::attr_string(r, "mode", mode);
                    OnnxBuilder::attr_string(r, "coordinate_transformation_mode", "align_corners");
                    return b;
                  }});
  cs.push_back({"ConvTransposeBetweenConvs", [] {
                  OnnxBuilder b;
                  b.input("x", {1, 3, 6, 6}).output("y");
                  b.initializer("w1", {4, 3, 3, 3}, values({4, 3, 3, 3}, 23, 0.3f));
                  b.initializer("wt", {4, 2, 2, 2}, values({4, 2, 2, 2}, 24, 0.3f));
                  b.initializer("w2", {2, 2, 1, 1}, values({2, 2, 1, 1}, 25, 0.5f));
                  OnnxBuilder::attr_ints(b.node("Conv", {"x", "w1"}, {"c"}), "pads", {1, 1, 1, 1});
                  OnnxBuilder::attr_ints(b.node("ConvTranspose", {"c", "wt"}, {"up"}), "strides", {2, 2});
                  b.node("Conv", {"up", "w2"}, {"y"});
                  return b;
                }});
  cs.push_back({"SplitReductionBetweenConvs", [] {  // no GPU kernel: the gpu strategy keeps it on the host
                  OnnxBuilder b;
                  b.input("x", {1, 3, 6, 6}).output("y");
                  b.initializer("w1", {4, 3, 3, 3}, values({4, 3, 3, 3}, 26, 0.3f));
                  b.initializer("w2", {2, 1, 1, 1}, values({2, 1, 1, 1}, 27, 0.5f));
                  OnnxBuilder::attr_ints(b.node("Conv", {"x", "w1"}, {"c"}), "pads", {1, 1, 1, 1});
                  // Axes 1 and 3 are not contiguous: the GPU's reduce kernel cannot take them.
                  OnnxBuilder::attr_ints(b.node("ReduceMax", {"c"}, {"r"}), "axes", {1, 3});
                  b.node("Conv", {"r", "w2"}, {"y"});
                  return b;
                }});
  return cs;
}

struct Param {
  std::string strategy;
  bool fp16 = false;
  std::size_t case_index = 0;
};

std::vector<Param> params() {
  std::vector<Param> ps;
  const auto all = cases();
  for (const auto& s : vkfuse::available_strategies()) {
    if (s == "reference") continue;  // the oracle itself
    for (std::size_t i = 0; i < all.size(); ++i) {
      ps.push_back({s, false, i});
      if (s == "gpu") ps.push_back({s, true, i});
    }
  }
  return ps;
}

std::vector<std::vector<float>> run(const OnnxBuilder& b, const vkfuse::LoadOptions& opts,
                                    const std::vector<std::vector<float>>& inputs) {
  auto bytes = b.byte_vector();
  auto model = vkfuse::Model::load_bytes(bytes, opts);
  std::vector<vkfuse::InputBuffer> ins;
  for (std::size_t i = 0; i < model.inputs().size(); ++i) ins.push_back({model.inputs()[i].name, inputs[i]});
  std::vector<std::vector<float>> outs;
  for (auto& o : model.outputs()) outs.emplace_back(static_cast<std::size_t>(o.element_count()));
  std::vector<vkfuse::OutputBuffer> out_bufs;
  for (std::size_t i = 0; i < outs.size(); ++i) out_bufs.push_back({model.outputs()[i].name, outs[i]});
  model.run(ins, out_bufs);
  model.run(ins, out_bufs);  // twice: replayed plans must give the same answer
  return outs;
}

class BackendOps : public ::testing::TestWithParam<Param> {};

TEST_P(BackendOps, MatchesReference) {
  const Param& p = GetParam();
  const Case c = cases()[p.case_index];
  const OnnxBuilder b = c.build();

  vkfuse::LoadOptions ref_opts;
  ref_opts.strategy = "reference";
  auto bytes = b.byte_vector();
  auto probe = vkfuse::Model::load_bytes(bytes, ref_opts);
  std::vector<std::vector<float>> inputs;
  for (std::size_t i = 0; i < probe.inputs().size(); ++i)
    inputs.push_back(values(probe.inputs()[i].shape, 100 + static_cast<std::uint32_t>(i)));

  const auto expected = run(b, ref_opts, inputs);
  vkfuse::LoadOptions opts;
  opts.strategy = p.strategy;
  opts.fp16 = p.fp16;
  const auto actual = run(b, opts, inputs);

  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t o = 0; o < expected.size(); ++o) {
    ASSERT_EQ(actual[o].size(), expected[o].size());
    double num = 0, den = 0;
    for (std::size_t i = 0; i < expected[o].size(); ++i) {
      ASSERT_TRUE(std::isfinite(actual[o][i])) << "output " << o << " element " << i;
      const double d = static_cast<double>(actual[o][i]) - expected[o][i];
      num += d * d;
      den += static_cast<double>(expected[o][i]) * expected[o][i];
    }
    const double rel = std::sqrt(num / std::max(den, 1e-30));
    EXPECT_LE(rel, p.fp16 ? 1e-2 : 1e-4) << c.name << " on " << p.strategy << (p.fp16 ? " fp16" : "");
  }
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string n = info.param.strategy + (info.param.fp16 ? "_fp16_" : "_") + cases()[info.param.case_index].name;
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(AllStrategies, BackendOps, ::testing::ValuesIn(params()), param_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BackendOps);

// The host kernels run with denormals flushed to zero (an operand below
// 1.2e-38 would cost a microcode assist per multiply), and the caller's
// floating point mode is theirs again after a run: a product of 1e-20 and
// 1e-20 is 0 on the host and 1e-40 in the reference, whose kernels keep
// IEEE arithmetic.
TEST(BackendOpsCases, HostKernelsFlushDenormalsAndLeaveTheCallersMode) {
  OnnxBuilder b;
  b.input("x", {1, 3, 4, 5}).input("s", {1, 3, 1, 1}).output("y").output("z");
  b.node("Mul", {"x", "x"}, {"y"});  // the broadcasting kernel
  b.node("Mul", {"x", "s"}, {"z"});  // the channel scale
  const std::vector<std::vector<float>> tiny = {std::vector<float>(60, 1e-20f), std::vector<float>(3, 1e-20f)};
  vkfuse::LoadOptions ref_opts;
  ref_opts.strategy = "reference";
  const auto expected = run(b, ref_opts, tiny);
  ASSERT_GT(expected[0][0], 0.f) << "the reference keeps the denormal";
  vkfuse::LoadOptions opts;
  opts.strategy = "cpu";
#if defined(__x86_64__)
  const unsigned before = _mm_getcsr();
#endif
  const auto host = run(b, opts, tiny);
#if defined(__x86_64__)
  EXPECT_EQ(_mm_getcsr(), before) << "the caller's MXCSR is restored";
  EXPECT_EQ(before & 0x8040u, 0u) << "the caller never had FTZ or DAZ";
#endif
  for (const auto& out : host)
    for (float v : out) EXPECT_EQ(v, 0.f);
}

// `plan` (a model's plan JSON) edited to put every op on one unit and saved
// as `file`: loading it is refused as an invalid argument that names `needle`.
void expect_all_on_one_unit_refused(std::span<const std::uint8_t> bytes, vkfuse::LoadOptions opts,
                                    nlohmann::json plan, const std::string& file, const std::string& needle) {
  for (auto& n : plan["nodes"]) n["unit"] = 0;
  opts.plan = ::testing::TempDir() + "/" + file;
  std::ofstream(opts.plan) << plan.dump();
  try {
    vkfuse::Model::load_bytes(bytes, opts);
    ADD_FAILURE() << "a plan with " << needle << " on the accelerator loaded";
  } catch (const vkfuse::Error& e) {
    EXPECT_EQ(e.kind(), vkfuse::ErrorKind::InvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// An op without a GPU kernel stays on the host under every strategy that
// asks for the device, and the model says so; a plan file that puts it on
// the accelerator is refused, naming the node.
TEST(BackendOpsCases, OpsWithoutGpuKernelsStayOnTheHost) {
  const auto available = vkfuse::available_strategies();
  if (std::find(available.begin(), available.end(), "gpu") == available.end()) GTEST_SKIP() << "no gpu strategy";
  Case c;
  for (const auto& k : cases())
    if (k.name == "SplitReductionBetweenConvs") c = k;
  const auto bytes = c.build().byte_vector();
  vkfuse::LoadOptions opts;
  opts.strategy = "gpu";
  auto model = vkfuse::Model::load_bytes(bytes, opts);
  bool said = false;
  for (const auto& w : model.warnings())
    said = said || (w.find("kept on the host") != std::string::npos && w.find("ReduceMax") != std::string::npos);
  EXPECT_TRUE(said) << "no warning names the ReduceMax";
  // Nor has the host a kernel for it: the model says it runs on the reference's.
  EXPECT_NE(model.backend_description().find("on the host's reference kernels: ReduceMax"), std::string::npos)
      << model.backend_description();
  vkfuse::PlanOptions po;
  po.strategy = "gpu";
  const auto report = model.plan(po);
  EXPECT_NE(report.text.find("ReduceMax"), std::string::npos);
  expect_all_on_one_unit_refused(bytes, opts, nlohmann::json::parse(report.json), "split_reduction.plan.json",
                                 "ReduceMax");
}

// An op on a tensor larger than one storage buffer of the device addresses
// (VKFUSE_DEVICE_LIMITS caps it at 1 MiB here) stays on the host, and the
// model says which tensor; the ops around it still run on the device, and
// the answer is the reference's. A plan that puts it on the accelerator is
// refused.
TEST(BackendOpsCases, OpsOnTensorsLargerThanOneStorageBufferStayOnTheHost) {
  const auto available = vkfuse::available_strategies();
  if (std::find(available.begin(), available.end(), "gpu") == available.end()) GTEST_SKIP() << "no gpu strategy";
  if (std::getenv("VKFUSE_DEVICE_LIMITS")) GTEST_SKIP() << "VKFUSE_DEVICE_LIMITS is set for the whole run";
  OnnxBuilder b;
  b.input("x", {1, 4, 64, 64});  // 64 KiB
  b.initializer("w", {80, 4, 3, 3}, values({80, 4, 3, 3}, 5, 0.3f));
  b.node("Relu", {"x"}, {"r"}, "relu");
  auto& conv = b.node("Conv", {"r", "w"}, {"big"}, "conv");  // 1.25 MiB
  OnnxBuilder::attr_ints(conv, "pads", {1, 1, 1, 1});
  b.node("GlobalAveragePool", {"big"}, {"pooled"}, "pool");
  b.node("Sigmoid", {"pooled"}, {"y"}, "sigmoid");
  b.output("y", {1, 80, 1, 1});
  const std::vector<std::vector<float>> inputs = {values({1, 4, 64, 64}, 6)};
  vkfuse::LoadOptions ref_opts;
  ref_opts.strategy = "reference";
  const auto want = run(b, ref_opts, inputs);

  struct CappedStorageRange {  // for this test only, whatever fails in it
    CappedStorageRange() { setenv("VKFUSE_DEVICE_LIMITS", "storage_range_mib=1", 1); }
    ~CappedStorageRange() { unsetenv("VKFUSE_DEVICE_LIMITS"); }
  } capped;
  vkfuse::LoadOptions opts;
  opts.strategy = "gpu";
  const auto bytes = b.byte_vector();
  auto model = vkfuse::Model::load_bytes(bytes, opts);
  bool said = false;
  for (const auto& w : model.warnings()) said = said || w.find("a tensor ('big') of 1.2 MiB") != std::string::npos;
  EXPECT_TRUE(said) << "no warning names the tensor";
  vkfuse::PlanOptions po;
  po.strategy = "gpu";
  auto json = nlohmann::json::parse(model.plan(po).json);
  ASSERT_EQ(json["nodes"].size(), 4u);
  for (const auto& n : json["nodes"]) {
    const std::string name = n["name"];
    EXPECT_EQ(n["unit"].is_null(), name == "conv" || name == "pool") << name << ": " << n.dump();
  }
  const auto got = run(b, opts, inputs);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want[0].size(); ++i) {
    num += (got[0][i] - want[0][i]) * (got[0][i] - want[0][i]);
    den += want[0][i] * want[0][i];
  }
  EXPECT_LE(std::sqrt(num / den), 1e-4);
  expect_all_on_one_unit_refused(bytes, opts, json, "large_tensor.plan.json", "'big'");
}

// The cases themselves must be valid models the reference runs.
TEST(BackendOpsCases, ReferenceRunsEveryCase) {
  for (const auto& c : cases()) {
    auto bytes = c.build().byte_vector();
    EXPECT_NO_THROW(vkfuse::Model::load_bytes(bytes)) << c.name;
  }
}

}  // namespace
