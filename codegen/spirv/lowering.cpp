// codegen/spirv/lowering.cpp — see lowering.h. One emit_* function per op
// family; each fills a Kernel from a shader template and generated #defines.
#include "codegen/spirv/lowering.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "codegen/spirv/shaders.h"
#include "graph/ops.h"
#include "planner/cost_model.h"
#include "planner/kernel_fusion.h"

namespace vkfuse::codegen::spirv {

namespace {

using graph::Activation;
using graph::DType;
using graph::Graph;
using graph::kNoValue;
using graph::row_major_strides;
using graph::Node;
using graph::Shape;
using graph::Tensor;
using graph::ValueId;

// ---- GLSL text helpers ------------------------------------------------------

// An exact GLSL float literal.
std::string flit(float v) {
  if (!std::isfinite(v)) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    char buf[48];
    std::snprintf(buf, sizeof buf, "uintBitsToFloat(0x%08xu)", bits);
    return buf;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.9e", static_cast<double>(v));
  return buf;
}

class Defines {
 public:
  Defines& operator()(const std::string& name, std::int64_t v) {
    text_ += "#define " + name + " " + std::to_string(v) + "\n";
    return *this;
  }
  Defines& raw(const std::string& name, const std::string& v) {
    text_ += "#define " + name + " " + v + "\n";
    return *this;
  }
  // A size read from the push constants (pc.d[i]) rather than baked in:
  // kernels that differ only in such sizes have one source, hence one
  // pipeline, and a driver that compiles at the first dispatch (lavapipe:
  // most of a cold load) compiles it once. pc.d[0] is TOTAL (finish()).
  Defines& dim(const std::string& name, std::int64_t v) {
    dims_.push_back(static_cast<std::uint32_t>(v));
    return raw(name, "int(pc.d[" + std::to_string(dims_.size()) + "])");
  }
  Defines& code(const std::string& c) {
    code_ += c;
    return *this;
  }
  // A GLSL extension the kernel needs (placed right after #version).
  Defines& extension(const std::string& name) {
    extensions_ += "#extension " + name + " : require\n";
    return *this;
  }
  const std::string& text() const { return text_; }
  const std::string& functions() const { return code_; }
  const std::string& extensions() const { return extensions_; }
  const std::vector<std::uint32_t>& dims() const { return dims_; }

 private:
  std::string text_, code_, extensions_;
  std::vector<std::uint32_t> dims_;  // pc.d[1], pc.d[2], ...
};

std::string act_body(const Activation& a) {
  std::string body;
  switch (a.kind) {
    case Activation::Kind::None: body = "x"; break;
    case Activation::Kind::Relu: body = "max(x, 0.0)"; break;
    case Activation::Kind::LeakyRelu: body = "x >= 0.0 ? x : " + flit(a.alpha) + " * x"; break;
    case Activation::Kind::Clip: body = "min(max(x, " + flit(a.alpha) + "), " + flit(a.beta) + ")"; break;
    case Activation::Kind::Sigmoid: body = "1.0 / (1.0 + exp(-x))"; break;
    case Activation::Kind::HardSigmoid:
      body = "max(0.0, min(1.0, " + flit(a.alpha) + " * x + " + flit(a.beta) + "))";
      break;
    case Activation::Kind::HardSwish: body = "x * max(0.0, min(1.0, x / 6.0 + 0.5))"; break;
    case Activation::Kind::Silu: body = "x / (1.0 + exp(-x))"; break;
    case Activation::Kind::Gelu: body = "0.5 * x * (1.0 + vkf_erf(x * 0.70710678))"; break;
    // 0.5 x (1 + tanh(u)) as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): one exp, as the host's.
    case Activation::Kind::GeluTanh: body = "x / (1.0 + exp(-x * (1.5957691 + 0.0713548 * x * x)))"; break;
  }
  return body;
}

std::string act_function(const char* name, const std::string& body) {
  return std::string("float ") + name + "(float x) { return " + body + "; }\n";
}

std::string act_suffix(const Activation& a) {
  return a.kind == Activation::Kind::None ? "" : std::string("_") + a.name();
}

// `uint name(uint i)`: the row-major decomposition of i over `dims`, dotted
// with `strides` (0 = broadcast).
std::string index_function(const std::string& ret, const std::string& name, const Shape& dims,
                           const std::vector<std::int64_t>& strides, std::int64_t extra = 0) {
  bool identity = extra == 0;
  std::int64_t expect = 1;
  for (std::size_t k = dims.size(); k-- > 0;) {
    if (dims[k] != 1 && strides[k] != expect) identity = false;
    expect *= dims[k];
  }
  std::string s = ret + " " + name + "(uint i) {\n";
  if (identity) return s + "  return " + ret + "(i);\n}\n";
  s += "  uint s = " + std::to_string(extra) + "u;\n";
  for (std::size_t k = dims.size(); k-- > 0;) {
    if (dims[k] == 1) continue;
    const std::string st = std::to_string(strides[k]) + "u";
    const std::string d = std::to_string(dims[k]) + "u";
    bool outer_all_one = true;
    for (std::size_t j = 0; j < k; ++j) outer_all_one = outer_all_one && dims[j] == 1;
    if (outer_all_one) {
      if (strides[k] != 0) s += "  s += i * " + st + ";\n";
    } else {
      if (strides[k] != 0) s += "  s += (i % " + d + ") * " + st + ";\n";
      s += "  i /= " + d + ";\n";
    }
  }
  return s + "  return " + ret + "(s);\n}\n";
}

// Strides of `in` laid against `out` under numpy broadcasting.
std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<std::int64_t> strides(out.size(), 0);
  std::int64_t s = 1;
  for (std::size_t k = 0; k < in.size(); ++k) {
    const std::size_t di = in.size() - 1 - k, dout = out.size() - 1 - k;
    strides[dout] = in[di] == 1 ? 0 : s;
    s *= in[di];
  }
  return strides;
}

std::vector<std::int64_t> to3(const std::vector<std::int64_t>& v, std::int64_t fill) {
  std::vector<std::int64_t> r(3 - v.size(), fill);
  r.insert(r.end(), v.begin(), v.end());
  return r;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

// Resolved pads of a Conv or pooling node (auto_pad included), spatial dims.
void resolve_pads(const Node& node, const Shape& x, const std::vector<std::int64_t>& kernel,
                  const std::vector<std::int64_t>& strides, const std::vector<std::int64_t>& dil,
                  std::vector<std::int64_t>& begin, std::vector<std::int64_t>& end) {
  const std::size_t nsp = x.size() - 2;
  const auto pads = node.attrs.get_ints("pads", std::vector<std::int64_t>(2 * nsp, 0));
  const std::string auto_pad = node.attrs.get_string("auto_pad", "NOTSET");
  begin.assign(nsp, 0);
  end.assign(nsp, 0);
  for (std::size_t i = 0; i < nsp; ++i) {
    const std::int64_t in = x[i + 2];
    const std::int64_t ek = (kernel[i] - 1) * dil[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const std::int64_t out = ceil_div(in, strides[i]);
      const std::int64_t total = std::max<std::int64_t>(0, (out - 1) * strides[i] + ek - in);
      const std::int64_t small = total / 2, big = total - small;
      begin[i] = auto_pad == "SAME_UPPER" ? small : big;
      end[i] = auto_pad == "SAME_UPPER" ? big : small;
    } else if (auto_pad != "VALID") {
      begin[i] = pads[i];
      end[i] = pads[i + nsp];
    }
  }
}

// `int name(uint i)`: offset + the row-major decomposition of i over `dims`
// dotted with signed `strides` (Slice's negative steps).
std::string signed_index_function(const std::string& name, const Shape& dims, const std::vector<std::int64_t>& strides,
                                  std::int64_t offset) {
  std::string s = "int " + name + "(uint i) {\n  int s = " + std::to_string(offset) + ";\n";
  for (std::size_t k = dims.size(); k-- > 0;) {
    if (dims[k] == 1) continue;
    const std::string d = std::to_string(dims[k]) + "u";
    if (strides[k] != 0) s += "  s += int(i % " + d + ") * (" + std::to_string(strides[k]) + ");\n";
    s += "  i /= " + d + ";\n";
  }
  return s + "  return s;\n}\n";
}

// GLSL expression of x for a unary math op; "" when `n` is not one.
std::string unary_math_body(const Node& n) {
  const std::string& op = n.op_type;
  if (op == "Sqrt") return "sqrt(x)";
  if (op == "Exp") return "exp(x)";
  if (op == "Log") return "log(x)";
  if (op == "Erf") return "vkf_erf(x)";
  if (op == "Tanh") return "tanh(clamp(x, -15.0, 15.0))";  // tanh's exp overflows past that
  if (op == "Softplus") return "x > 20.0 ? x : log(1.0 + exp(x))";
  if (op == "Softsign") return "x / (1.0 + abs(x))";
  if (op == "Neg") return "-x";
  if (op == "Abs") return "abs(x)";
  if (op == "Reciprocal") return "1.0 / x";
  if (op == "Ceil") return "ceil(x)";
  if (op == "Floor") return "floor(x)";
  if (op == "Elu") return "x >= 0.0 ? x : " + flit(n.attrs.get_float("alpha", 1.f)) + " * (exp(x) - 1.0)";
  if (op == "Selu") {
    const std::string a = flit(n.attrs.get_float("alpha", 1.67326319217681884765625f));
    const std::string gm = flit(n.attrs.get_float("gamma", 1.05070102214813232421875f));
    return gm + " * (x > 0.0 ? x : " + a + " * (exp(x) - 1.0))";
  }
  return "";
}

// GLSL expression of a and b for a two-operand op; "" when `n` is not one.
std::string binary_body(const std::string& op) {
  if (op == "Add" || op == "Sum") return "((a) + (b))";
  if (op == "Sub") return "((a) - (b))";
  if (op == "Mul") return "((a) * (b))";
  if (op == "Div") return "((a) / (b))";
  if (op == "Pow") return "vkf_pow(a, b)";
  if (op == "Max") return "max(a, b)";
  if (op == "Min") return "min(a, b)";
  if (op == "Mean") return "(((a) + (b)) * 0.5)";
  if (op == "PRelu") return "((a) >= 0.0 ? (a) : (a) * (b))";
  return "";
}

bool is_variadic(const std::string& op) { return op == "Max" || op == "Min" || op == "Mean" || op == "Sum"; }

// A reduction's layout (graph::contiguous_reduction), or why the GPU cannot
// run it; `identity` for noop_with_empty_axes without axes.
struct ReduceLayout : graph::ContiguousReduction {
  bool identity = false;
};

std::string reduce_layout(const Graph& g, const Node& n, ReduceLayout& out) {
  const graph::ReducePlan p = graph::reduce_plan(graph::OpContext{n, g.opset}, graph::input_infos(g, n));
  if (p.identity) {
    out.identity = true;
    return "";
  }
  if (!graph::contiguous_reduction(p, g.value(n.inputs[0]).shape, out))
    return "a reduction over axes that are not contiguous";
  return "";
}

graph::ResizePlan resize_plan(const Graph& g, const Node& n) {
  return graph::resize_plan(graph::OpContext{n, g.opset}, graph::input_infos(g, n));
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

// ---- the lowering -----------------------------------------------------------

class Lowering {
 public:
  Lowering(const Graph& g, const DeviceCaps& caps, std::span<const int> unit)
      : g_(g), caps_(caps), units_(unit.begin(), unit.end()), fusion_(g) {
    if (units_.empty()) units_.assign(g_.nodes.size(), 0);
    if (units_.size() != g_.nodes.size())
      throw Error(ErrorKind::Internal, "lower_graph: the unit list needs one entry per node");
  }

  Program run();

 private:
  const Graph& g_;
  const DeviceCaps& caps_;
  std::vector<int> units_;  // per node: its unit (every node is on the device here)
  planner::KernelFusion fusion_;
  std::int32_t emitting_ = -1;  // the node emit() is lowering
  Program p_;
  std::vector<ValueId> parent_;
  std::vector<std::int64_t> parent_offset_;
  std::set<ValueId> arena_constants_;

  // Conv or Resize node index → the Add it runs as its epilogue, and the reverse.
  std::map<std::size_t, std::size_t> producer_to_add_, add_to_producer_;
  // Conv node index → the gating Mul it applies to its input, and the reverse.
  std::map<std::size_t, std::size_t> conv_to_mul_, mul_to_conv_;

  const Shape& shape(ValueId v) const { return g_.value(v).shape; }
  std::int64_t numel(ValueId v) const { return graph::element_count(shape(v)); }

  // A value a kernel reads from the arena: constants get arena space.
  Slot input(ValueId v) {
    if (g_.is_constant(v)) arena_constants_.insert(v);
    return Slot{Slot::Kind::Input, v};
  }
  static Slot output(ValueId v) { return Slot{Slot::Kind::Output, v}; }
  static Slot weights() { return Slot{Slot::Kind::Weights, kNoValue}; }

  // total: invocations the kernel needs; groups: workgroups to launch (0 = enough for total).
  void finish(Kernel k, std::int64_t total, const Defines& d, const std::string& tmpl, const Activation& act1,
              const Activation& act2, std::int64_t workgroups = 0) {
    finish(std::move(k), total, d, tmpl, act_body(act1), act2, workgroups);
  }
  // act1 as a GLSL expression of x (the unary math ops).
  void finish(Kernel k, std::int64_t total, const Defines& d, const std::string& tmpl, const std::string& act1,
              const Activation& act2, std::int64_t workgroups = 0) {
    const std::uint32_t wg = caps_.workgroup_size;
    const std::int64_t groups = workgroups > 0 ? workgroups : std::max<std::int64_t>(1, (total + wg - 1) / wg);
    const std::int64_t gx = std::min<std::int64_t>(groups, caps_.max_groups_x);
    k.groups_x = static_cast<std::uint32_t>(gx);
    k.groups_y = static_cast<std::uint32_t>((groups + gx - 1) / gx);
    k.invocations = total;
    if (d.dims().size() + 1 > kDimWords) throw Error(ErrorKind::Internal, "kernel " + k.variant + ": too many sizes");
    k.dims.assign(1, static_cast<std::uint32_t>(total));
    k.dims.insert(k.dims.end(), d.dims().begin(), d.dims().end());
    std::string src = "#version 450\n" + d.extensions() + "// vkfuse kernel " + k.variant + "\n";
    // GX and TOTAL are not baked in either (see Defines::dim).
    src += "#define WG " + std::to_string(wg) + "\n#define GX gl_NumWorkGroups.x\n#define TOTAL pc.d[0]\n";
    src += "#define DIM_WORDS " + std::to_string(kDimWords) + "\n";  // the push block's d[] (common.glsl)
    src += d.text();
    src += std::string(shader_template("common"));
    src += act_function("act1", act1);
    src += act_function("act2", act_body(act2));
    src += d.functions();
    src += std::string(shader_template(tmpl));
    k.source = std::move(src);
    k.node = emitting_;
    p_.kernels.push_back(std::move(k));
  }

  // A reduction over `rows` rows (a shader that reads ROW_GROUPS): one
  // workgroup per row where the device wants that (DeviceCaps::row_groups),
  // else one invocation per row.
  void finish_rows(Kernel k, std::int64_t rows, Defines& d, const std::string& tmpl, const Activation& act2,
                   bool row_groups = true) {
    if (!(row_groups && caps_.row_groups)) return finish(std::move(k), rows, d, tmpl, Activation::none(), act2);
    d("ROW_GROUPS", 1);
    if (caps_.subgroup_fold) {
      k.subgroup_fold = true;
      d("SUBGROUP_FOLD", 1);
      d.extension("GL_KHR_shader_subgroup_basic").extension("GL_KHR_shader_subgroup_arithmetic");
    }
    k.variant += "_rows";
    finish(std::move(k), rows, d, tmpl, Activation::none(), act2, rows);
  }

  // A Gemm or MatMul of `outputs` dot products of length K: one invocation
  // each, or on a GPU (DeviceCaps::conv_fill_invocations), when they are too
  // few to fill it and long enough to share, one workgroup each.
  void finish_gemm(Kernel k, std::int64_t outputs, std::int64_t K, Defines& d, const Activation& act) {
    const bool rows = caps_.conv_fill_invocations > 0 && outputs < caps_.conv_fill_invocations &&
                      K >= 2 * static_cast<std::int64_t>(caps_.workgroup_size);
    finish_rows(std::move(k), outputs, d, "gemm", act, rows);
  }

  // An operand after a kernel's fixed ones, which its shader names by
  // NAME_SLOT (the slot) and NAME_AT (its offset): a convolution's channel
  // gate (GATE), LayerNormalization's optional statistics (MEAN, INV).
  void named_slot(Kernel& kern, Defines& def, const std::string& name, Slot slot) {
    const std::string index = std::to_string(kern.slots.size());
    def(name + "_SLOT", static_cast<std::int64_t>(kern.slots.size())).raw(name + "_AT", "pc.o" + index);
    kern.slots.push_back(slot);
  }
  // One of several kernels that share a node's weights by ranges of its
  // output channels (or columns) [from, from + count) of `total`.
  static void name_part(Kernel& kern, const char* what, std::int64_t from, std::int64_t count, std::int64_t total) {
    if (count == total) return;
    kern.variant += "_part";
    kern.nodes += " [" + std::string(what) + " " + std::to_string(from) + ".." + std::to_string(from + count) + ")";
  }
  void plan_fusions();
  void plan_aliases();
  void emit(std::size_t index);
  void emit_conv(const Node& n, const Node* add);
  void emit_pool(const Node& n);
  void emit_global_pool(const Node& n);
  void emit_gemm(const Node& n);
  void emit_matmul(const Node& n);
  void emit_binary(const Node& n);
  void emit_variadic(const Node& n);
  void emit_unary(const Node& n, const Activation& act1);
  // act1 given as a GLSL expression of x (the unary math ops).
  void emit_unary(const Node& n, const std::string& variant, const std::string& body);
  void emit_batchnorm(const Node& n);
  void emit_softmax(const Node& n);
  void emit_concat(const Node& n);
  void emit_transpose(const Node& n);
  void emit_pad(const Node& n);
  void emit_gather(const Node& n);
  void emit_reduce(const Node& n);
  void emit_slice(const Node& n);
  void emit_split(const Node& n);
  void emit_expand(const Node& n);
  void emit_tile(const Node& n);
  void emit_depth_space(const Node& n);
  void emit_resize(const Node& n, const Node* add);
  void emit_layer_norm(const Node& n);
  void emit_channel_norm(const Node& n);  // InstanceNormalization, ChannelLayerNorm
  void emit_lrn(const Node& n);
  void emit_conv_transpose(const Node& n);
  void emit_remap(const Node& n, const std::string& variant, ValueId in, ValueId out, std::int64_t total,
                  const std::string& src_fn, const std::string& dst_fn, float fill, std::vector<float> packed);
};

void Lowering::plan_fusions() {
  // planner/kernel_fusion.h decides what shares a kernel; the cost model
  // prices the same decisions.
  for (std::size_t i = 0; i < g_.nodes.size(); ++i) {
    if (const int c = fusion_.epilogue_of(static_cast<int>(i), units_); c >= 0) {
      producer_to_add_[static_cast<std::size_t>(c)] = i;
      add_to_producer_[i] = static_cast<std::size_t>(c);
    }
    if (const int c = fusion_.gated_conv(static_cast<int>(i), units_); c >= 0) {
      conv_to_mul_[static_cast<std::size_t>(c)] = i;
      mul_to_conv_[i] = static_cast<std::size_t>(c);
    }
  }
}

void Lowering::plan_aliases() {
  const std::size_t nv = g_.values.size();
  parent_.assign(nv, kNoValue);
  parent_offset_.assign(nv, 0);
  for (std::size_t i = 0; i < g_.nodes.size(); ++i) {
    if (!fusion_.is_alias(static_cast<int>(i))) continue;
    const Node& n = g_.nodes[i];
    parent_[static_cast<std::size_t>(n.outputs[0])] = n.inputs[0];
    ++p_.alias_nodes;
  }
  // Concat inputs that their producers write straight into the output.
  for (std::size_t i = 0; i < g_.nodes.size(); ++i) {
    const Node& n = g_.nodes[i];
    if (n.op_type != "Concat") continue;
    std::int64_t start = 0;
    for (ValueId v : n.inputs) {
      if (fusion_.in_place(static_cast<int>(i), v, units_, true)) {
        parent_[static_cast<std::size_t>(v)] = n.outputs[0];
        parent_offset_[static_cast<std::size_t>(v)] = start;
        ++p_.aliased_concat_inputs;
      }
      start += numel(v);
    }
  }
}

Program Lowering::run() {
  plan_fusions();
  plan_aliases();
  for (std::size_t i = 0; i < g_.nodes.size(); ++i) emit(i);

  const std::size_t nv = g_.values.size();
  p_.root.resize(nv);
  p_.root_offset.resize(nv);
  for (std::size_t v = 0; v < nv; ++v) {
    ValueId r = static_cast<ValueId>(v);
    std::int64_t off = 0;
    for (std::size_t guard = 0; parent_[static_cast<std::size_t>(r)] != kNoValue; ++guard) {
      if (guard > nv) throw Error(ErrorKind::Internal, "alias cycle in the GPU lowering");
      off += parent_offset_[static_cast<std::size_t>(r)];
      r = parent_[static_cast<std::size_t>(r)];
    }
    p_.root[v] = r;
    p_.root_offset[v] = off;
  }
  p_.arena_constants.assign(arena_constants_.begin(), arena_constants_.end());
  p_.fused_adds = static_cast<std::int64_t>(producer_to_add_.size());
  return std::move(p_);
}

void Lowering::emit(std::size_t index) {
  const Node& n = g_.nodes[index];
  emitting_ = static_cast<std::int32_t>(index);
  bool all_constant = true;
  for (ValueId o : n.outputs)
    if (o != kNoValue && !g_.is_constant(o)) all_constant = false;
  if (all_constant) return;  // folded at load
  if (producer_to_add_.count(index)) return;  // runs where its Add is
  if (mul_to_conv_.count(index)) return;   // its Conv applies the gate
  if (auto it = add_to_producer_.find(index); it != add_to_producer_.end()) {
    const Node& producer = g_.nodes[it->second];
    return producer.op_type == "Conv" ? emit_conv(producer, &n) : emit_resize(producer, &n);
  }
  if (const std::string why = unsupported_reason(g_, n); !why.empty()) graph::unsupported_node(n, why);
  const std::string& op = n.op_type;
  if (op == "Conv") return emit_conv(n, nullptr);
  if (op == "MaxPool" || op == "AveragePool") return emit_pool(n);
  if (op == "GlobalAveragePool") return emit_global_pool(n);
  if (op == "Gemm") return emit_gemm(n);
  if (op == "MatMul") return emit_matmul(n);
  if (is_variadic(op) && n.inputs.size() == 1) return emit_unary(n, Activation::none());
  if (is_variadic(op) && n.inputs.size() > 2) return emit_variadic(n);
  if (!binary_body(op).empty()) return emit_binary(n);
  if (op == "BatchNormalization") return emit_batchnorm(n);
  if (op == "Softmax") return emit_softmax(n);
  if (op == "Concat") return emit_concat(n);
  if (op == "Transpose") return emit_transpose(n);
  if (op == "Pad") return emit_pad(n);
  if (op == "Gather") return emit_gather(n);
  if (op.rfind("Reduce", 0) == 0) return emit_reduce(n);
  if (op == "Slice") return emit_slice(n);
  if (op == "Split") return emit_split(n);
  if (op == "Expand") return emit_expand(n);
  if (op == "Tile") return emit_tile(n);
  if (op == "DepthToSpace" || op == "SpaceToDepth") return emit_depth_space(n);
  if (op == "Resize" || op == "Upsample") return emit_resize(n, nullptr);
  if (op == "LayerNormalization") return emit_layer_norm(n);
  if (op == graph::kChannelLayerNorm || op == "InstanceNormalization") return emit_channel_norm(n);
  if (op == "LRN") return emit_lrn(n);
  if (op == "ConvTranspose") return emit_conv_transpose(n);
  if (planner::is_view_op(n) || op == "Cast") {
    if (parent_[static_cast<std::size_t>(n.outputs[0])] != kNoValue) return;  // aliased: no kernel
    return emit_unary(n, Activation::none());
  }
  if (const std::string body = unary_math_body(n); !body.empty()) return emit_unary(n, lowercase(op), body);
  Activation a;
  if (op == "Relu") {
    a.kind = Activation::Kind::Relu;
  } else if (op == "LeakyRelu") {
    a.kind = Activation::Kind::LeakyRelu;
    a.alpha = n.attrs.get_float("alpha", 0.01f);
  } else if (op == "Sigmoid") {
    a.kind = Activation::Kind::Sigmoid;
  } else if (op == "HardSigmoid") {
    a.kind = Activation::Kind::HardSigmoid;
    a.alpha = n.attrs.get_float("alpha", 0.2f);
    a.beta = n.attrs.get_float("beta", 0.5f);
  } else if (op == "HardSwish") {
    a.kind = Activation::Kind::HardSwish;
  } else if (op == "Clip") {
    a.kind = Activation::Kind::Clip;
    a.alpha = -std::numeric_limits<float>::infinity();
    a.beta = std::numeric_limits<float>::infinity();
    for (std::size_t i = 1; i < 3; ++i) {
      if (i >= n.inputs.size() || n.inputs[i] == kNoValue) {
        const char* attr = i == 1 ? "min" : "max";
        if (n.attrs.has(attr)) (i == 1 ? a.alpha : a.beta) = n.attrs.get_float(attr, 0.f);
        continue;
      }
      (i == 1 ? a.alpha : a.beta) = static_cast<float>(g_.constant_input(n, i)->as_double(0));
    }
  } else {
    throw Error(ErrorKind::Internal, "GPU lowering: no emitter for supported op '" + op + "'");
  }
  emit_unary(n, a);
}

// ---- Conv -------------------------------------------------------------------

void Lowering::emit_conv(const Node& n, const Node* add) {
  const Tensor* W = g_.constant_input(n, 1);
  if (!W) graph::unsupported_node(n, "a Conv whose weights are not constant (the GPU backend packs them at load)");
  const Tensor* B = n.inputs.size() > 2 ? g_.constant_input(n, 2) : nullptr;
  if (n.inputs.size() > 2 && n.inputs[2] != kNoValue && !B)
    graph::unsupported_node(n, "a Conv whose bias is not constant");
  // A gating Mul (squeeze-and-excitation) applied as the input is loaded:
  // the Conv reads the Mul's operands, never the gated tensor.
  const auto gate_it = conv_to_mul_.find(static_cast<std::size_t>(&n - g_.nodes.data()));
  const Node* gate_mul = gate_it == conv_to_mul_.end() ? nullptr : &g_.nodes[gate_it->second];
  const ValueId x = gate_mul ? fusion_.gated_input(static_cast<int>(gate_it->second)) : n.inputs[0];
  const ValueId gate = gate_mul ? gate_mul->other_input(x) : kNoValue;
  const ValueId y = add ? add->outputs[0] : n.outputs[0];
  if (g_.value(x).dtype != DType::f32) graph::unsupported_node(n, "a non-float input");
  const Shape& xs = shape(x);
  const Shape& ws = W->shape();
  const Shape& ys = shape(n.outputs[0]);
  const std::size_t nsp = xs.size() - 2;
  const std::int64_t N = xs[0], C = xs[1], M = ws[0];
  const std::int64_t groups = n.attrs.get_int("group", 1);
  const std::int64_t CG = C / groups, MG = M / groups;
  std::vector<std::int64_t> kernel(ws.begin() + 2, ws.end());
  auto strides = n.attrs.get_ints("strides", std::vector<std::int64_t>(nsp, 1));
  auto dil = n.attrs.get_ints("dilations", std::vector<std::int64_t>(nsp, 1));
  std::vector<std::int64_t> pb, pe;
  resolve_pads(n, xs, kernel, strides, dil, pb, pe);
  auto isz = to3(std::vector<std::int64_t>(xs.begin() + 2, xs.end()), 1);
  auto osz = to3(std::vector<std::int64_t>(ys.begin() + 2, ys.end()), 1);
  auto k = to3(kernel, 1), s = to3(strides, 1), d = to3(dil, 1), p = to3(pb, 0);
  const std::int64_t kvol = k[0] * k[1] * k[2];
  const bool pointwise = kvol == 1 && s[0] == 1 && s[1] == 1 && s[2] == 1 && p[0] == 0 && p[1] == 0 && p[2] == 0;
  if (pointwise) {  // a 1x1 convolution is a GEMM over the flattened plane
    const std::int64_t plane = isz[0] * isz[1] * isz[2];
    isz = {1, 1, plane};
    osz = {1, 1, plane};
  }
  const std::int64_t wg = caps_.workgroup_size;
  // One range of output channels per kernel whose weights fit one storage
  // buffer (planner::weight_split; one range unless the weights are huge).
  const std::int64_t split = planner::weight_split(g_, n);
  if (split <= 0) graph::unsupported_node(n, "weights too large for one storage buffer per output channel block");
  const std::string nodes = (gate_mul ? gate_mul->name + "+" : "") + n.name + (add ? "+" + add->name : "");
  const std::string epilogue =
      act_suffix(n.activation) + (add ? "_res" + act_suffix(add->activation) : "") + (gate_mul ? "_gated" : "");
  // (Not for planes of a few pixels: a squeeze-and-excitation's 1x1s on
  // pooled maps would fill a tile's 64 pixel columns with one.)
  if (pointwise && caps_.pointwise_tiled && groups == 1 && MG > 1 && osz[2] >= 16 && (wg == 64 || wg == 256)) {
    // A GEMM tiled through shared memory (shaders/pointwise_tiled.glsl):
    // tiles of 8*TG channels x 8*TG pixels, TG x TG invocations a workgroup.
    const std::int64_t tg = wg == 64 ? 8 : 16, tm = 8 * tg, plane = osz[2];
    for (std::int64_t m0 = 0; m0 < MG; m0 += split) {
      const std::int64_t mc = std::min(split, MG - m0);
      const std::int64_t mp = (mc + tm - 1) / tm * tm;
      Kernel kern;
      kern.variant = "conv1x1_tiled" + std::to_string(tm) + epilogue;
      kern.nodes = nodes;
      name_part(kern, "channels", m0, mc, MG);
      kern.flops = 2 * N * mc * plane * C;
      // Packed weights: [c][mp] (a tile's channels contiguous), then mp biases.
      kern.weights.assign(static_cast<std::size_t>(C * mp + (B ? mp : 0)), 0.f);
      for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t m = 0; m < mc; ++m)
          kern.weights[static_cast<std::size_t>(c * mp + m)] = W->f32()[(m0 + m) * C + c];
      if (B)
        for (std::int64_t m = 0; m < mc; ++m) kern.weights[static_cast<std::size_t>(C * mp + m)] = B->f32()[m0 + m];
      Defines def;
      def("N", N)("C", C)("M", M)("M0", m0)("MG", mc)("MP", mp)("P", plane)("TG", tg);
      def("HAS_BIAS", B ? 1 : 0)("HAS_RES", add ? 1 : 0)("HAS_GATE", gate_mul ? 1 : 0);
      kern.slots = {output(y), input(x), weights()};
      if (add) kern.slots.push_back(input(add->other_input(n.outputs[0])));
      if (gate_mul) named_slot(kern, def, "GATE", input(gate));
      const std::int64_t tiles = N * (mp / tm) * ((plane + tm - 1) / tm);
      finish(std::move(kern), tiles * wg, def, "pointwise_tiled", n.activation,
             add ? add->activation : Activation::none(), tiles);
    }
    return;
  }
  // Register blocking (measured on lavapipe, ResNet-18: 16x8 beats 8x8 by
  // ~15% and 8x4 by ~40% in CPU time; larger blocks compile for minutes),
  // capped by the device's preference (DeviceCaps::conv_ocb/conv_opx).
  const std::int64_t cap_ocb = pointwise && caps_.pointwise_ocb ? caps_.pointwise_ocb
                               : kvol > 9                         ? caps_.conv_ocb_wide
                                                                  : caps_.conv_ocb;
  const std::int64_t cap_opx = pointwise && caps_.pointwise_opx ? caps_.pointwise_opx : caps_.conv_opx;
  std::int64_t ocb = MG == 1 ? 1 : std::min<std::int64_t>(MG <= 4 ? 4 : (MG <= 8 ? 8 : 16), cap_ocb);
  std::int64_t opx = ocb == 1 ? 8 : std::min<std::int64_t>(osz[2] <= 4 ? 4 : 8, cap_opx);
  if (const char* e = std::getenv("VKFUSE_CONV_BLOCK"); e && ocb > 1) {  // tuning knob: "OCBxOPX"
    int a = 0, b = 0;
    if (std::sscanf(e, "%dx%d", &a, &b) == 2 && (a == 4 || a == 8 || a == 12 || a == 16) && b >= 1 && b <= 16) {
      ocb = a;
      opx = b;
    }
  }
  const std::int64_t owb = (osz[2] + opx - 1) / opx;
  // Split over input channels (one output tile per KSPLIT lanes of a
  // workgroup, their partial sums added in shared memory) where the layer
  // has too few tiles to fill the device: each lane keeps >= 4 channels, the
  // partial sums must fit in shared memory.
  const std::int64_t tiles = N * groups * ((MG + ocb - 1) / ocb) * osz[0] * osz[1] * owb;
  const auto split_fits = [&](std::int64_t k) {
    return k >= 1 && k <= wg && wg % k == 0 && (k & (k - 1)) == 0 && ocb >= 4 && CG >= 4 * k &&
           ocb * opx * wg * 4 <= static_cast<std::int64_t>(caps_.shared_memory_bytes);
  };
  std::int64_t ksplit = 1;
  if (caps_.conv_fill_invocations > 0 && MG > 1)
    while (tiles * ksplit < caps_.conv_fill_invocations && split_fits(ksplit * 2)) ksplit *= 2;
  if (const char* e = std::getenv("VKFUSE_CONV_KSPLIT"); e && *e && MG > 1) {  // tuning knob
    const long k = std::strtol(e, nullptr, 10);
    if (k == 1 || split_fits(k)) ksplit = k;
  }
  std::string kname = nsp == 2 ? std::to_string(kernel[0]) + "x" + std::to_string(kernel[1])
                               : std::to_string(kvol) + "tap";
  const std::string variant = std::string(MG == 1 && CG == 1 ? "dwconv" : "conv") + (pointwise ? "1x1" : kname) +
                              (pointwise ? "" : "_s" + std::to_string(s[2])) +
                              (groups > 1 && CG > 1 ? "_g" + std::to_string(groups) : "") + "_ob" +
                              std::to_string(ocb) + "_px" + std::to_string(opx) + epilogue +
                              (ksplit > 1 ? "_k" + std::to_string(ksplit) : "");

  for (std::int64_t m0 = 0; m0 < MG; m0 += split) {
    const std::int64_t mc = std::min(split, MG - m0);  // this kernel's channels (per group)
    const std::int64_t mgp = (mc + ocb - 1) / ocb * ocb;
    const std::int64_t mblk = mgp / ocb;
    Kernel kern;
    kern.variant = variant;
    kern.nodes = nodes;
    name_part(kern, "channels", m0, mc, MG);
    kern.flops = 2 * N * groups * mc * osz[0] * osz[1] * osz[2] * CG * kvol;

    // Packed weights: [g][mb][ci][kvol][ocb], then bias [g][mgp].
    const float* w = W->f32();
    kern.weights.assign(static_cast<std::size_t>(groups * mblk * CG * kvol * ocb + (B ? groups * mgp : 0)), 0.f);
    float* pw = kern.weights.data();
    for (std::int64_t gi = 0; gi < groups; ++gi)
      for (std::int64_t mb = 0; mb < mblk; ++mb)
        for (std::int64_t ci = 0; ci < CG; ++ci)
          for (std::int64_t kv = 0; kv < kvol; ++kv)
            for (std::int64_t o = 0; o < ocb; ++o) {
              const std::int64_t col = mb * ocb + o;
              const std::size_t dst = static_cast<std::size_t>((((gi * mblk + mb) * CG + ci) * kvol + kv) * ocb + o);
              if (col < mc) pw[dst] = w[((gi * MG + m0 + col) * CG + ci) * kvol + kv];
            }
    if (B) {
      float* pbias = pw + groups * mblk * CG * kvol * ocb;
      for (std::int64_t gi = 0; gi < groups; ++gi)
        for (std::int64_t col = 0; col < mc; ++col) pbias[gi * mgp + col] = B->f32()[gi * MG + m0 + col];
    }

    Defines def;
    // Pushed: the sizes that differ between layers of one kind (depthwise
    // layers' group count included). A part's first channel stays baked in (0
    // but where weights are split).
    def.dim("N", N).dim("C", C).dim("M", M).dim("GROUPS", groups).dim("CG", CG).dim("MG", mc).dim("MGP", mgp);
    def("M0", m0)("OCB", ocb)("OPX", opx);
    def("ID", isz[0]).dim("IH", isz[1]).dim("IW", isz[2])("OD", osz[0]).dim("OH", osz[1]).dim("OW", osz[2]);
    def("KD", k[0])("KH", k[1])("KW", k[2])("SD", s[0])("SH", s[1])("SW", s[2]);
    def("DLD", d[0])("DLH", d[1])("DLW", d[2])("PD", p[0])("PH", p[1])("PW", p[2]);
    def("HAS_BIAS", B ? 1 : 0)("HAS_RES", add ? 1 : 0)("HAS_GATE", gate_mul ? 1 : 0)("KSPLIT", ksplit);
    def("TEXEL_X", caps_.texel_arena ? 1 : 0)("TEXEL_W", caps_.texel_weights ? 1 : 0);
    kern.fp16_weights = caps_.fp16 && caps_.texel_weights && ocb >= 4;
    def("FP16_W", kern.fp16_weights ? 1 : 0);
    if (kern.fp16_weights) kern.variant += "_w16";
    kern.slots = {output(y), input(x), weights()};
    if (add) kern.slots.push_back(input(add->other_input(n.outputs[0])));
    if (gate_mul) named_slot(kern, def, "GATE", input(gate));
    const std::int64_t total = N * groups * mblk * osz[0] * osz[1] * owb;  // output tiles
    const std::int64_t tiles_per_group = wg / ksplit;
    finish(std::move(kern), total, def, "conv", n.activation, add ? add->activation : Activation::none(),
           ksplit > 1 ? (total + tiles_per_group - 1) / tiles_per_group : 0);
  }
}

// ---- pooling ----------------------------------------------------------------

void Lowering::emit_pool(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Shape& xs = shape(x);
  const Shape& ys = shape(y);
  const std::size_t nsp = xs.size() - 2;
  auto kernel = n.attrs.get_ints("kernel_shape");
  auto strides = n.attrs.get_ints("strides", std::vector<std::int64_t>(nsp, 1));
  auto dil = n.attrs.get_ints("dilations", std::vector<std::int64_t>(nsp, 1));
  std::vector<std::int64_t> pb, pe;
  resolve_pads(n, xs, kernel, strides, dil, pb, pe);
  const auto isz = to3(std::vector<std::int64_t>(xs.begin() + 2, xs.end()), 1);
  const auto osz = to3(std::vector<std::int64_t>(ys.begin() + 2, ys.end()), 1);
  const auto k = to3(kernel, 1), s = to3(strides, 1), d = to3(dil, 1), p = to3(pb, 0), q = to3(pe, 0);
  const bool is_max = n.op_type == "MaxPool";
  Kernel kern;
  kern.variant = std::string(is_max ? "maxpool" : "avgpool") + std::to_string(k[1]) + "x" + std::to_string(k[2]) +
                 "_s" + std::to_string(s[2]) + act_suffix(n.activation);
  kern.nodes = n.name;
  const std::int64_t total = graph::element_count(ys);
  kern.flops = total * k[0] * k[1] * k[2];
  Defines def;
  def("ID", isz[0])("IH", isz[1])("IW", isz[2])("OD", osz[0])("OH", osz[1])("OW", osz[2]);
  def("KD", k[0])("KH", k[1])("KW", k[2])("SD", s[0])("SH", s[1])("SW", s[2]);
  def("DLD", d[0])("DLH", d[1])("DLW", d[2])("PD", p[0])("PH", p[1])("PW", p[2]);
  def("PED", q[0])("PEH", q[1])("PEW", q[2]);
  def("IS_MAX", is_max ? 1 : 0)("COUNT_PAD", n.attrs.get_int("count_include_pad", 0) == 1 ? 1 : 0);
  def("TEXEL_X", caps_.texel_arena ? 1 : 0);
  kern.slots = {output(y), input(x)};
  finish(std::move(kern), total, def, "pool", Activation::none(), n.activation);
}

void Lowering::emit_global_pool(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Shape& xs = shape(x);
  const std::int64_t planes = xs[0] * xs[1];
  Kernel kern;
  kern.variant = "global_avgpool" + act_suffix(n.activation);
  kern.nodes = n.name;
  kern.flops = numel(x);
  Defines def;
  def("PLANE", planes ? numel(x) / planes : 1);
  kern.slots = {output(y), input(x)};
  finish_rows(std::move(kern), planes, def, "global_pool", n.activation);
}

// ---- Gemm / MatMul ----------------------------------------------------------

void Lowering::emit_gemm(const Node& n) {
  const ValueId a = n.inputs[0], b = n.inputs[1], y = n.outputs[0];
  const ValueId c = n.inputs.size() > 2 ? n.inputs[2] : kNoValue;
  const Shape& as = shape(a);
  const Shape& bs = shape(b);
  const bool ta = n.attrs.get_int("transA", 0) != 0, tb = n.attrs.get_int("transB", 0) != 0;
  const std::int64_t M = ta ? as[1] : as[0], K = ta ? as[0] : as[1], N = tb ? bs[0] : bs[1];
  const Tensor* bt = g_.constant_input(n, 1);
  // One kernel per range of output columns whose packed B fits one storage
  // buffer (planner::weight_split; one range unless B is huge).
  const std::int64_t split = planner::weight_split(g_, n);
  if (split <= 0) graph::unsupported_node(n, "a B too large for one storage buffer per output column");
  for (std::int64_t n0 = 0; n0 < N; n0 += split) {
    const std::int64_t nc = std::min(split, N - n0);  // this kernel's columns
    Kernel kern;
    kern.variant = "gemm" + act_suffix(n.activation);
    kern.nodes = n.name;
    name_part(kern, "columns", n0, nc, N);
    kern.flops = 2 * M * nc * K;
    Defines def;
    def("GM", M)("GN", nc)("GK", K)("GNT", N)("N0", n0);
    def("ASI", ta ? 1 : K)("ASK", ta ? M : 1);
    def.raw("ALPHA", flit(n.attrs.get_float("alpha", 1.f))).raw("BETA", flit(n.attrs.get_float("beta", 1.f)));
    kern.slots = {output(y), input(a)};
    if (bt) {
      // Repack op(B)'s columns n0.. to [nc][K]: each output's K vector contiguous.
      kern.weights.resize(static_cast<std::size_t>(nc * K));
      const float* bp = bt->f32();
      for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t j = 0; j < nc; ++j)
          kern.weights[static_cast<std::size_t>(j * K + k)] = tb ? bp[(n0 + j) * K + k] : bp[k * N + n0 + j];
      def("B_IN_WEIGHTS", 1)("BSJ", K)("BSK", 1);
      kern.slots.push_back(weights());
    } else {
      def("B_IN_WEIGHTS", 0)("BSJ", tb ? K : 1)("BSK", tb ? 1 : N);
      kern.slots.push_back(input(b));
    }
    if (c != kNoValue) {
      const Shape& cs = shape(c);
      const std::int64_t cm = cs.size() == 2 ? cs[0] : 1;
      const std::int64_t cn = cs.empty() ? 1 : cs.back();
      def("HAS_C", 1)("CSI", cm == 1 ? 0 : cn)("CSJ", cn == 1 ? 0 : 1);
      kern.slots.push_back(input(c));
    } else {
      def("HAS_C", 0);
    }
    def.code("uint a_batch(uint b) { return 0u; }\nuint b_batch(uint b) { return 0u; }\n");
    finish_gemm(std::move(kern), M * nc, K, def, n.activation);
  }
}

void Lowering::emit_matmul(const Node& n) {
  const ValueId a = n.inputs[0], b = n.inputs[1], y = n.outputs[0];
  Shape a2 = shape(a), b2 = shape(b);
  if (a2.size() == 1) a2.insert(a2.begin(), 1);
  if (b2.size() == 1) b2.push_back(1);
  const std::int64_t M = a2[a2.size() - 2], K = a2.back(), N = b2.back();
  Shape ab(a2.begin(), a2.end() - 2), bb(b2.begin(), b2.end() - 2);
  const Shape batch = graph::broadcast_shapes(n, ab, bb);
  // Batch offsets in elements: broadcast strides over the batch dims, scaled by the matrix size.
  auto batch_fn = [&](const std::string& name, const Shape& ob, std::int64_t matrix) {
    auto st = broadcast_strides(ob, batch);
    for (auto& v : st) v *= matrix;
    return index_function("uint", name, batch, st, 0);
  };
  Kernel kern;
  kern.variant = "matmul" + act_suffix(n.activation);
  kern.nodes = n.name;
  const std::int64_t batches = graph::element_count(batch);
  kern.flops = 2 * batches * M * N * K;
  Defines def;
  def("GM", M)("GN", N)("GK", K)("ASI", K)("ASK", 1)("BSJ", 1)("BSK", N)("B_IN_WEIGHTS", 0)("HAS_C", 0);
  def.raw("ALPHA", "1.0").raw("BETA", "0.0");
  if (batch.empty()) {
    def.code("uint a_batch(uint b) { return 0u; }\nuint b_batch(uint b) { return 0u; }\n");
  } else {
    def.code(batch_fn("a_batch", ab, M * K) + batch_fn("b_batch", bb, K * N));
  }
  kern.slots = {output(y), input(a), input(b)};
  finish_gemm(std::move(kern), batches * M * N, K, def, n.activation);
}

// ---- elementwise ------------------------------------------------------------

void Lowering::emit_binary(const Node& n) {
  const ValueId a = n.inputs[0], b = n.inputs[1], y = n.outputs[0];
  const Shape& ys = shape(y);
  Kernel kern;
  const std::string op = lowercase(n.op_type);
  // A constant scalar exponent is baked in (Pow's is often int64).
  const Tensor* bconst = n.op_type == "Pow" ? g_.constant_input(n, 1) : nullptr;
  const bool b_literal = bconst && bconst->numel() == 1;
  kern.variant = op + (shape(a) == ys && (b_literal || shape(b) == ys) ? "" : "_broadcast") + act_suffix(n.activation);
  kern.nodes = n.name;
  const std::int64_t total = graph::element_count(ys);
  kern.flops = total;
  Defines def;
  def.raw("BINOP(a, b)", binary_body(n.op_type));
  def.code(index_function("uint", "a_index", ys, broadcast_strides(shape(a), ys)));
  kern.slots = {output(y), input(a)};
  if (b_literal) {
    def.raw("B_LITERAL", flit(static_cast<float>(bconst->as_double(0))));
  } else {
    def.code(index_function("uint", "b_index", ys, broadcast_strides(shape(b), ys)));
    kern.slots.push_back(input(b));
  }
  finish(std::move(kern), total, def, "binary", Activation::none(), n.activation);
}

// Sum/Max/Min/Mean of three to seven broadcast inputs, folded left to right
// in one kernel (slots o1..o7; the push constants hold eight offsets).
void Lowering::emit_variadic(const Node& n) {
  const ValueId y = n.outputs[0];
  const Shape& ys = shape(y);
  const std::string& op = n.op_type;
  const std::string step = op == "Max" ? "max(s, v)" : op == "Min" ? "min(s, v)" : "((s) + (v))";
  Kernel kern;
  kern.variant = lowercase(op) + std::to_string(n.inputs.size()) + act_suffix(n.activation);
  kern.nodes = n.name;
  const std::int64_t total = graph::element_count(ys);
  kern.flops = total * static_cast<std::int64_t>(n.inputs.size() - 1);
  kern.slots = {output(y)};
  Defines def;
  std::string fold = "float combine(uint i) {\n";
  for (std::size_t k = 0; k < n.inputs.size(); ++k) {
    const std::string idx = "in" + std::to_string(k) + "_index";
    def.code(index_function("uint", idx, ys, broadcast_strides(shape(n.inputs[k]), ys)));
    const std::string slot = std::to_string(k + 1);
    const std::string v = "ARENA(" + slot + ")[pc.o" + slot + " + " + idx + "(i)]";
    fold += k == 0 ? "  float s = " + v + ";\n" : "  { const float v = " + v + "; s = " + step + "; }\n";
    kern.slots.push_back(input(n.inputs[k]));
  }
  fold += op == "Mean" ? "  return s / " + flit(static_cast<float>(n.inputs.size())) + ";\n}\n" : "  return s;\n}\n";
  def.code(fold);
  finish(std::move(kern), total, def, "variadic", Activation::none(), n.activation);
}

void Lowering::emit_unary(const Node& n, const Activation& act1) {
  emit_unary(n, act1.kind == Activation::Kind::None ? "copy" : act1.name(), act_body(act1));
}

void Lowering::emit_unary(const Node& n, const std::string& variant, const std::string& body) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  Kernel kern;
  kern.variant = variant + act_suffix(n.activation);
  kern.nodes = n.name;
  kern.flops = numel(y);
  Defines def;
  def("HAS_AFFINE", 0);
  kern.slots = {output(y), input(x)};
  finish(std::move(kern), numel(y), def, "unary", body, n.activation);
}

void Lowering::emit_batchnorm(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Tensor* t[5] = {};
  for (std::size_t i = 1; i < 5; ++i) {
    t[i] = g_.constant_input(n, i);
    if (!t[i]) graph::unsupported_node(n, "BatchNormalization parameters that are not constants");
  }
  const Shape& xs = shape(x);
  const std::int64_t N = xs[0], C = xs[1];
  const std::int64_t plane = N * C > 0 ? numel(x) / (N * C) : 1;
  const double eps = n.attrs.get_float("epsilon", 1e-5f);
  Kernel kern;
  kern.variant = "batchnorm" + act_suffix(n.activation);
  kern.nodes = n.name;
  kern.flops = 2 * numel(x);
  kern.weights.resize(static_cast<std::size_t>(2 * C));
  for (std::int64_t c = 0; c < C; ++c) {
    const double a = static_cast<double>(t[1]->f32()[c]) / std::sqrt(static_cast<double>(t[4]->f32()[c]) + eps);
    kern.weights[static_cast<std::size_t>(c)] = static_cast<float>(a);
    kern.weights[static_cast<std::size_t>(C + c)] =
        static_cast<float>(static_cast<double>(t[2]->f32()[c]) - static_cast<double>(t[3]->f32()[c]) * a);
  }
  Defines def;
  def("HAS_AFFINE", 1)("PLANE", plane)("CH", C);
  kern.slots = {output(y), input(x), weights()};
  finish(std::move(kern), numel(x), def, "unary", Activation::none(), n.activation);
}

void Lowering::emit_softmax(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const auto [outer, len, inner] = graph::softmax_layout(n, g_.opset, shape(x));
  Kernel kern;
  kern.variant = "softmax" + act_suffix(n.activation);
  kern.nodes = n.name;
  kern.flops = 3 * numel(x);
  Defines def;
  def("LEN", len)("INNER", inner);
  kern.slots = {output(y), input(x)};
  finish_rows(std::move(kern), outer * inner, def, "softmax", n.activation);
}

// ---- data movement ----------------------------------------------------------

void Lowering::emit_remap(const Node& n, const std::string& variant, ValueId in, ValueId out, std::int64_t total,
                          const std::string& src_fn, const std::string& dst_fn, float fill,
                          std::vector<float> packed) {
  Kernel kern;
  kern.variant = variant + act_suffix(n.activation);
  kern.nodes = n.name;
  Defines def;
  def("USES_INDICES", packed.empty() ? 0 : 1).raw("FILL", flit(fill));
  def.code(src_fn + dst_fn);
  kern.slots = {output(out), input(in)};
  if (!packed.empty()) kern.slots.push_back(weights());
  kern.weights = std::move(packed);
  finish(std::move(kern), total, def, "remap", Activation::none(), n.activation);
}

void Lowering::emit_concat(const Node& n) {
  const ValueId y = n.outputs[0];
  const Shape& ys = shape(y);
  const auto rank = static_cast<std::int64_t>(ys.size());
  std::int64_t axis = n.attrs.get_int("axis", 0);
  if (axis < 0) axis += rank;
  std::int64_t outer = 1;
  for (std::int64_t k = 0; k < axis; ++k) outer *= ys[static_cast<std::size_t>(k)];
  const std::int64_t out_chunk = outer ? graph::element_count(ys) / outer : 0;
  std::int64_t start = 0;
  for (ValueId v : n.inputs) {
    const std::int64_t chunk = outer ? numel(v) / outer : 0;
    const bool aliased = parent_[static_cast<std::size_t>(v)] == y;
    if (!aliased && chunk > 0) {
      const std::string c = std::to_string(chunk) + "u";
      const std::string dst = "uint dst_index(uint i) { return (i / " + c + ") * " + std::to_string(out_chunk) +
                              "u + " + std::to_string(start) + "u + i % " + c + "; }\n";
      emit_remap(n, "concat_copy", v, y, outer * chunk, "int src_index(uint i) { return int(i); }\n", dst, 0.f, {});
    }
    start += chunk;
  }
}

void Lowering::emit_transpose(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  emit_remap(n, "transpose", x, y, numel(y),
             index_function("int", "src_index", shape(y), graph::transpose_read(n, shape(x)).stride),
             "uint dst_index(uint i) { return i; }\n", 0.f, {});
}

void Lowering::emit_pad(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Shape& xs = shape(x);
  const Shape& ys = shape(y);
  std::vector<std::int64_t> pads;
  if (n.inputs.size() > 1 && n.inputs[1] != kNoValue) {
    const Tensor* t = g_.constant_input(n, 1);
    if (!t) graph::unsupported_node(n, "pads that are not constant");
    pads = t->to_ints();
  } else {
    pads = n.attrs.get_ints("pads");
  }
  float fill = n.attrs.get_float("value", 0.f);
  if (n.inputs.size() > 2 && n.inputs[2] != kNoValue) {
    const Tensor* t = g_.constant_input(n, 2);
    if (!t) graph::unsupported_node(n, "a constant_value that is not constant");
    fill = static_cast<float>(t->as_double(0));
  }
  const std::string mode = n.attrs.get_string("mode", "constant");
  const auto strides = row_major_strides(xs);
  const std::size_t rank = xs.size();
  std::string f = "int src_index(uint i) {\n  int s = 0;\n";
  for (std::size_t k = rank; k-- > 0;) {
    const std::int64_t nk = xs[k], b = pads[k];
    f += "  { int c = int(i % " + std::to_string(ys[k]) + "u) - (" + std::to_string(b) + "); i /= " +
         std::to_string(ys[k]) + "u;\n";
    if (mode == "constant") {
      f += "    if (c < 0 || c >= " + std::to_string(nk) + ") return -1;\n";
    } else if (mode == "edge") {
      f += "    c = clamp(c, 0, " + std::to_string(nk - 1) + ");\n";
    } else {  // reflect
      if (nk == 1) {
        f += "    c = 0;\n";
      } else {
        const std::int64_t period = 2 * (nk - 1);
        const std::int64_t shift = period * ((std::abs(b) + ys[k]) / period + 1);
        f += "    c = (c + " + std::to_string(shift) + ") % " + std::to_string(period) + ";\n";
        f += "    if (c >= " + std::to_string(nk) + ") c = " + std::to_string(period) + " - c;\n";
      }
    }
    f += "    s += c * " + std::to_string(strides[k]) + "; }\n";
  }
  f += "  return s;\n}\n";
  emit_remap(n, "pad_" + mode, x, y, numel(y), f, "uint dst_index(uint i) { return i; }\n", fill, {});
}

void Lowering::emit_gather(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Tensor* idx = g_.constant_input(n, 1);
  if (!idx) graph::unsupported_node(n, "Gather indices that are not constant");
  const Shape& xs = shape(x);
  auto axis = n.attrs.get_int("axis", 0);
  if (axis < 0) axis += static_cast<std::int64_t>(xs.size());
  std::int64_t inner = 1;
  for (std::size_t k = static_cast<std::size_t>(axis) + 1; k < xs.size(); ++k) inner *= xs[k];
  const std::int64_t dim = xs[static_cast<std::size_t>(axis)];
  const std::int64_t nidx = idx->numel();
  std::vector<float> words(static_cast<std::size_t>(std::max<std::int64_t>(nidx, 1)));
  for (std::int64_t j = 0; j < nidx; ++j) {
    std::int64_t v = idx->as_int(j);
    if (v < -dim || v >= dim) graph::fail_node(n, "index " + std::to_string(v) + " is out of range");
    const auto u = static_cast<std::uint32_t>(v < 0 ? v + dim : v);
    std::memcpy(&words[static_cast<std::size_t>(j)], &u, sizeof u);
  }
  const std::string in = std::to_string(inner) + "u", ni = std::to_string(std::max<std::int64_t>(nidx, 1)) + "u";
  const std::string f = "layout(std430, set = 0, binding = 1) readonly buffer Weights { uint wu[]; };\n"
                        "int src_index(uint i) {\n  const uint r = i % " + in + "; i /= " + in + ";\n" +
                        "  const uint j = i % " + ni + "; const uint o = i / " + ni + ";\n" +
                        "  return int((o * " + std::to_string(dim) + "u + wu[pc.o2 + j]) * " + in + " + r);\n}\n";
  emit_remap(n, "gather", x, y, numel(y), f, "uint dst_index(uint i) { return i; }\n", 0.f, std::move(words));
}


// ---- reductions, slicing, broadcasting, resizing -----------------------------

void Lowering::emit_reduce(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  ReduceLayout l;
  reduce_layout(g_, n, l);
  if (l.identity) return emit_unary(n, Activation::none());
  const std::string& op = n.op_type;
  std::string init = "0.0", acc = "((s) + (v))", fin = "(s)";
  if (op == "ReduceMean") fin = "((s) / " + flit(static_cast<float>(l.len)) + ")";
  else if (op == "ReduceMax") init = "uintBitsToFloat(0xff800000u)", acc = "max(s, v)";
  else if (op == "ReduceMin") init = "uintBitsToFloat(0x7f800000u)", acc = "min(s, v)";
  else if (op == "ReduceProd") init = "1.0", acc = "((s) * (v))";
  else if (op == "ReduceL1") acc = "((s) + abs(v))";
  else if (op == "ReduceL2") acc = "((s) + (v) * (v))", fin = "sqrt(s)";
  else if (op == "ReduceSumSquare") acc = "((s) + (v) * (v))";
  else if (op == "ReduceLogSum") fin = "log(s)";
  std::string state = "float";
  Defines def;
  if (op == "ReduceLogSumExp") {
    // Online, as the reference: the running max and the sum of exp(v - max),
    // so that large inputs do not overflow.
    state = "vec2", init = "vec2(uintBitsToFloat(0xff800000u), 0.0)", acc = "lse_step(s, v)",
    fin = "((s).x + log((s).y))";
    def.code(
        "vec2 lse_step(vec2 a, float v) {\n"
        "  if (v > a.x) return vec2(v, a.y * exp(a.x - v) + 1.0);\n"
        "  if (isinf(v)) return a;  // -inf adds nothing (and -inf - -inf is NaN)\n"
        "  return vec2(a.x, a.y + exp(v - a.x));\n}\n");
  }
  Kernel kern;
  kern.variant = "reduce_" + lowercase(op.substr(6)) + act_suffix(n.activation);
  kern.nodes = n.name;
  kern.flops = numel(x);
  def("LEN", l.len)("INNER", l.inner).raw("STATE", state).raw("INIT", init).raw("ACC(s, v)", acc).raw("FINISH(s)", fin);
  kern.slots = {output(y), input(x)};
  // Partial results of a float state combine as the op folds: products,
  // extremes, or sums (every other op accumulates a sum before FINISH).
  def("COMBINE", op == "ReduceMax" ? 1 : op == "ReduceMin" ? 2 : op == "ReduceProd" ? 3 : 0);
  finish_rows(std::move(kern), l.outer * l.inner, def, "reduce", n.activation, state == "float");
}

void Lowering::emit_slice(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const graph::SlicePlan p = graph::slice_plan(graph::OpContext{n, g_.opset}, graph::input_infos(g_, n));
  const graph::StridedRead r = graph::slice_read(p, shape(x));
  emit_remap(n, "slice", x, y, numel(y), signed_index_function("src_index", shape(y), r.stride, r.offset),
             "uint dst_index(uint i) { return i; }\n", 0.f, {});
}

void Lowering::emit_split(const Node& n) {
  const ValueId x = n.inputs[0];
  std::vector<Shape> outs;
  for (ValueId y : n.outputs) outs.push_back(shape(y));
  const auto reads = graph::split_reads(n, shape(x), outs);
  for (std::size_t j = 0; j < n.outputs.size(); ++j)
    if (numel(n.outputs[j]) > 0)
      emit_remap(n, "split", x, n.outputs[j], numel(n.outputs[j]),
                 index_function("int", "src_index", outs[j], reads[j].stride, reads[j].offset),
                 "uint dst_index(uint i) { return i; }\n", 0.f, {});
}

void Lowering::emit_expand(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  emit_remap(n, "expand", x, y, numel(y), index_function("int", "src_index", shape(y), broadcast_strides(shape(x), shape(y))),
             "uint dst_index(uint i) { return i; }\n", 0.f, {});
}

void Lowering::emit_tile(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Shape& xs = shape(x);
  const Shape& ys = shape(y);
  const auto strides = row_major_strides(xs);
  std::string f = "int src_index(uint i) {\n  uint s = 0u;\n";
  for (std::size_t k = ys.size(); k-- > 0;) {
    const std::string d = std::to_string(ys[k]) + "u";
    f += "  s += ((i % " + d + ") % " + std::to_string(xs[k]) + "u) * " + std::to_string(strides[k]) + "u;\n";
    f += "  i /= " + d + ";\n";
  }
  f += "  return int(s);\n}\n";
  emit_remap(n, "tile", x, y, numel(y), f, "uint dst_index(uint i) { return i; }\n", 0.f, {});
}

// Both are a 6-D transposition of the input.
void Lowering::emit_depth_space(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Shape& xs = shape(x);
  const std::int64_t bs = n.attrs.get_int("blocksize", 1);
  const std::int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3];
  Shape in6, out6;
  std::vector<std::int64_t> perm;
  if (n.op_type == "DepthToSpace") {
    const std::int64_t c = C / (bs * bs);
    if (n.attrs.get_string("mode", "DCR") == "CRD") {
      in6 = {N, c, bs, bs, H, W};
      perm = {0, 1, 4, 2, 5, 3};
    } else {
      in6 = {N, bs, bs, c, H, W};
      perm = {0, 3, 4, 1, 5, 2};
    }
  } else {
    in6 = {N, C, H / bs, bs, W / bs, bs};
    perm = {0, 3, 5, 1, 2, 4};
  }
  const auto st = row_major_strides(in6);
  std::vector<std::int64_t> src;
  for (auto p : perm) {
    out6.push_back(in6[static_cast<std::size_t>(p)]);
    src.push_back(st[static_cast<std::size_t>(p)]);
  }
  std::string variant = n.op_type == "DepthToSpace" ? "depth_to_space" : "space_to_depth";
  emit_remap(n, variant, x, y, numel(y), index_function("int", "src_index", out6, src),
             "uint dst_index(uint i) { return i; }\n", 0.f, {});
}

void Lowering::emit_layer_norm(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const auto [rows, len] = graph::layer_norm_rows(n, shape(x));
  const Tensor* scale = g_.constant_input(n, 1);
  const Tensor* bias = n.inputs.size() > 2 && n.inputs[2] != kNoValue ? g_.constant_input(n, 2) : nullptr;
  Kernel kern;
  kern.variant = "layernorm" + act_suffix(n.activation);
  kern.nodes = n.name;
  kern.flops = 5 * numel(x);
  kern.weights.assign(static_cast<std::size_t>(2 * len), 0.f);
  std::copy(scale->f32(), scale->f32() + len, kern.weights.begin());
  if (bias) std::copy(bias->f32(), bias->f32() + len, kern.weights.begin() + len);
  Defines def;
  def("LEN", len)("CH", 0).raw("EPS", flit(n.attrs.get_float("epsilon", 1e-5f)));
  kern.slots = {output(y), input(x), weights()};
  // The optional Mean and InvStdDev outputs, one value per row.
  for (std::size_t o = 1; o < 3 && o < n.outputs.size(); ++o) {
    if (n.outputs[o] == kNoValue) continue;
    named_slot(kern, def, o == 1 ? "MEAN" : "INV", output(n.outputs[o]));
    kern.variant += o == 1 ? "_mean" : "_invstd";
  }
  finish_rows(std::move(kern), rows, def, "layernorm", n.activation);
}

// InstanceNormalization and ChannelLayerNorm, one scale and bias per
// channel, on the LayerNorm shader: InstanceNormalization normalises each
// (n, c) plane (rows of LEN contiguous values, channel r % CH),
// ChannelLayerNorm each pixel across its channels (LEN values a PLANE apart).
void Lowering::emit_channel_norm(const Node& n) {
  const bool instance = n.op_type == "InstanceNormalization";
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Shape& xs = shape(x);
  const std::int64_t C = xs[1], plane = xs[0] * C > 0 ? numel(x) / (xs[0] * C) : 0;
  const Tensor* scale = g_.constant_input(n, 1);
  const Tensor* bias = g_.constant_input(n, 2);
  Kernel kern;
  kern.variant = (instance ? "instancenorm" : "channel_layernorm") + act_suffix(n.activation);
  kern.nodes = n.name;
  kern.flops = 5 * numel(x);
  kern.weights.assign(scale->f32(), scale->f32() + C);
  kern.weights.insert(kern.weights.end(), bias->f32(), bias->f32() + C);
  Defines def;
  if (instance)
    def("LEN", plane)("CH", C);
  else
    def("LEN", C)("CH", 0)("PLANE", plane);
  def.raw("EPS", flit(n.attrs.get_float("epsilon", 1e-5f)));
  kern.slots = {output(y), input(x), weights()};
  finish_rows(std::move(kern), xs[0] * (instance ? C : plane), def, "layernorm", n.activation);
}

void Lowering::emit_lrn(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Shape& xs = shape(x);
  const std::int64_t size = n.attrs.get_int("size", 1), before = (size - 1) / 2;
  Kernel kern;
  kern.variant = "lrn" + std::to_string(size) + act_suffix(n.activation);
  kern.nodes = n.name;
  kern.flops = numel(x) * (2 * size + 4);
  Defines def;
  def("CH", xs[1]).raw("PLANE", std::to_string(xs[0] * xs[1] > 0 ? numel(x) / (xs[0] * xs[1]) : 1) + "u");
  def.raw("BEFORE", std::to_string(before) + "u").raw("AFTER", std::to_string(size - 1 - before) + "u");
  def.raw("ALPHA_N", flit(n.attrs.get_float("alpha", 1e-4f) / static_cast<float>(size)))
      .raw("BETA", flit(n.attrs.get_float("beta", 0.75f)))
      .raw("BIAS", flit(n.attrs.get_float("bias", 1.0f)));
  kern.slots = {output(y), input(x)};
  finish(std::move(kern), numel(y), def, "lrn", Activation::none(), n.activation);
}

void Lowering::emit_conv_transpose(const Node& n) {
  const ValueId x = n.inputs[0], y = n.outputs[0];
  const Tensor* W = g_.constant_input(n, 1);
  const Tensor* B = n.inputs.size() > 2 && n.inputs[2] != kNoValue ? g_.constant_input(n, 2) : nullptr;
  const Shape& xs = shape(x);
  const Shape& ws = W->shape();
  const graph::ConvGeometry geo = graph::conv_transpose_geometry(n, xs, ws);
  const std::int64_t groups = std::max<std::int64_t>(1, n.attrs.get_int("group", 1));
  const std::int64_t C = xs[1], MG = ws[1], M = MG * groups;
  const auto isz = graph::to3(std::vector<std::int64_t>(xs.begin() + 2, xs.end()), 1);
  const auto osz = graph::to3(geo.out, 1), k = graph::to3(geo.kernel, 1), s = graph::to3(geo.strides, 1),
             d = graph::to3(geo.dilations, 1), p = graph::to3(geo.pad_begin, 0);
  Kernel kern;
  kern.variant = "conv_transpose" + std::to_string(k[1]) + "x" + std::to_string(k[2]) + "_s" + std::to_string(s[2]) +
                 act_suffix(n.activation);
  kern.nodes = n.name;
  kern.flops = 2 * numel(y) * (C / groups) * k[0] * k[1] * k[2] / std::max<std::int64_t>(1, s[0] * s[1] * s[2]);
  kern.weights.assign(W->f32(), W->f32() + W->numel());
  if (B) kern.weights.insert(kern.weights.end(), B->f32(), B->f32() + M);
  Defines def;
  def("C", C)("CG", C / groups)("M", M)("MG", MG)("HAS_BIAS", B ? 1 : 0);
  def("ID", isz[0])("IH", isz[1])("IW", isz[2])("OD", osz[0])("OH", osz[1])("OW", osz[2]);
  def("KD", k[0])("KH", k[1])("KW", k[2])("SD", s[0])("SH", s[1])("SW", s[2]);
  def("DLD", d[0])("DLH", d[1])("DLW", d[2])("PD", p[0])("PH", p[1])("PW", p[2]);
  kern.slots = {output(y), input(x), weights()};
  finish(std::move(kern), numel(y), def, "conv_transpose", Activation::none(), n.activation);
}

// add: an Add run as the epilogue (KernelFusion::epilogue_of), whose other
// operand is read like a Conv's residual.
void Lowering::emit_resize(const Node& n, const Node* add) {
  using Plan = graph::ResizePlan;
  const ValueId x = n.inputs[0], y = add ? add->outputs[0] : n.outputs[0];
  const Shape& xs = shape(x);
  const Shape& ys = shape(n.outputs[0]);
  const std::size_t r = xs.size();
  const Plan p = resize_plan(g_, n);
  const bool linear = p.interp == Plan::Interp::Linear;
  std::string fn = "float src_coord(float x, float in_len, float resized, float scale) { return ";
  std::string coord;
  switch (p.coord) {
    case Plan::Coord::HalfPixel: coord = "half_pixel", fn += "(x + 0.5) / scale - 0.5; }\n"; break;
    case Plan::Coord::PytorchHalfPixel:
      coord = "pytorch_half_pixel", fn += "resized > 1.0 ? (x + 0.5) / scale - 0.5 : 0.0; }\n";
      break;
    case Plan::Coord::AlignCorners:
      coord = "align_corners", fn += "resized > 1.0 ? x * (in_len - 1.0) / (resized - 1.0) : 0.0; }\n";
      break;
    case Plan::Coord::TfHalfPixelForNn: coord = "tf_half_pixel_for_nn", fn += "(x + 0.5) / scale; }\n"; break;
    default: coord = "asymmetric", fn += "x / scale; }\n"; break;  // tf_crop_and_resize is refused by unsupported_reason
  }
  fn += "float nearest(float c) { return ";
  switch (p.rounding) {
    case Plan::Rounding::RoundPreferFloor: fn += "ceil(c - 0.5); }\n"; break;
    case Plan::Rounding::RoundPreferCeil: fn += "floor(c + 0.5); }\n"; break;
    case Plan::Rounding::Ceil: fn += "ceil(c); }\n"; break;
    case Plan::Rounding::Floor: fn += "floor(c); }\n"; break;
  }
  const bool cubic = p.interp == Plan::Interp::Cubic;
  Kernel kern;
  kern.variant = std::string(cubic ? "resize_cubic_" : linear ? "resize_linear_" : "resize_nearest_") + coord +
                 (p.exclude_outside ? "_exclude" : "") + act_suffix(n.activation) +
                 (add ? "_res" + act_suffix(add->activation) : "");
  kern.nodes = n.name + (add ? "+" + add->name : "");
  kern.flops = numel(y) * (cubic ? 40 : linear ? 8 : 1);
  Defines def;
  def("CUBIC", cubic ? 1 : 0)("EXCLUDE_OUTSIDE", p.exclude_outside ? 1 : 0).raw("CUBIC_A", flit(static_cast<float>(p.cubic_a)));
  const std::int64_t ih = r >= 2 ? xs[r - 2] : 1, oh = r >= 2 ? ys[r - 2] : 1;
  def("IH", ih)("IW", xs[r - 1])("OH", oh)("OW", ys[r - 1])("LINEAR", linear ? 1 : 0);
  const double sh = r >= 2 ? p.scales[r - 2] : 1.0, sw = p.scales[r - 1];
  def.raw("SCALE_H", flit(static_cast<float>(sh))).raw("SCALE_W", flit(static_cast<float>(sw)));
  def.raw("RES_H", flit(static_cast<float>(static_cast<double>(ih) * sh)))
      .raw("RES_W", flit(static_cast<float>(static_cast<double>(xs[r - 1]) * sw)));
  def.code(fn);
  def("HAS_RES", add ? 1 : 0);
  kern.slots = {output(y), input(x)};
  if (add) kern.slots.push_back(input(add->other_input(n.outputs[0])));
  finish(std::move(kern), numel(y), def, "resize", n.activation, add ? add->activation : Activation::none());
}
}  // namespace

std::string unsupported_reason(const Graph& g, const Node& n, std::uint64_t max_tensor_bytes) {
  bool all_constant = true;
  for (ValueId o : n.outputs) {
    if (o == kNoValue || g.is_constant(o)) continue;
    all_constant = false;
    if (g.value(o).dtype != DType::f32)
      return std::string("a runtime ") + graph::dtype_name(g.value(o).dtype) +
             " result (the GPU backend runs float32 tensors only)";
  }
  if (all_constant) return "";  // folded at load
  // A kernel binds each operand as one storage buffer (a window of the arena).
  if (max_tensor_bytes > 0)
    for (const auto* values : {&n.inputs, &n.outputs})
      for (ValueId v : *values) {
        if (v == kNoValue || g.is_constant(v)) continue;
        const auto bytes = static_cast<std::uint64_t>(graph::element_count(g.value(v).shape)) * 4;
        if (bytes <= max_tensor_bytes) continue;
        char sizes[160];
        std::snprintf(sizes, sizeof sizes, " of %.1f MiB, more than one storage buffer of the device addresses (%.1f MiB)",
                      static_cast<double>(bytes) / 1048576.0, static_cast<double>(max_tensor_bytes) / 1048576.0);
        return "a tensor ('" + g.value(v).name + "')" + sizes;
      }
  const std::string& op = n.op_type;
  // Inputs i.. that must be constants (the lowering bakes them in).
  auto constant = [&](std::size_t i, const char* what) -> std::string {
    if (i < n.inputs.size() && n.inputs[i] != kNoValue && !g.constant_input(n, i))
      return std::string(what) + (std::string_view(what).starts_with("a ") || std::string_view(what).starts_with("an ") ? " that is" : " that are") +
             " not constant";
    return "";
  };
  if (!n.inputs.empty() && n.inputs[0] != kNoValue && g.value(n.inputs[0]).dtype != DType::f32)
    return "a non-float input";
  // One kernel's packed weights live in one storage buffer, of which every
  // Vulkan device addresses 128 MiB: larger Convs and Gemms are split over
  // their outputs (planner::weight_split), other ops stay on the host.
  auto too_large = [&](std::int64_t floats) -> std::string {
    if (floats * 4 <= planner::kKernelWeightBytes) return "";
    return "weights of " + std::to_string(floats * 4 >> 20) +
           " MiB, more than the 128 MiB one storage buffer is sure to address";
  };
  if (op == "Conv") {
    const Tensor* w = g.constant_input(n, 1);
    if (!w) return "a Conv whose weights are not constant (the GPU backend packs them at load)";
    if (planner::weight_split(g, n) <= 0)
      return "weights of " + std::to_string(w->numel() * 4 >> 20) +
             " MiB that cannot be split into kernels of at most 128 MiB (the storage-buffer range every device "
             "addresses): a grouped Conv, or " + std::to_string(planner::kConvSplitQuantum) +
             " output channels' weights over the bound";
    return constant(2, "a Conv bias");
  }
  if (op == "Gemm" && planner::weight_split(g, n) <= 0)
    return "a B whose single column's weights exceed the 128 MiB one storage buffer is sure to address";
  if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" || op == "Gemm" || op == "MatMul" ||
      op == "Softmax" || op == "Concat" || op == "Transpose" || planner::is_view_op(n) || op == "Relu" ||
      op == "LeakyRelu" || op == "Sigmoid" || op == "HardSigmoid" || op == "HardSwish" || op == "Expand" ||
      op == "Tile" || op == "Split" || op == "Cast" || !unary_math_body(n).empty())
    return "";
  if (op == "DepthToSpace" || op == "SpaceToDepth")
    return g.value(n.inputs[0]).shape.size() == 4 ? "" : "a tensor that is not 4-D";
  if (is_variadic(op) && n.inputs.size() > 7) return "more than seven inputs";
  if (!binary_body(op).empty()) {
    if (op == "Pow" && g.value(n.inputs[1]).dtype != DType::f32) {
      const Tensor* t = g.constant_input(n, 1);
      if (!t || t->numel() != 1) return "an integer exponent that is not a constant scalar";
    }
    return "";
  }
  if (op == "BatchNormalization") {
    for (std::size_t i = 1; i < 5; ++i)
      if (!g.constant_input(n, i)) return "BatchNormalization parameters that are not constants";
    return "";
  }
  // The first of several reasons.
  auto first = [](std::initializer_list<std::string> why) {
    for (const auto& w : why)
      if (!w.empty()) return w;
    return std::string();
  };
  if (op == "Clip") return first({constant(1, "Clip bounds"), constant(2, "Clip bounds")});
  if (op == "Pad") return first({constant(1, "pads"), constant(2, "a constant_value")});
  if (op == "Gather") return constant(1, "Gather indices");
  if (op == "Slice")
    return first({constant(1, "Slice starts"), constant(2, "Slice ends"), constant(3, "Slice axes"),
                  constant(4, "Slice steps")});
  if (op.rfind("Reduce", 0) == 0) {
    ReduceLayout l;
    return reduce_layout(g, n, l);
  }
  if (op == "LayerNormalization") {
    const std::int64_t len = graph::layer_norm_rows(n, g.value(n.inputs[0]).shape).len;
    for (std::size_t i = 1; i < 3 && i < n.inputs.size(); ++i) {
      if (n.inputs[i] == kNoValue) continue;
      const Tensor* t = g.constant_input(n, i);
      if (!t || t->numel() != len) return "a LayerNormalization scale or bias that is not a constant of the normalised size";
    }
    return "";
  }
  if (op == "InstanceNormalization") return first({constant(1, "an InstanceNormalization scale"), constant(2, "an InstanceNormalization bias")});
  if (op == graph::kChannelLayerNorm) return first({constant(1, "a ChannelLayerNorm scale"), constant(2, "a ChannelLayerNorm bias")});
  if (op == "LRN") return "";
  if (op == "ConvTranspose") {
    const Tensor* w = g.constant_input(n, 1);
    if (!w) return "a ConvTranspose whose weights are not constant";
    if (std::string why = too_large(w->numel() + w->shape()[1] * n.attrs.get_int("group", 1)); !why.empty())
      return why;
    return constant(2, "a ConvTranspose bias");
  }
  if (op == "Resize" || op == "Upsample") {
    using Plan = graph::ResizePlan;
    const Plan p = resize_plan(g, n);
    if (p.coord == Plan::Coord::TfCropAndResize) return "coordinate_transformation_mode tf_crop_and_resize";
    const Shape& xs = g.value(n.inputs[0]).shape;
    for (std::size_t k = 0; k + 2 < xs.size(); ++k)
      if (xs[k] != p.out[k] || p.scales[k] != 1.0) return "resizing an axis other than the last two";
    return "";
  }
  return "no GPU kernel for op '" + op + "'";
}

Program lower_graph(const Graph& g, const DeviceCaps& caps, std::span<const int> unit) {
  return Lowering(g, caps, unit).run();
}

}  // namespace vkfuse::codegen::spirv
