// graph/ir.h — vkfuse's graph IR: tensors, values, nodes and the graph.
//
// A Graph owns a flat list of values (edges, identified by ValueId) and nodes
// (ops, identified by position in topological order after sort()). Constant
// values carry their Tensor in `Value::constant`. The IR knows nothing of
// devices: placement is the planner's business.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "vkfuse/error.h"

namespace vkfuse::graph {

enum class DType : std::uint8_t { f32, i64 };

std::size_t dtype_size(DType t);
const char* dtype_name(DType t);

using Shape = std::vector<std::int64_t>;

std::int64_t element_count(const Shape& s);
std::string shape_string(const Shape& s);  // "1x3x224x224", "scalar" for {}

// A dense, row-major tensor that owns its bytes.
class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // zero-filled

  static Tensor from_f32(Shape shape, std::vector<float> values);
  static Tensor from_i64(Shape shape, std::vector<std::int64_t> values);
  // The bytes as they are (one copy, no zero fill first: weights are most of a
  // model file). `bytes` must hold exactly the shape's elements.
  static Tensor from_bytes(DType dtype, Shape shape, std::span<const std::byte> bytes);
  static Tensor scalar_f32(float v) { return from_f32({}, {v}); }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  std::int64_t numel() const { return element_count(shape_); }
  std::size_t byte_size() const { return bytes_.size(); }

  std::byte* bytes() { return bytes_.data(); }
  const std::byte* bytes() const { return bytes_.data(); }

  // Typed views; throw vkfuse::Error on a dtype mismatch.
  float* f32();
  const float* f32() const;
  std::int64_t* i64();
  const std::int64_t* i64() const;
  std::span<const float> f32_span() const { return {f32(), static_cast<std::size_t>(numel())}; }
  std::span<const std::int64_t> i64_span() const { return {i64(), static_cast<std::size_t>(numel())}; }

  // Element i as double / as int64, whatever the dtype (for shape arithmetic).
  double as_double(std::int64_t i) const;
  std::int64_t as_int(std::int64_t i) const;
  std::vector<std::int64_t> to_ints() const;

  // Same bytes, new shape (element counts must match).
  void reshape(Shape shape);

 private:
  DType dtype_ = DType::f32;
  Shape shape_;
  std::vector<std::byte> bytes_;
};

using ValueId = std::int32_t;
inline constexpr ValueId kNoValue = -1;

struct Value {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  bool shape_known = false;
  std::optional<Tensor> constant;  // initializers and folded constants
};

// Node attributes, as ONNX defines them (the subset CNNs use).
using AttrValue = std::variant<std::int64_t, float, std::string, std::vector<std::int64_t>,
                               std::vector<float>, Tensor>;

class Attributes {
 public:
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  void set(const std::string& name, AttrValue v) { values_[name] = std::move(v); }
  void erase(const std::string& name) { values_.erase(name); }

  std::int64_t get_int(const std::string& name, std::int64_t fallback) const;
  float get_float(const std::string& name, float fallback) const;
  std::string get_string(const std::string& name, const std::string& fallback) const;
  std::vector<std::int64_t> get_ints(const std::string& name,
                                     std::vector<std::int64_t> fallback = {}) const;
  std::vector<float> get_floats(const std::string& name, std::vector<float> fallback = {}) const;
  const Tensor* get_tensor(const std::string& name) const;

  const std::map<std::string, AttrValue>& all() const { return values_; }

 private:
  std::map<std::string, AttrValue> values_;
};

// An elementwise activation folded into its producer (Conv, Gemm, ...) by
// canonicalization, so that every backend can apply it in the producer's
// epilogue. kind None means "no activation".
struct Activation {
  // Silu (x * sigmoid(x)), Gelu (erf form) and GeluTanh (tanh form,
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))) are no ONNX ops: the
  // canonicalizer recognizes them in what exporters emit.
  enum class Kind : std::uint8_t { None, Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, Silu, Gelu, GeluTanh };
  Kind kind = Kind::None;
  float alpha = 0.f;  // LeakyRelu slope, HardSigmoid alpha, Clip min
  float beta = 0.f;   // HardSigmoid beta, Clip max

  static Activation none() { return {}; }
  float apply(float x) const;
  const char* name() const;
};

struct Node {
  std::string name;     // the ONNX node name, or a generated "<op>_<index>"
  std::string op_type;  // ONNX op type, e.g. "Conv"
  std::vector<ValueId> inputs;   // kNoValue for an omitted optional input
  std::vector<ValueId> outputs;  // kNoValue for an omitted optional output
  Attributes attrs;
  Activation activation;  // fused epilogue, see Activation

  // Of a two-input node (Add, Mul) one of whose inputs is v: the other one.
  ValueId other_input(ValueId v) const { return inputs[0] == v ? inputs[1] : inputs[0]; }
};

class Graph {
 public:
  std::string name;
  std::int64_t opset = 13;  // default-domain opset the model was exported with

  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<ValueId> inputs;   // runtime inputs (initializers excluded)
  std::vector<ValueId> outputs;

  ValueId add_value(std::string name, DType dtype = DType::f32, Shape shape = {},
                    bool shape_known = false);
  ValueId add_constant(std::string name, Tensor t);
  Value& value(ValueId id);
  const Value& value(ValueId id) const;
  bool is_constant(ValueId id) const { return id != kNoValue && value(id).constant.has_value(); }
  // The constant tensor of an input, or nullptr if the input is absent or not constant.
  const Tensor* constant_input(const Node& n, std::size_t i) const;

  // Nodes in a topological order; throws vkfuse::Error naming a node on a cycle
  // or on an input that nothing produces.
  void sort();
  // Index of the node producing each value (-1 for graph inputs/constants).
  std::vector<std::int32_t> producers() const;
  // Number of node inputs plus graph outputs reading each value.
  std::vector<std::int32_t> use_counts() const;
  // Drops nodes whose outputs nobody reads and values nobody references.
  void remove_dead();

  std::int64_t parameter_count() const;  // elements of float constants read by nodes
};

}  // namespace vkfuse::graph
