// The built-in model zoo: torchvision's ResNet-18, ResNet-50, Inception v3 and
// MobileNet v2 topologies
// built directly in the IR with deterministic synthetic weights (He-uniform
// convolutions, BatchNorm statistics near identity), so that `vkfuse run`
// works with no file and benchmarks have fixed models.
#include <cmath>
#include <cstdint>

#include "graph/passes.h"

namespace vkfuse::graph {

namespace {

// splitmix64: tiny, deterministic across platforms.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  double uniform() {  // [0, 1)
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }
  float uniform(float lo, float hi) { return static_cast<float>(lo + (hi - lo) * uniform()); }

 private:
  std::uint64_t state_;
};

struct Conv2dSpec {
  std::int64_t out, kh, kw, sh = 1, sw = 1, ph = 0, pw = 0, group = 1;
};

class ZooBuilder {
 public:
  ZooBuilder(std::string name, Shape input_shape) : rng_(0x5EEDull) {
    g_.name = std::move(name);
    g_.opset = 13;
    ValueId in = g_.add_value("input", DType::f32, input_shape, true);
    g_.inputs.push_back(in);
    channels_[in] = input_shape[1];
  }

  ValueId input() const { return g_.inputs[0]; }

  // Conv (no bias) → BatchNormalization → Relu, as torchvision writes it.
  ValueId conv_bn_relu(ValueId x, Conv2dSpec s, float bn_eps, bool relu = true) {
    ValueId y = conv(x, s, /*bias=*/false);
    y = batchnorm(y, bn_eps);
    return relu ? unary("Relu", y) : y;
  }

  // Conv → BatchNormalization → Clip(0, 6), MobileNet's ReLU6.
  ValueId conv_bn_relu6(ValueId x, Conv2dSpec s, float bn_eps) {
    ValueId y = batchnorm(conv(x, s, /*bias=*/false), bn_eps);
    Tensor lo(DType::f32, {}), hi(DType::f32, {});
    lo.f32()[0] = 0.f;
    hi.f32()[0] = 6.f;
    const ValueId lo_v = g_.add_constant("relu6_min" + std::to_string(g_.values.size()), std::move(lo));
    const ValueId hi_v = g_.add_constant("relu6_max" + std::to_string(g_.values.size()), std::move(hi));
    return emit(node("Clip", {y, lo_v, hi_v}), channels_.at(y));
  }

  ValueId conv(ValueId x, Conv2dSpec s, bool bias) {
    const std::int64_t cin = channels_.at(x) / s.group;
    const std::int64_t fan_in = cin * s.kh * s.kw;
    const float bound = static_cast<float>(std::sqrt(6.0 / static_cast<double>(fan_in)));
    ValueId w = weight({s.out, cin, s.kh, s.kw}, -bound, bound);
    Node n = node("Conv", {x, w});
    if (bias) n.inputs.push_back(weight({s.out}, -0.1f, 0.1f));
    n.attrs.set("kernel_shape", std::vector<std::int64_t>{s.kh, s.kw});
    n.attrs.set("strides", std::vector<std::int64_t>{s.sh, s.sw});
    n.attrs.set("pads", std::vector<std::int64_t>{s.ph, s.pw, s.ph, s.pw});
    if (s.group != 1) n.attrs.set("group", s.group);
    return emit(std::move(n), s.out);
  }

  ValueId batchnorm(ValueId x, float eps) {
    const std::int64_t c = channels_.at(x);
    Node n = node("BatchNormalization",
                  {x, weight({c}, 0.8f, 1.2f), weight({c}, -0.1f, 0.1f), weight({c}, -0.1f, 0.1f),
                   weight({c}, 0.8f, 1.2f)});
    n.attrs.set("epsilon", eps);
    return emit(std::move(n), c);
  }

  ValueId unary(const std::string& op, ValueId x) { return emit(node(op, {x}), channels_.at(x)); }

  ValueId add(ValueId a, ValueId b) { return emit(node("Add", {a, b}), channels_.at(a)); }

  ValueId pool(const std::string& op, ValueId x, std::int64_t k, std::int64_t stride, std::int64_t pad) {
    Node n = node(op, {x});
    n.attrs.set("kernel_shape", std::vector<std::int64_t>{k, k});
    n.attrs.set("strides", std::vector<std::int64_t>{stride, stride});
    n.attrs.set("pads", std::vector<std::int64_t>{pad, pad, pad, pad});
    if (op == "AveragePool") n.attrs.set("count_include_pad", std::int64_t{1});  // PyTorch's default
    return emit(std::move(n), channels_.at(x));
  }

  ValueId concat(const std::vector<ValueId>& parts) {
    std::int64_t c = 0;
    for (auto p : parts) c += channels_.at(p);
    Node n = node("Concat", parts);
    n.attrs.set("axis", std::int64_t{1});
    return emit(std::move(n), c);
  }

  // GlobalAveragePool → Flatten → Gemm, torchvision's classifier head.
  ValueId classifier(ValueId x, std::int64_t classes) {
    const std::int64_t c = channels_.at(x);
    ValueId y = emit(node("GlobalAveragePool", {x}), c);
    Node flat = node("Flatten", {y});
    flat.attrs.set("axis", std::int64_t{1});
    y = emit(std::move(flat), c);
    const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c)));
    Node fc = node("Gemm", {y, weight({classes, c}, -bound, bound), weight({classes}, -bound, bound)});
    fc.attrs.set("transB", std::int64_t{1});
    return emit(std::move(fc), classes);
  }

  Graph finish(ValueId out) {
    g_.value(out).name = "output";
    g_.outputs.push_back(out);
    return std::move(g_);
  }

 private:
  Node node(const std::string& op, std::vector<ValueId> inputs) {
    Node n;
    n.op_type = op;
    n.name = op + "_" + std::to_string(g_.nodes.size());
    n.inputs = std::move(inputs);
    return n;
  }

  ValueId emit(Node n, std::int64_t channels) {
    ValueId y = g_.add_value(n.name + ".out");
    n.outputs = {y};
    g_.nodes.push_back(std::move(n));
    channels_[y] = channels;
    return y;
  }

  ValueId weight(Shape shape, float lo, float hi) {
    Tensor t(DType::f32, shape);
    for (std::int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = rng_.uniform(lo, hi);
    std::string name = "w";
    name += std::to_string(g_.values.size());
    return g_.add_constant(std::move(name), std::move(t));
  }

  Graph g_;
  Random rng_;
  std::map<ValueId, std::int64_t> channels_;
};

// torchvision's ResNets: basic blocks (ResNet-18) or bottlenecks (ResNet-50,
// v1.5: the stride on the 3x3 convolution).
Graph resnet(const char* name, std::int64_t batch, const int (&blocks)[4], bool bottleneck) {
  ZooBuilder b(name, {batch, 3, 224, 224});
  constexpr float eps = 1e-5f;
  ValueId x = b.conv_bn_relu(b.input(), {64, 7, 7, 2, 2, 3, 3}, eps);
  x = b.pool("MaxPool", x, 3, 2, 1);
  std::int64_t in_ch = 64;
  for (std::int64_t stage = 0; stage < 4; ++stage) {
    const std::int64_t width = 64 << stage, out = bottleneck ? width * 4 : width;
    for (int block = 0; block < blocks[stage]; ++block) {
      const std::int64_t stride = (stage > 0 && block == 0) ? 2 : 1;
      ValueId y = x;
      if (bottleneck) {
        y = b.conv_bn_relu(y, {width, 1, 1}, eps);
        y = b.conv_bn_relu(y, {width, 3, 3, stride, stride, 1, 1}, eps);
        y = b.conv_bn_relu(y, {out, 1, 1}, eps, /*relu=*/false);
      } else {
        y = b.conv_bn_relu(y, {width, 3, 3, stride, stride, 1, 1}, eps);
        y = b.conv_bn_relu(y, {width, 3, 3, 1, 1, 1, 1}, eps, /*relu=*/false);
      }
      ValueId shortcut = x;
      if (stride != 1 || in_ch != out) shortcut = b.conv_bn_relu(x, {out, 1, 1, stride, stride, 0, 0}, eps, false);
      x = b.unary("Relu", b.add(y, shortcut));
      in_ch = out;
    }
  }
  return b.finish(b.classifier(x, 1000));
}

// torchvision.models.mobilenet_v2 (width 1.0; Dropout, an identity in eval
// mode, left out).
Graph mobilenet_v2(std::int64_t batch) {
  ZooBuilder b("mobilenet_v2", {batch, 3, 224, 224});
  constexpr float eps = 1e-5f;
  ValueId x = b.conv_bn_relu6(b.input(), {32, 3, 3, 2, 2, 1, 1}, eps);
  std::int64_t in_ch = 32;
  struct Stage {
    std::int64_t expand, out, repeats, stride;
  };
  for (const Stage& st : {Stage{1, 16, 1, 1}, Stage{6, 24, 2, 2}, Stage{6, 32, 3, 2}, Stage{6, 64, 4, 2},
                          Stage{6, 96, 3, 1}, Stage{6, 160, 3, 2}, Stage{6, 320, 1, 1}}) {
    for (std::int64_t i = 0; i < st.repeats; ++i) {
      const std::int64_t stride = i == 0 ? st.stride : 1, hidden = in_ch * st.expand;
      ValueId y = st.expand == 1 ? x : b.conv_bn_relu6(x, {hidden, 1, 1}, eps);
      y = b.conv_bn_relu6(y, {hidden, 3, 3, stride, stride, 1, 1, hidden}, eps);
      y = b.conv_bn_relu(y, {st.out, 1, 1}, eps, /*relu=*/false);
      x = stride == 1 && in_ch == st.out ? b.add(x, y) : y;
      in_ch = st.out;
    }
  }
  x = b.conv_bn_relu6(x, {1280, 1, 1}, eps);
  return b.finish(b.classifier(x, 1000));
}

// torchvision.models.inception_v3 (eval mode, no aux head, no input transform).
class InceptionV3 {
 public:
  explicit InceptionV3(std::int64_t batch) : b_("inception_v3", {batch, 3, 299, 299}) {}

  Graph build() {
    ValueId x = c(b_.input(), 32, 3, 3, 2, 2);
    x = c(x, 32, 3, 3);
    x = c(x, 64, 3, 3, 1, 1, 1, 1);
    x = b_.pool("MaxPool", x, 3, 2, 0);
    x = c(x, 80, 1, 1);
    x = c(x, 192, 3, 3);
    x = b_.pool("MaxPool", x, 3, 2, 0);
    x = block_a(x, 32);
    x = block_a(x, 64);
    x = block_a(x, 64);
    x = block_b(x);
    x = block_c(x, 128);
    x = block_c(x, 160);
    x = block_c(x, 160);
    x = block_c(x, 192);
    x = block_d(x);
    x = block_e(x);
    x = block_e(x);
    return b_.finish(b_.classifier(x, 1000));
  }

 private:
  ValueId c(ValueId x, std::int64_t out, std::int64_t kh, std::int64_t kw, std::int64_t sh = 1, std::int64_t sw = 1,
            std::int64_t ph = 0, std::int64_t pw = 0) {
    return b_.conv_bn_relu(x, {out, kh, kw, sh, sw, ph, pw}, 1e-3f);
  }
  ValueId avg_branch(ValueId x, std::int64_t out) { return c(b_.pool("AveragePool", x, 3, 1, 1), out, 1, 1); }

  ValueId block_a(ValueId x, std::int64_t pool_features) {
    ValueId b1 = c(x, 64, 1, 1);
    ValueId b5 = c(c(x, 48, 1, 1), 64, 5, 5, 1, 1, 2, 2);
    ValueId b3 = c(c(c(x, 64, 1, 1), 96, 3, 3, 1, 1, 1, 1), 96, 3, 3, 1, 1, 1, 1);
    return b_.concat({b1, b5, b3, avg_branch(x, pool_features)});
  }
  ValueId block_b(ValueId x) {
    ValueId b3 = c(x, 384, 3, 3, 2, 2);
    ValueId dbl = c(c(c(x, 64, 1, 1), 96, 3, 3, 1, 1, 1, 1), 96, 3, 3, 2, 2);
    return b_.concat({b3, dbl, b_.pool("MaxPool", x, 3, 2, 0)});
  }
  ValueId block_c(ValueId x, std::int64_t c7) {
    ValueId b1 = c(x, 192, 1, 1);
    ValueId b7 = c(c(c(x, c7, 1, 1), c7, 1, 7, 1, 1, 0, 3), 192, 7, 1, 1, 1, 3, 0);
    ValueId d = c(x, c7, 1, 1);
    d = c(d, c7, 7, 1, 1, 1, 3, 0);
    d = c(d, c7, 1, 7, 1, 1, 0, 3);
    d = c(d, c7, 7, 1, 1, 1, 3, 0);
    d = c(d, 192, 1, 7, 1, 1, 0, 3);
    return b_.concat({b1, b7, d, avg_branch(x, 192)});
  }
  ValueId block_d(ValueId x) {
    ValueId b3 = c(c(x, 192, 1, 1), 320, 3, 3, 2, 2);
    ValueId b7 = c(c(c(c(x, 192, 1, 1), 192, 1, 7, 1, 1, 0, 3), 192, 7, 1, 1, 1, 3, 0), 192, 3, 3, 2, 2);
    return b_.concat({b3, b7, b_.pool("MaxPool", x, 3, 2, 0)});
  }
  ValueId block_e(ValueId x) {
    ValueId b1 = c(x, 320, 1, 1);
    ValueId b3 = c(x, 384, 1, 1);
    b3 = b_.concat({c(b3, 384, 1, 3, 1, 1, 0, 1), c(b3, 384, 3, 1, 1, 1, 1, 0)});
    ValueId d = c(c(x, 448, 1, 1), 384, 3, 3, 1, 1, 1, 1);
    d = b_.concat({c(d, 384, 1, 3, 1, 1, 0, 1), c(d, 384, 3, 1, 1, 1, 1, 0)});
    return b_.concat({b1, b3, d, avg_branch(x, 192)});
  }

  ZooBuilder b_;
};

}  // namespace

std::vector<std::string> zoo_names() { return {"resnet18", "inception_v3", "resnet50", "mobilenet_v2"}; }

Graph build_zoo_model(const std::string& name, std::int64_t batch) {
  if (batch < 1) throw Error(ErrorKind::InvalidArgument, "batch size must be at least 1");
  if (name == "resnet18") return resnet("resnet18", batch, {2, 2, 2, 2}, false);
  if (name == "inception_v3") return InceptionV3(batch).build();
  if (name == "resnet50") return resnet("resnet50", batch, {3, 4, 6, 3}, true);
  if (name == "mobilenet_v2") return mobilenet_v2(batch);
  std::string known;
  for (auto& n : zoo_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(ErrorKind::InvalidArgument, "no built-in model named '" + name + "' (built-in: " + known +
                                              "); to run a file, give its path ending in .onnx");
}

}  // namespace vkfuse::graph
