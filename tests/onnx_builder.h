// tests/onnx_builder.h — builds small ONNX ModelProtos in tests, so that
// importer and CLI tests need no files from outside.
#pragma once

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace vkfuse::testing {

class OnnxBuilder {
 public:
  explicit OnnxBuilder(std::int64_t opset = 13) {
    model_.set_ir_version(8);
    model_.set_producer_name("vkfuse-tests");
    auto* imp = model_.add_opset_import();
    imp->set_domain("");
    imp->set_version(opset);
    model_.mutable_graph()->set_name("test");
  }

  OnnxBuilder& input(const std::string& name, const std::vector<std::int64_t>& shape,
                     int elem_type = onnx::TensorProto::FLOAT) {
    add_value_info(model_.mutable_graph()->add_input(), name, shape, elem_type);
    return *this;
  }
  // A symbolic dimension is written as -1.
  OnnxBuilder& output(const std::string& name, const std::vector<std::int64_t>& shape = {},
                      int elem_type = onnx::TensorProto::FLOAT) {
    add_value_info(model_.mutable_graph()->add_output(), name, shape, elem_type);
    return *this;
  }
  OnnxBuilder& initializer(const std::string& name, const std::vector<std::int64_t>& shape,
                           const std::vector<float>& values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : shape) t->add_dims(d);
    for (auto v : values) t->add_float_data(v);
    return *this;
  }
  OnnxBuilder& initializer_i64(const std::string& name, const std::vector<std::int64_t>& shape,
                               const std::vector<std::int64_t>& values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (auto d : shape) t->add_dims(d);
    for (auto v : values) t->add_int64_data(v);
    return *this;
  }
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(model_.graph().node_size()) : name);
    for (auto& i : inputs) n->add_input(i);
    for (auto& o : outputs) n->add_output(o);
    return *n;
  }
  static void attr_int(onnx::NodeProto& n, const std::string& name, std::int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr_float(onnx::NodeProto& n, const std::string& name, float v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void attr_string(onnx::NodeProto& n, const std::string& name, const std::string& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  static void attr_ints(onnx::NodeProto& n, const std::string& name, const std::vector<std::int64_t>& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
  }

  std::string bytes() const { return model_.SerializeAsString(); }
  std::vector<std::uint8_t> byte_vector() const {
    auto s = bytes();
    return {s.begin(), s.end()};
  }
  void save(const std::string& path) const {
    std::ofstream f(path, std::ios::binary);
    f << bytes();
  }
  onnx::ModelProto& proto() { return model_; }

 private:
  static void add_value_info(onnx::ValueInfoProto* vi, const std::string& name, const std::vector<std::int64_t>& shape,
                             int elem_type) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    auto* s = tt->mutable_shape();
    for (auto d : shape) {
      auto* dim = s->add_dim();
      if (d < 0) dim->set_dim_param("N");
      else dim->set_dim_value(d);
    }
  }
  onnx::ModelProto model_;
};

// A Conv(3x3, pad 1) → BatchNormalization → Relu → GlobalAveragePool model,
// input [1, 2, 5, 5], output [1, 3, 1, 1]; weights are small fixed ramps.
inline OnnxBuilder conv_bn_relu_model() {
  OnnxBuilder b;
  b.input("x", {1, 2, 5, 5}).output("y");
  std::vector<float> w(3 * 2 * 3 * 3);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.05f * static_cast<float>(static_cast<int>(i % 7) - 3);
  b.initializer("w", {3, 2, 3, 3}, w);
  b.initializer("b", {3}, {0.1f, -0.2f, 0.3f});
  b.initializer("scale", {3}, {1.5f, 0.5f, 2.0f});
  b.initializer("bias", {3}, {0.0f, 0.1f, -0.1f});
  b.initializer("mean", {3}, {0.05f, -0.05f, 0.0f});
  b.initializer("var", {3}, {1.0f, 0.5f, 2.0f});
  auto& conv = b.node("Conv", {"x", "w", "b"}, {"c"}, "conv");
  OnnxBuilder::attr_ints(conv, "pads", {1, 1, 1, 1});
  OnnxBuilder::attr_ints(conv, "kernel_shape", {3, 3});
  b.node("BatchNormalization", {"c", "scale", "bias", "mean", "var"}, {"bn"}, "bn");
  b.node("Relu", {"bn"}, {"r"}, "relu");
  b.node("GlobalAveragePool", {"r"}, {"y"}, "gap");
  return b;
}

// Two 3x3 convolutions with ReLU on size x size (64: about 0.1 GFLOP) and a
// global average pool: heavy enough that a what-if accelerator gets it.
inline OnnxBuilder two_conv_model(std::int64_t size = 64) {
  OnnxBuilder b;
  b.input("x", {1, 16, size, size}).output("y");
  auto weights = [](std::size_t n, float scale) {
    std::vector<float> w(n);
    for (std::size_t i = 0; i < n; ++i) w[i] = scale * std::cos(0.61f * static_cast<float>(i));
    return w;
  };
  b.initializer("w1", {32, 16, 3, 3}, weights(32 * 16 * 9, 0.08f));
  b.initializer("w2", {32, 32, 3, 3}, weights(32 * 32 * 9, 0.06f));
  for (const std::string c : {"1", "2"}) {
    auto& conv = b.node("Conv", {c == "1" ? "x" : "r1", "w" + c}, {"c" + c}, "conv" + c);
    OnnxBuilder::attr_ints(conv, "pads", {1, 1, 1, 1});
    OnnxBuilder::attr_ints(conv, "kernel_shape", {3, 3});
    b.node("Relu", {"c" + c}, {"r" + c}, "relu" + c);
  }
  b.node("GlobalAveragePool", {"r2"}, {"y"}, "gap");
  return b;
}

}  // namespace vkfuse::testing
