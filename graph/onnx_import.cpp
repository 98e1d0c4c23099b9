// ONNX ModelProto → Graph, on Debian's libonnx protobuf definitions.
#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <unordered_map>

#include "graph/passes.h"

namespace vkfuse::graph {

namespace {

[[noreturn]] void invalid(const std::string& what) { throw Error(ErrorKind::InvalidModel, what); }

const char* elem_type_name(int t) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return "float32";
    case onnx::TensorProto::UINT8: return "uint8";
    case onnx::TensorProto::INT8: return "int8";
    case onnx::TensorProto::UINT16: return "uint16";
    case onnx::TensorProto::INT16: return "int16";
    case onnx::TensorProto::INT32: return "int32";
    case onnx::TensorProto::INT64: return "int64";
    case onnx::TensorProto::STRING: return "string";
    case onnx::TensorProto::BOOL: return "bool";
    case onnx::TensorProto::FLOAT16: return "float16";
    case onnx::TensorProto::DOUBLE: return "float64";
    case onnx::TensorProto::UINT32: return "uint32";
    case onnx::TensorProto::UINT64: return "uint64";
    case onnx::TensorProto::BFLOAT16: return "bfloat16";
    default: return "unknown";
  }
}

template <class Dst, class Src>
void copy_numbers(Dst* dst, const Src* src, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<Dst>(src[i]);
}

template <class Src>
void read_raw(const std::string& raw, std::int64_t n, const std::string& name, std::vector<Src>& out) {
  if (raw.size() != static_cast<std::size_t>(n) * sizeof(Src))
    invalid("tensor '" + name + "' has " + std::to_string(raw.size()) + " bytes of raw data, expected " +
            std::to_string(static_cast<std::size_t>(n) * sizeof(Src)) + " (the file may be truncated)");
  out.resize(static_cast<std::size_t>(n));
  if (n) std::memcpy(out.data(), raw.data(), raw.size());
}

}  // namespace

// Also used by tests to read conformance TensorProtos.
Tensor tensor_from_proto(const onnx::TensorProto& p) {
  const std::string name = p.name().empty() ? "<unnamed>" : p.name();
  if (p.data_location() == onnx::TensorProto::EXTERNAL)
    throw Error(ErrorKind::Unsupported,
                "tensor '" + name + "' keeps its data in an external file; save the model with "
                "onnx.save_model(model, path, save_as_external_data=False) to embed it");
  Shape shape;
  for (auto d : p.dims()) {
    if (d < 0) invalid("tensor '" + name + "' has a negative dimension");
    shape.push_back(d);
  }
  const std::int64_t n = element_count(shape);
  if (n > (std::int64_t{1} << 34)) invalid("tensor '" + name + "' is implausibly large");
  const bool raw = p.has_raw_data();
  // A malformed file may claim any shape: check that the data holds as many
  // values (each at least a byte) before allocating for them.
  const std::int64_t held =
      raw ? static_cast<std::int64_t>(p.raw_data().size())
          : std::int64_t{p.float_data_size()} + p.double_data_size() + p.int64_data_size() + p.int32_data_size() +
                p.uint64_data_size() + p.string_data_size();
  if (n > held)
    invalid("tensor '" + name + "' has fewer values than its shape " + shape_string(shape) + " needs (" +
            std::to_string(n) + ")");
  switch (p.data_type()) {
    case onnx::TensorProto::FLOAT: {
      Tensor t(DType::f32, shape);
      if (raw) {
        std::vector<float> v;
        read_raw(p.raw_data(), n, name, v);
        if (n) std::memcpy(t.f32(), v.data(), v.size() * sizeof(float));
      } else {
        if (p.float_data_size() != n)
          invalid("tensor '" + name + "' has " + std::to_string(p.float_data_size()) + " values for shape " +
                  shape_string(shape));
        copy_numbers(t.f32(), p.float_data().data(), n);
      }
      return t;
    }
    case onnx::TensorProto::DOUBLE: {
      Tensor t(DType::f32, shape);
      if (raw) {
        std::vector<double> v;
        read_raw(p.raw_data(), n, name, v);
        copy_numbers(t.f32(), v.data(), n);
      } else {
        if (p.double_data_size() != n) invalid("tensor '" + name + "' has the wrong number of values");
        copy_numbers(t.f32(), p.double_data().data(), n);
      }
      return t;
    }
    case onnx::TensorProto::INT64: {
      Tensor t(DType::i64, shape);
      if (raw) {
        std::vector<std::int64_t> v;
        read_raw(p.raw_data(), n, name, v);
        if (n) std::memcpy(t.i64(), v.data(), v.size() * sizeof(std::int64_t));
      } else {
        if (p.int64_data_size() != n) invalid("tensor '" + name + "' has the wrong number of values");
        copy_numbers(t.i64(), p.int64_data().data(), n);
      }
      return t;
    }
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::BOOL: {
      // Small integer constants (indices, axes) widen to int64 losslessly.
      Tensor t(DType::i64, shape);
      if (raw) {
        const std::string& r = p.raw_data();
        const auto dt = p.data_type();
        const std::size_t es = dt == onnx::TensorProto::INT32 ? 4
                               : (dt == onnx::TensorProto::INT16 || dt == onnx::TensorProto::UINT16) ? 2
                                                                                                       : 1;
        if (r.size() != static_cast<std::size_t>(n) * es) invalid("tensor '" + name + "' has the wrong raw size");
        for (std::int64_t i = 0; i < n; ++i) {
          const char* b = r.data() + static_cast<std::size_t>(i) * es;
          std::int64_t v = 0;
          if (dt == onnx::TensorProto::INT32) { std::int32_t x; std::memcpy(&x, b, 4); v = x; }
          else if (dt == onnx::TensorProto::INT16) { std::int16_t x; std::memcpy(&x, b, 2); v = x; }
          else if (dt == onnx::TensorProto::UINT16) { std::uint16_t x; std::memcpy(&x, b, 2); v = x; }
          else if (dt == onnx::TensorProto::INT8) { v = static_cast<std::int8_t>(*b); }
          else { v = static_cast<std::uint8_t>(*b); }
          t.i64()[i] = v;
        }
      } else {
        if (p.int32_data_size() != n) invalid("tensor '" + name + "' has the wrong number of values");
        copy_numbers(t.i64(), p.int32_data().data(), n);
      }
      return t;
    }
    default:
      throw Error(ErrorKind::Unsupported, std::string("tensor '") + name + "' has element type " +
                                              elem_type_name(p.data_type()) +
                                              "; vkfuse runs float32 models (with int64 shape arithmetic)");
  }
}

namespace {

AttrValue attr_from_proto(const onnx::AttributeProto& a, const std::string& node_label) {
  switch (a.type()) {
    case onnx::AttributeProto::INT: return static_cast<std::int64_t>(a.i());
    case onnx::AttributeProto::FLOAT: return a.f();
    case onnx::AttributeProto::STRING: return a.s();
    case onnx::AttributeProto::INTS: return std::vector<std::int64_t>(a.ints().begin(), a.ints().end());
    case onnx::AttributeProto::FLOATS: return std::vector<float>(a.floats().begin(), a.floats().end());
    case onnx::AttributeProto::TENSOR: return tensor_from_proto(a.t());
    default:
      throw Error(ErrorKind::Unsupported,
                  node_label + ": attribute '" + a.name() + "' has a type vkfuse does not support (graphs, sparse tensors)");
  }
}

}  // namespace

std::vector<std::uint8_t> read_model_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error(ErrorKind::Io, "cannot open model file '" + path + "': no such file or not readable");
  // One read of the whole file (an istreambuf_iterator copy goes byte by
  // byte: 80 ms of ResNet-18's 45 MB).
  const std::streamoff size = f.tellg();
  std::vector<std::uint8_t> bytes(size > 0 ? static_cast<std::size_t>(size) : 0);
  f.seekg(0);
  if (!bytes.empty() && !f.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error(ErrorKind::Io, "cannot read model file '" + path + "'");
  return bytes;
}

Graph import_onnx(std::span<const std::uint8_t> bytes, const InputShapeOverrides& overrides) {
  if (bytes.empty()) invalid("the model file is empty");
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error(ErrorKind::Unsupported, "models over 2 GiB (external data) are not supported");

  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    invalid("not a valid ONNX model: the protobuf could not be parsed (truncated or not an .onnx file)");
  if (model.ir_version() <= 0 || !model.has_graph())
    invalid("not a valid ONNX model: no ir_version or no graph (is this an .onnx file?)");
  const onnx::GraphProto& gp = model.graph();
  if (gp.output_size() == 0) invalid("not a valid ONNX model: the graph declares no outputs");

  Graph g;
  g.name = gp.name().empty() ? "model" : gp.name();
  g.opset = 0;
  for (const auto& imp : model.opset_import())
    if (imp.domain().empty() || imp.domain() == "ai.onnx") g.opset = imp.version();
  if (g.opset == 0) {
    if (model.opset_import_size() == 0) g.opset = 1;  // ONNX: no import means opset 1
    else invalid("the model imports no default-domain (ai.onnx) opset");
  }
  if (g.opset > 18)
    throw Error(ErrorKind::Unsupported, "opset " + std::to_string(g.opset) +
                                            " is newer than vkfuse supports (up to 18); re-export with opset 13");

  std::unordered_map<std::string, ValueId> by_name;
  auto define = [&](const std::string& name, ValueId id, const std::string& what) {
    if (name.empty()) invalid(what + " has an empty name");
    if (!by_name.emplace(name, id).second) invalid("'" + name + "' is defined twice (" + what + ")");
  };

  for (const auto& init : gp.initializer()) {
    Tensor t = tensor_from_proto(init);
    define(init.name(), g.add_constant(init.name(), std::move(t)), "initializer");
  }

  auto find_override = [&](const std::string& name) -> const Shape* {
    for (const auto& [n, s] : overrides)
      if (n == name) return &s;
    return nullptr;
  };
  for (const auto& in : gp.input()) {
    if (by_name.count(in.name())) continue;  // an initializer listed as input (IR < 4)
    const auto& type = in.type();
    if (!type.has_tensor_type())
      throw Error(ErrorKind::Unsupported, "input '" + in.name() + "' is not a tensor");
    const int et = type.tensor_type().elem_type();
    if (et != onnx::TensorProto::FLOAT)
      throw Error(ErrorKind::Unsupported, "input '" + in.name() + "' is " + elem_type_name(et) +
                                              "; vkfuse takes float32 model inputs");
    Shape shape;
    if (const Shape* o = find_override(in.name())) {
      shape = *o;
    } else {
      if (!type.tensor_type().has_shape())
        throw Error(ErrorKind::Unsupported, "input '" + in.name() + "' declares no shape; give one with --input-shape " +
                                                in.name() + "=1x3x224x224");
      const auto& dims = type.tensor_type().shape().dim();
      for (int i = 0; i < dims.size(); ++i) {
        const auto& d = dims[i];
        if (d.has_dim_value() && d.dim_value() >= 0) {
          shape.push_back(d.dim_value());
        } else if (i == 0) {
          shape.push_back(1);  // a symbolic batch dimension: batch 1 unless overridden
        } else {
          throw Error(ErrorKind::Unsupported,
                      "input '" + in.name() + "' has symbolic dimension " + std::to_string(i) + " ('" + d.dim_param() +
                          "'); give a concrete shape with --input-shape " + in.name() + "=1x3x224x224");
        }
      }
    }
    ValueId id = g.add_value(in.name(), DType::f32, shape, true);
    define(in.name(), id, "graph input");
    g.inputs.push_back(id);
  }
  for (const auto& [n, s] : overrides)
    if (!by_name.count(n))
      throw Error(ErrorKind::InvalidArgument, "--input-shape names '" + n + "', which is not an input of the model");

  // Node outputs first, so that inputs may refer to values defined later
  // (ONNX requires topological order, but sort() reports cycles clearly).
  std::vector<Node> nodes;
  nodes.reserve(static_cast<std::size_t>(gp.node_size()));
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    Node n;
    n.op_type = np.op_type();
    n.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    const std::string label = "node '" + n.name + "' (" + n.op_type + ")";
    if (!np.domain().empty() && np.domain() != "ai.onnx")
      throw Error(ErrorKind::Unsupported, "unsupported operator '" + np.domain() + "." + np.op_type() + "' at node '" +
                                              n.name + "': vkfuse supports the default ONNX domain only");
    for (const auto& a : np.attribute()) {
      if (a.name().empty()) invalid(label + " has an attribute with no name");
      n.attrs.set(a.name(), attr_from_proto(a, label));
    }
    for (const auto& out : np.output()) {
      if (out.empty()) {
        n.outputs.push_back(kNoValue);
        continue;
      }
      ValueId id = g.add_value(out);
      define(out, id, "output of " + label);
      n.outputs.push_back(id);
    }
    nodes.push_back(std::move(n));
  }
  for (int i = 0; i < gp.node_size(); ++i) {
    for (const auto& in : gp.node(i).input()) {
      if (in.empty()) {
        nodes[static_cast<std::size_t>(i)].inputs.push_back(kNoValue);
        continue;
      }
      auto it = by_name.find(in);
      if (it == by_name.end())
        invalid("node '" + nodes[static_cast<std::size_t>(i)].name + "' (" + nodes[static_cast<std::size_t>(i)].op_type +
                ") reads '" + in + "', which is neither a graph input, an initializer nor any node's output");
      nodes[static_cast<std::size_t>(i)].inputs.push_back(it->second);
    }
  }
  g.nodes = std::move(nodes);

  for (const auto& out : gp.output()) {
    auto it = by_name.find(out.name());
    if (it == by_name.end()) invalid("graph output '" + out.name() + "' is not produced by any node");
    g.outputs.push_back(it->second);
  }
  g.sort();
  return g;
}

}  // namespace vkfuse::graph
