// ONNX ModelProto → Graph, on Debian's libonnx protobuf definitions.
#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <onnx/onnx_pb.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "graph/ops.h"
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

// The raw bytes of n values of type Src, checked for size.
template <class Src>
std::span<const std::byte> raw_bytes(std::string_view raw, std::int64_t n, const std::string& name) {
  if (raw.size() != static_cast<std::size_t>(n) * sizeof(Src))
    invalid("tensor '" + name + "' has " + std::to_string(raw.size()) + " bytes of raw data, expected " +
            std::to_string(static_cast<std::size_t>(n) * sizeof(Src)) + " (the file may be truncated)");
  return {reinterpret_cast<const std::byte*>(raw.data()), raw.size()};
}

template <class Src>
void read_raw(std::string_view raw, std::int64_t n, const std::string& name, std::vector<Src>& out) {
  const auto b = raw_bytes<Src>(raw, n, name);
  out.resize(static_cast<std::size_t>(n));
  if (n) std::memcpy(out.data(), b.data(), b.size());
}

// A TensorProto whose raw data, if any, is `raw_data` (the proto's own, or
// bytes of the model file that import_onnx kept out of the proto).
Tensor tensor_from(const onnx::TensorProto& p, std::optional<std::string_view> raw_data) {
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
  const bool raw = raw_data.has_value();
  // A malformed file may claim any shape: check that the data holds as many
  // values (each at least a byte) before allocating for them.
  const std::int64_t held =
      raw ? static_cast<std::int64_t>(raw_data->size())
          : std::int64_t{p.float_data_size()} + p.double_data_size() + p.int64_data_size() + p.int32_data_size() +
                p.uint64_data_size() + p.string_data_size();
  if (n > held)
    invalid("tensor '" + name + "' has fewer values than its shape " + shape_string(shape) + " needs (" +
            std::to_string(n) + ")");
  switch (p.data_type()) {
    case onnx::TensorProto::FLOAT: {
      if (raw) return Tensor::from_bytes(DType::f32, shape, raw_bytes<float>(*raw_data, n, name));
      if (p.float_data_size() != n)
        invalid("tensor '" + name + "' has " + std::to_string(p.float_data_size()) + " values for shape " +
                shape_string(shape));
      Tensor t(DType::f32, shape);
      copy_numbers(t.f32(), p.float_data().data(), n);
      return t;
    }
    case onnx::TensorProto::DOUBLE: {
      Tensor t(DType::f32, shape);
      if (raw) {
        std::vector<double> v;
        read_raw(*raw_data, n, name, v);
        copy_numbers(t.f32(), v.data(), n);
      } else {
        if (p.double_data_size() != n) invalid("tensor '" + name + "' has the wrong number of values");
        copy_numbers(t.f32(), p.double_data().data(), n);
      }
      return t;
    }
    case onnx::TensorProto::INT64: {
      if (raw) return Tensor::from_bytes(DType::i64, shape, raw_bytes<std::int64_t>(*raw_data, n, name));
      if (p.int64_data_size() != n) invalid("tensor '" + name + "' has the wrong number of values");
      Tensor t(DType::i64, shape);
      copy_numbers(t.i64(), p.int64_data().data(), n);
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
        const std::string_view r = *raw_data;
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
      if (p.data_type() == onnx::TensorProto::BOOL)  // bool as 0/1, whatever value holds it
        for (std::int64_t i = 0; i < n; ++i) t.i64()[i] = t.i64()[i] != 0;
      return t;
    }
    default:
      throw Error(ErrorKind::Unsupported, std::string("tensor '") + name + "' has element type " +
                                              elem_type_name(p.data_type()) +
                                              "; vkfuse runs float32 models (with int64 shape arithmetic)");
  }
}

}  // namespace

// Also used by tests to read conformance TensorProtos.
Tensor tensor_from_proto(const onnx::TensorProto& p) {
  return tensor_from(p, p.has_raw_data() ? std::optional<std::string_view>(p.raw_data()) : std::nullopt);
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

// One field of a serialized protobuf message: all its bytes (tag included)
// and, for a length-delimited field, its payload.
struct WireField {
  int number = 0;
  bool delimited = false;
  std::string_view whole, payload;
};

// The fields of the message serialized in `msg`, in order; nullopt if it is
// not well-formed wire format.
std::optional<std::vector<WireField>> wire_fields(std::string_view msg) {
  using Wire = google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const std::uint8_t*>(msg.data()),
                                            static_cast<int>(msg.size()));
  std::vector<WireField> fields;
  for (;;) {
    const auto start = static_cast<std::size_t>(in.CurrentPosition());
    const std::uint32_t tag = in.ReadTag();
    if (tag == 0) {  // the end, or a malformed tag
      if (start == msg.size()) return fields;
      return std::nullopt;
    }
    WireField f;
    f.number = Wire::GetTagFieldNumber(tag);
    if (Wire::GetTagWireType(tag) == Wire::WIRETYPE_LENGTH_DELIMITED) {
      int length = 0;  // protobuf's own reading of a length: at most INT_MAX
      if (!in.ReadVarintSizeAsInt(&length)) return std::nullopt;
      const auto at = static_cast<std::size_t>(in.CurrentPosition());
      if (static_cast<std::size_t>(length) > msg.size() - at || !in.Skip(length)) return std::nullopt;
      f.delimited = true;
      f.payload = msg.substr(at, length);
    } else if (!Wire::SkipField(&in, tag)) {
      return std::nullopt;
    }
    f.whole = msg.substr(start, static_cast<std::size_t>(in.CurrentPosition()) - start);
    fields.push_back(f);
  }
}

void append_varint(std::string& out, std::uint64_t v) {
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>(v | 0x80));
  out.push_back(static_cast<char>(v));
}

// A model file with its initializers taken out: protobuf would copy every
// weight into a string of its own, and the tensors copy them again; here they
// are copied once, from the file's bytes into the tensors.
struct SplitModel {
  std::string skeleton;  // the ModelProto without initializers
  struct Initializer {
    std::string proto;                     // its TensorProto without raw_data
    std::optional<std::string_view> raw;  // raw_data, in the file's bytes
  };
  std::vector<Initializer> initializers;  // in file order
};

std::optional<SplitModel> split_initializers(std::string_view file) {
  const auto top = wire_fields(file);
  if (!top) return std::nullopt;
  SplitModel m;
  for (const WireField& f : *top) {
    if (f.number != onnx::ModelProto::kGraphFieldNumber || !f.delimited) {
      m.skeleton.append(f.whole);
      continue;
    }
    const auto graph_fields = wire_fields(f.payload);
    if (!graph_fields) return std::nullopt;
    std::string graph;
    for (const WireField& gf : *graph_fields) {
      if (gf.number != onnx::GraphProto::kInitializerFieldNumber || !gf.delimited) {
        graph.append(gf.whole);
        continue;
      }
      const auto tensor_fields = wire_fields(gf.payload);
      if (!tensor_fields) return std::nullopt;
      SplitModel::Initializer init;
      for (const WireField& tf : *tensor_fields) {
        if (tf.number == onnx::TensorProto::kRawDataFieldNumber && tf.delimited) init.raw = tf.payload;  // last wins
        else init.proto.append(tf.whole);
      }
      m.initializers.push_back(std::move(init));
    }
    append_varint(m.skeleton, (static_cast<std::uint64_t>(f.number) << 3) | 2);  // length-delimited
    append_varint(m.skeleton, graph.size());
    m.skeleton.append(graph);
  }
  return m;
}

}  // namespace

ModelFile::ModelFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw Error(ErrorKind::Io, "cannot open model file '" + path + "': " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  auto too_large = [&] {
    return Error(ErrorKind::Unsupported,
                 "model file '" + path + "' is over 2 GiB; models with external data are not supported");
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(ErrorKind::Io, "cannot read model file '" + path + "': " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error(ErrorKind::Io, "model file '" + path + "' is a directory");
  if (st.st_size > std::numeric_limits<int>::max()) throw too_large();
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    // Mapped, not read: the weights are copied once, from the page cache
    // into the tensors (MAP_POPULATE: the pages in one go, not a fault each).
    // The mapping lives only while the model loads; a file truncated in place
    // during that time (rather than replaced by a rename) would fault.
    void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p != MAP_FAILED) {
      mapped_ = p;
      bytes_ = {static_cast<const std::uint8_t*>(p), static_cast<std::size_t>(st.st_size)};
      return;
    }
  }
  // Not a regular file (a pipe), or not mappable: read it, from this
  // descriptor (reopening a FIFO would lose its writer).
  char chunk[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorKind::Io, "cannot read model file '" + path + "': " + std::strerror(errno));
    }
    read_.append(chunk, static_cast<std::size_t>(got));
    if (read_.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw too_large();
  }
  bytes_ = {reinterpret_cast<const std::uint8_t*>(read_.data()), read_.size()};
}

ModelFile::~ModelFile() {
  if (mapped_) ::munmap(mapped_, bytes_.size());
}

Graph import_onnx(std::span<const std::uint8_t> bytes, const InputShapeOverrides& overrides) {
  if (bytes.empty()) invalid("the model file is empty");
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw Error(ErrorKind::Unsupported, "models over 2 GiB (external data) are not supported");

  const char* const unparsable = "not a valid ONNX model: the protobuf could not be parsed (truncated or not an .onnx file)";
  const std::optional<SplitModel> split =
      split_initializers({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
  if (!split) invalid(unparsable);
  onnx::ModelProto model;
  if (!model.ParseFromArray(split->skeleton.data(), static_cast<int>(split->skeleton.size()))) invalid(unparsable);
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

  for (const SplitModel::Initializer& init : split->initializers) {
    onnx::TensorProto p;
    if (!p.ParseFromArray(init.proto.data(), static_cast<int>(init.proto.size()))) invalid(unparsable);
    Tensor t = tensor_from(p, init.raw);
    define(p.name(), g.add_constant(p.name(), std::move(t)), "initializer");
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
    if (const OpDef* def = find_op(n.op_type); def && def->internal)
      throw Error(ErrorKind::Unsupported, "unsupported operator '" + n.op_type + "' at node '" + n.name +
                                              "': not an ONNX operator (vkfuse's own op of that name is internal)");
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
