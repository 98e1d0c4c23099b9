#include "graph/ir.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numbers>
#include <sstream>

namespace vkfuse {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidModel: return "invalid model";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::InvalidInput: return "invalid input";
    case ErrorKind::InvalidArgument: return "invalid argument";
    case ErrorKind::Device: return "device error";
    case ErrorKind::Io: return "I/O error";
    case ErrorKind::Internal: return "internal error";
    case ErrorKind::DeviceLost: return "device lost";
    case ErrorKind::OutOfDeviceMemory: return "out of device memory";
    case ErrorKind::DeviceTimeout: return "device timeout";
  }
  return "error";
}

}  // namespace vkfuse

namespace vkfuse::graph {

std::size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 8; }
const char* dtype_name(DType t) { return t == DType::f32 ? "float32" : "int64"; }

std::int64_t element_count(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s)
    if (__builtin_mul_overflow(n, d, &n))  // a malformed model's shape, never a real tensor
      throw Error(ErrorKind::InvalidModel, "a tensor of shape " + shape_string(s) + " has more elements than 64 bits count");
  return n;
}

std::string shape_string(const Shape& s) {
  if (s.empty()) return "scalar";
  std::ostringstream os;
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? "x" : "") << s[i];
  return os.str();
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  for (auto d : shape_)
    if (d < 0) throw Error(ErrorKind::InvalidModel, "negative tensor dimension in " + shape_string(shape_));
  bytes_.assign(static_cast<std::size_t>(element_count(shape_)) * dtype_size(dtype_), std::byte{0});
}

Tensor Tensor::from_f32(Shape shape, std::vector<float> values) {
  Tensor t(DType::f32, std::move(shape));
  if (static_cast<std::int64_t>(values.size()) != t.numel())
    throw Error(ErrorKind::Internal, "Tensor::from_f32: value count does not match the shape");
  if (t.byte_size()) std::memcpy(t.bytes(), values.data(), t.byte_size());
  return t;
}

Tensor Tensor::from_i64(Shape shape, std::vector<std::int64_t> values) {
  Tensor t(DType::i64, std::move(shape));
  if (static_cast<std::int64_t>(values.size()) != t.numel())
    throw Error(ErrorKind::Internal, "Tensor::from_i64: value count does not match the shape");
  if (t.byte_size()) std::memcpy(t.bytes(), values.data(), t.byte_size());
  return t;
}

Tensor Tensor::from_bytes(DType dtype, Shape shape, std::span<const std::byte> bytes) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  for (auto d : t.shape_)
    if (d < 0) throw Error(ErrorKind::InvalidModel, "negative tensor dimension in " + shape_string(t.shape_));
  if (bytes.size() != static_cast<std::size_t>(element_count(t.shape_)) * dtype_size(dtype))
    throw Error(ErrorKind::Internal, "Tensor::from_bytes: byte count does not match the shape");
  t.bytes_.assign(bytes.begin(), bytes.end());
  return t;
}

float* Tensor::f32() {
  if (dtype_ != DType::f32) throw Error(ErrorKind::Internal, "tensor is not float32");
  return reinterpret_cast<float*>(bytes_.data());
}
const float* Tensor::f32() const { return const_cast<Tensor*>(this)->f32(); }
std::int64_t* Tensor::i64() {
  if (dtype_ != DType::i64) throw Error(ErrorKind::Internal, "tensor is not int64");
  return reinterpret_cast<std::int64_t*>(bytes_.data());
}
const std::int64_t* Tensor::i64() const { return const_cast<Tensor*>(this)->i64(); }

double Tensor::as_double(std::int64_t i) const {
  return dtype_ == DType::f32 ? static_cast<double>(f32()[i]) : static_cast<double>(i64()[i]);
}
std::int64_t Tensor::as_int(std::int64_t i) const {
  return dtype_ == DType::f32 ? static_cast<std::int64_t>(f32()[i]) : i64()[i];
}
std::vector<std::int64_t> Tensor::to_ints() const {
  std::vector<std::int64_t> v(static_cast<std::size_t>(numel()));
  for (std::int64_t i = 0; i < numel(); ++i) v[static_cast<std::size_t>(i)] = as_int(i);
  return v;
}

void Tensor::reshape(Shape shape) {
  if (element_count(shape) != numel())
    throw Error(ErrorKind::Internal, "Tensor::reshape from " + shape_string(shape_) + " to " + shape_string(shape));
  shape_ = std::move(shape);
}

namespace {
template <class T>
const T* find_attr(const std::map<std::string, AttrValue>& m, const std::string& name) {
  auto it = m.find(name);
  if (it == m.end()) return nullptr;
  if (auto* p = std::get_if<T>(&it->second)) return p;
  throw Error(ErrorKind::InvalidModel, "attribute '" + name + "' has an unexpected type");
}
}  // namespace

std::int64_t Attributes::get_int(const std::string& name, std::int64_t fallback) const {
  auto* p = find_attr<std::int64_t>(values_, name);
  return p ? *p : fallback;
}
float Attributes::get_float(const std::string& name, float fallback) const {
  auto it = values_.find(name);
  if (it != values_.end())
    if (auto* i = std::get_if<std::int64_t>(&it->second)) return static_cast<float>(*i);
  auto* p = find_attr<float>(values_, name);
  return p ? *p : fallback;
}
std::string Attributes::get_string(const std::string& name, const std::string& fallback) const {
  auto* p = find_attr<std::string>(values_, name);
  return p ? *p : fallback;
}
std::vector<std::int64_t> Attributes::get_ints(const std::string& name,
                                               std::vector<std::int64_t> fallback) const {
  auto* p = find_attr<std::vector<std::int64_t>>(values_, name);
  return p ? *p : fallback;
}
std::vector<float> Attributes::get_floats(const std::string& name, std::vector<float> fallback) const {
  auto* p = find_attr<std::vector<float>>(values_, name);
  return p ? *p : fallback;
}
const Tensor* Attributes::get_tensor(const std::string& name) const { return find_attr<Tensor>(values_, name); }

float Activation::apply(float x) const {
  switch (kind) {
    case Kind::None: return x;
    case Kind::Relu: return x > 0.f ? x : 0.f;
    case Kind::LeakyRelu: return x >= 0.f ? x : alpha * x;
    case Kind::Clip: return std::min(std::max(x, alpha), beta);
    case Kind::Sigmoid: return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x))));
    case Kind::HardSigmoid: return std::max(0.f, std::min(1.f, alpha * x + beta));
    case Kind::HardSwish: return x * std::max(0.f, std::min(1.f, x / 6.f + 0.5f));
    case Kind::Silu: return static_cast<float>(static_cast<double>(x) / (1.0 + std::exp(-static_cast<double>(x))));
    case Kind::Gelu: {
      const double v = x;
      return static_cast<float>(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
    }
    case Kind::GeluTanh: {
      const double v = x;
      return static_cast<float>(0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (v + 0.044715 * v * v * v))));
    }
  }
  return x;
}

const char* Activation::name() const {
  switch (kind) {
    case Kind::None: return "none";
    case Kind::Relu: return "Relu";
    case Kind::LeakyRelu: return "LeakyRelu";
    case Kind::Clip: return "Clip";
    case Kind::Sigmoid: return "Sigmoid";
    case Kind::HardSigmoid: return "HardSigmoid";
    case Kind::HardSwish: return "HardSwish";
    case Kind::Silu: return "Silu";
    case Kind::Gelu: return "Gelu";
    case Kind::GeluTanh: return "GeluTanh";
  }
  return "?";
}

ValueId Graph::add_value(std::string name, DType dtype, Shape shape, bool shape_known) {
  Value v;
  v.name = std::move(name);
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.shape_known = shape_known;
  values.push_back(std::move(v));
  return static_cast<ValueId>(values.size() - 1);
}

ValueId Graph::add_constant(std::string name, Tensor t) {
  ValueId id = add_value(std::move(name), t.dtype(), t.shape(), true);
  values[static_cast<std::size_t>(id)].constant = std::move(t);
  return id;
}

Value& Graph::value(ValueId id) {
  if (id < 0 || static_cast<std::size_t>(id) >= values.size())
    throw Error(ErrorKind::Internal, "value id out of range");
  return values[static_cast<std::size_t>(id)];
}
const Value& Graph::value(ValueId id) const { return const_cast<Graph*>(this)->value(id); }

const Tensor* Graph::constant_input(const Node& n, std::size_t i) const {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return nullptr;
  const auto& v = value(n.inputs[i]);
  return v.constant ? &*v.constant : nullptr;
}

std::vector<std::int32_t> Graph::producers() const {
  std::vector<std::int32_t> p(values.size(), -1);
  for (std::size_t i = 0; i < nodes.size(); ++i)
    for (auto o : nodes[i].outputs)
      if (o != kNoValue) p[static_cast<std::size_t>(o)] = static_cast<std::int32_t>(i);
  return p;
}

std::vector<std::int32_t> Graph::use_counts() const {
  std::vector<std::int32_t> c(values.size(), 0);
  for (const auto& n : nodes)
    for (auto in : n.inputs)
      if (in != kNoValue) ++c[static_cast<std::size_t>(in)];
  for (auto o : outputs) ++c[static_cast<std::size_t>(o)];
  return c;
}

void Graph::sort() {
  auto prod = producers();
  std::vector<bool> available(values.size(), false);
  for (auto in : inputs) available[static_cast<std::size_t>(in)] = true;
  for (std::size_t i = 0; i < values.size(); ++i)
    if (values[i].constant) available[i] = true;
  for (std::size_t i = 0; i < values.size(); ++i)
    if (prod[i] < 0 && !available[i]) {
      // Only an error if somebody reads it.
      for (const auto& n : nodes)
        for (auto in : n.inputs)
          if (in == static_cast<ValueId>(i))
            throw Error(ErrorKind::InvalidModel,
                        "node '" + n.name + "' (" + n.op_type + ") reads '" + values[i].name +
                            "', which is neither a graph input, an initializer nor any node's output");
      for (auto o : outputs)
        if (o == static_cast<ValueId>(i))
          throw Error(ErrorKind::InvalidModel,
                      "graph output '" + values[i].name + "' is not produced by any node");
    }

  // Kahn's algorithm, keeping the original order among ready nodes.
  const std::size_t n = nodes.size();
  std::vector<int> missing(n, 0);
  std::vector<std::vector<std::size_t>> readers(values.size());
  for (std::size_t i = 0; i < n; ++i)
    for (auto in : nodes[i].inputs)
      if (in != kNoValue && !available[static_cast<std::size_t>(in)]) {
        ++missing[i];
        readers[static_cast<std::size_t>(in)].push_back(i);
      }
  std::vector<std::size_t> order;
  std::vector<bool> done(n, false);
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < n; ++i)
    if (missing[i] == 0) ready.push_back(i);
  std::make_heap(ready.begin(), ready.end(), std::greater<>());
  while (!ready.empty()) {
    std::pop_heap(ready.begin(), ready.end(), std::greater<>());
    std::size_t i = ready.back();
    ready.pop_back();
    order.push_back(i);
    done[i] = true;
    for (auto o : nodes[i].outputs) {
      if (o == kNoValue) continue;
      for (auto r : readers[static_cast<std::size_t>(o)])
        if (--missing[r] == 0) {
          ready.push_back(r);
          std::push_heap(ready.begin(), ready.end(), std::greater<>());
        }
    }
  }
  if (order.size() != n) {
    for (std::size_t i = 0; i < n; ++i)
      if (!done[i])
        throw Error(ErrorKind::InvalidModel,
                    "the graph has a cycle through node '" + nodes[i].name + "' (" + nodes[i].op_type + ")");
  }
  std::vector<Node> sorted;
  sorted.reserve(n);
  for (auto i : order) sorted.push_back(std::move(nodes[i]));
  nodes = std::move(sorted);
}

void Graph::remove_dead() {
  // Nodes: keep those that (transitively) feed a graph output.
  bool changed = true;
  while (changed) {
    changed = false;
    auto uses = use_counts();
    std::vector<Node> kept;
    for (auto& n : nodes) {
      bool live = false;
      for (auto o : n.outputs)
        if (o != kNoValue && uses[static_cast<std::size_t>(o)] > 0) live = true;
      if (live) kept.push_back(std::move(n));
      else changed = true;
    }
    nodes = std::move(kept);
  }
  // Values: compact, remapping ids.
  std::vector<bool> referenced(values.size(), false);
  for (auto i : inputs) referenced[static_cast<std::size_t>(i)] = true;
  for (auto o : outputs) referenced[static_cast<std::size_t>(o)] = true;
  for (const auto& n : nodes) {
    for (auto i : n.inputs)
      if (i != kNoValue) referenced[static_cast<std::size_t>(i)] = true;
    for (auto o : n.outputs)
      if (o != kNoValue) referenced[static_cast<std::size_t>(o)] = true;
  }
  std::vector<ValueId> remap(values.size(), kNoValue);
  std::vector<Value> kept;
  for (std::size_t i = 0; i < values.size(); ++i)
    if (referenced[i]) {
      remap[i] = static_cast<ValueId>(kept.size());
      kept.push_back(std::move(values[i]));
    }
  values = std::move(kept);
  auto fix = [&](ValueId& id) {
    if (id != kNoValue) id = remap[static_cast<std::size_t>(id)];
  };
  for (auto& i : inputs) fix(i);
  for (auto& o : outputs) fix(o);
  for (auto& n : nodes) {
    for (auto& i : n.inputs) fix(i);
    for (auto& o : n.outputs) fix(o);
  }
}

std::int64_t Graph::parameter_count() const {
  std::vector<bool> counted(values.size(), false);
  std::int64_t total = 0;
  for (const auto& n : nodes)
    for (auto i : n.inputs)
      if (i != kNoValue && !counted[static_cast<std::size_t>(i)]) {
        counted[static_cast<std::size_t>(i)] = true;
        const auto& v = values[static_cast<std::size_t>(i)];
        if (v.constant && v.constant->dtype() == DType::f32) total += v.constant->numel();
      }
  return total;
}

}  // namespace vkfuse::graph
