// tests/conformance/test_onnx_node_cases.cpp — the ONNX backend node
// conformance cases for the ops vkfuse supports, run through the public API.
//
// The cases are generated at test-setup time by tools/generate_conformance.py
// (fixture test data.onnx_conformance) into ${VKFUSE_TESTDATA}/onnx-node/node/.
// Each case folder holds model.onnx (one node, or a function's expansion) and
// test_data_set_0/{input,output}_<j>.pb. The test list is built from that
// folder at startup: one test per selected case.
//
// Selection: kSelected (case-name globs per supported op) minus kNotSelected
// (cases of other ops that share a prefix). Of the selected cases, those on
// kSkipped are outside vkfuse's scope (float32 inference) and are reported as
// skipped with their reason; every other selected case must pass.
//
// int64 runtime inputs (Reshape's shape, Squeeze/Unsqueeze axes, Pad's pads,
// Gather's indices), and int32 and bool ones (the comparisons', logic ops'
// and Where's), are turned into initializers with the case's values before
// loading: exported CNNs carry them as constants, and the public API takes
// float32 inputs only. A bool output gets a Cast to float32 appended and is
// compared with the reference as 0/1.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "graph/ops.h"
#include "tests/vulkan/vulkan_test_util.h"
#include "vkfuse/vkfuse.h"

namespace fs = std::filesystem;

namespace {

constexpr double kTolerance = 1e-4;  // relative L2 error, fp32

fs::path cases_root() { return fs::path(VKFUSE_TESTDATA) / "onnx-node" / "node"; }

// Glob match with '*' (any run of characters) only.
bool glob(std::string_view pattern, std::string_view s) {
  std::size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pattern.size() && pattern[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// The ops vkfuse supports; every node of a selected case must be one of them.
const std::set<std::string> kSupportedOps = [] {
  const auto names = vkfuse::graph::supported_ops();
  return std::set<std::string>(names.begin(), names.end());
}();

// Case-name globs, per op. Exact names where a prefix would catch other ops
// ("test_add*" would catch test_adagrad/test_adam, "test_constant*" the
// ConstantOfShape cases, "test_matmul*" MatMulInteger, "test_conv*" ConvTranspose
// and ConvInteger, "test_shape*" is fine, ...).
struct Selection {
  const char* op;
  const char* pattern;
};
const Selection kSelected[] = {
    {"Conv", "test_basic_conv_*"},
    {"Conv", "test_conv_with_*"},
    {"Relu", "test_relu"},
    {"LeakyRelu", "test_leakyrelu"},
    {"LeakyRelu", "test_leakyrelu_*"},
    {"Clip", "test_clip"},
    {"Clip", "test_clip_*"},
    {"Sigmoid", "test_sigmoid"},
    {"Sigmoid", "test_sigmoid_*"},
    {"HardSigmoid", "test_hardsigmoid"},
    {"HardSigmoid", "test_hardsigmoid_*"},
    {"HardSwish", "test_hardswish"},
    {"HardSwish", "test_hardswish_*"},  // _expanded: HardSigmoid + Mul
    {"MaxPool", "test_maxpool_*"},
    {"AveragePool", "test_averagepool_*"},
    {"GlobalAveragePool", "test_globalaveragepool"},
    {"GlobalAveragePool", "test_globalaveragepool_*"},
    {"BatchNormalization", "test_batchnorm_*"},
    {"Add", "test_add"},
    {"Add", "test_add_*"},
    {"Mul", "test_mul"},
    {"Mul", "test_mul_*"},
    {"Sub", "test_sub"},
    {"Sub", "test_sub_*"},
    {"Div", "test_div"},
    {"Div", "test_div_*"},
    {"Mod", "test_mod_*"},
    {"Concat", "test_concat_*"},
    {"Gemm", "test_gemm_*"},
    {"MatMul", "test_matmul_*"},
    {"Flatten", "test_flatten_*"},
    {"Reshape", "test_reshape_*"},
    {"Transpose", "test_transpose_*"},
    {"Pad", "test_constant_pad"},
    {"Pad", "test_edge_pad"},
    {"Pad", "test_reflect_pad"},
    {"Softmax", "test_softmax_*"},
    {"Identity", "test_identity"},
    {"Identity", "test_identity_*"},
    {"Dropout", "test_dropout_*"},
    {"Dropout", "test_training_dropout*"},
    {"Constant", "test_constant"},
    {"Shape", "test_shape"},
    {"Shape", "test_shape_*"},
    {"Gather", "test_gather_*"},
    {"ScatterND", "test_scatternd*"},
    {"Unsqueeze", "test_unsqueeze_*"},
    {"Squeeze", "test_squeeze"},
    {"Squeeze", "test_squeeze_*"},
    // Reductions: the longer names first (the first matching pattern wins).
    {"ReduceLogSumExp", "test_reduce_log_sum_exp_*"},
    {"ReduceLogSum", "test_reduce_log_sum*"},
    {"ReduceSumSquare", "test_reduce_sum_square_*"},
    {"ReduceMean", "test_reduce_mean_*"},
    {"ReduceSum", "test_reduce_sum_*"},
    {"ReduceMax", "test_reduce_max_*"},
    {"ReduceMin", "test_reduce_min_*"},
    {"ReduceProd", "test_reduce_prod_*"},
    {"ReduceL1", "test_reduce_l1_*"},
    {"ReduceL2", "test_reduce_l2_*"},
    {"InstanceNormalization", "test_instancenorm_*"},
    {"LayerNormalization", "test_layer_normalization_*"},
    {"LRN", "test_lrn*"},
    // Elementwise math.
    {"Pow", "test_pow*"},
    {"Sqrt", "test_sqrt*"},
    {"Exp", "test_exp"},
    {"Exp", "test_exp_*"},
    {"Log", "test_log"},
    {"Log", "test_log_example"},
    {"Erf", "test_erf"},
    {"Tanh", "test_tanh*"},
    {"Softplus", "test_softplus*"},
    {"Softsign", "test_softsign*"},
    {"Neg", "test_neg*"},
    {"Abs", "test_abs"},
    {"Reciprocal", "test_reciprocal*"},
    {"Ceil", "test_ceil*"},
    {"Floor", "test_floor*"},
    {"Elu", "test_elu*"},
    {"Selu", "test_selu*"},
    {"PRelu", "test_prelu_*"},
    {"Min", "test_min_*"},
    {"Max", "test_max_*"},
    {"Mean", "test_mean_*"},
    {"Sum", "test_sum_*"},
    // Data movement.
    {"Slice", "test_slice*"},
    {"Split", "test_split_*"},
    {"Expand", "test_expand_*"},
    {"Tile", "test_tile*"},
    {"DepthToSpace", "test_depthtospace_*"},
    {"SpaceToDepth", "test_spacetodepth*"},
    {"ConstantOfShape", "test_constantofshape_*"},
    {"Range", "test_range_*"},
    {"Cast", "test_cast_*"},
    {"Resize", "test_resize_*"},
    {"Upsample", "test_upsample_*"},
    {"ConvTranspose", "test_convtranspose*"},
    // Comparisons, logic, Where (bool outputs are compared as 0/1, see below).
    {"Equal", "test_equal*"},
    {"LessOrEqual", "test_less_equal*"},
    {"Less", "test_less*"},
    {"GreaterOrEqual", "test_greater_equal*"},
    {"Greater", "test_greater*"},
    {"And", "test_and*"},
    {"Or", "test_or*"},
    {"Xor", "test_xor*"},
    {"Not", "test_not_*"},
    {"Where", "test_where_*"},
};

// Node inputs that vkfuse needs as constants: a case's graph input feeding one
// becomes an initializer (the case then tests the op, not dynamic shapes).
const std::map<std::string, std::vector<int>> kConstantInputs = {
    {"Resize", {1, 2, 3}},  // roi, scales, sizes
    {"Upsample", {1}},      // scales
    {"Range", {0, 1, 2}},   // start, limit, delta
};

// Parameters that exported models carry as initializers and that the host and
// GPU backends pack at load (a runtime Conv weight would keep the op on the
// reference kernel): under `cpu` and `gpu` they become initializers, so the
// cases test those backends' kernels. `reference` keeps them runtime inputs.
const std::map<std::string, std::vector<int>> kWeightInputs = {
    {"Conv", {1, 2}},
    {"ConvTranspose", {1, 2}},
    {"BatchNormalization", {1, 2, 3, 4}},
    {"InstanceNormalization", {1, 2}},
    {"LayerNormalization", {1, 2}},
    {"Clip", {1, 2}},
    {"Pad", {1, 2}},
};

// Ops whose every ONNX 1.12 case is outside float32 inference; unit tests in
// tests/graph cover them instead.
const std::set<std::string> kNoCase = {
    "Shape",            // its output is int64
    "Cast",             // only float16/bfloat16/double/string cases
    "ReduceLogSumExp",  // only double cases
    "Einsum",           // only double cases
};

// Cases that match kSelected but test something else; not counted at all.
const char* const kNotSelected[] = {
    "test_gather_elements_*",   // GatherElements, a different op
};

// Selected cases outside vkfuse's scope (float32 inference), with the reason.
struct Skip {
  const char* pattern;
  const char* reason;
};
const Skip kSkipped[] = {
    // Integer element types: vkfuse runs float32 tensors only.
    {"test_*_uint8", "uint8 tensors (vkfuse runs float32)"},
    {"test_clip_default_int8_*", "int8 tensors (vkfuse runs float32)"},
    {"test_edge_pad", "int32 data tensor (vkfuse runs float32)"},
    {"test_reflect_pad", "int32 data tensor (vkfuse runs float32)"},
    // Outputs the float32 API cannot return.
    {"test_maxpool_with_argmax_*", "MaxPool's Indices output (int64)"},
    {"test_shape", "Shape's output is an int64 runtime output"},
    {"test_shape_*", "Shape's output is an int64 runtime output"},
    {"test_dropout_default_mask*", "Dropout's mask output (bool)"},
    // Training mode: vkfuse runs inference only.
    {"test_batchnorm_*_training_mode", "BatchNormalization in training mode (running mean/var outputs)"},
    {"test_training_dropout*", "Dropout in training mode (bool training_mode input)"},
    // Non-tensor types.
    {"test_identity_opt", "optional-typed input/output"},
    {"test_identity_sequence", "sequence-typed input/output"},
    // Reductions and normalizations.
    {"test_reduce_log_sum_exp_*", "double tensors (vkfuse runs float32)"},
    {"test_layer_normalization_*_expanded", "LayerNormalization's function body uses Size (not a vkfuse op)"},
    // Elementwise math.
    {"test_m*_float16", "float16 tensors (vkfuse runs float32)"},
    {"test_m*_float64", "double tensors (vkfuse runs float32)"},
    {"test_m*_int8", "int8 tensors (vkfuse runs float32)"},
    {"test_m*_int16", "int16 tensors (vkfuse runs float32)"},
    {"test_m*_int32", "int32 tensors (vkfuse runs float32)"},
    {"test_m*_uint16", "uint16 tensors (vkfuse runs float32)"},
    {"test_m*_uint32", "uint32 tensors (vkfuse runs float32)"},
    {"test_m*_uint64", "uint64 tensors (vkfuse runs float32)"},
    {"test_m*_int64*", "Min/Max/Mod of int64 inputs: an int64 runtime output"},
    {"test_pow_types_*uint*", "unsigned integer tensors (vkfuse runs float32)"},
    {"test_pow_types_*int32*", "int32 tensors (vkfuse runs float32)"},
    {"test_pow_types_int64_*", "int64 base: an int64 runtime output"},
    // Data movement and resizing.
    {"test_cast_*FLOAT16*", "Cast from/to float16 or bfloat16 (vkfuse has float32 and int64 only)"},
    {"test_cast_*DOUBLE*", "Cast from/to double (vkfuse has float32 and int64 only)"},
    {"test_cast_*STRING*", "Cast from/to string (vkfuse has float32 and int64 only)"},
    {"test_constantofshape_int_*", "int32 output (vkfuse runs float32)"},
    {"test_range_*_expanded", "the expansion uses Loop, which vkfuse does not support"},
    {"test_range_int32_*", "int32 tensors (vkfuse runs float32)"},
    {"test_mod_broadcast", "int32 tensors (vkfuse runs float32)"},
    {"test_scatternd_*", "ScatterND with a reduction (add, mul, max, min; no CNN exports one)"},
    {"test_where_long_example", "int64 X and Y: an int64 runtime output"},
};

const char* selected_op(const std::string& name) {
  for (const char* pattern : kNotSelected)
    if (glob(pattern, name)) return nullptr;
  for (const auto& s : kSelected)
    if (glob(s.pattern, name)) return s.op;
  return nullptr;
}

const char* skip_reason(const std::string& name) {
  for (const auto& s : kSkipped)
    if (glob(s.pattern, name)) return s.reason;
  return nullptr;
}

std::vector<std::string> list_cases() {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(cases_root(), ec)) return names;
  for (const auto& entry : fs::directory_iterator(cases_root(), ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && selected_op(name) != nullptr) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

template <typename Message>
bool parse_file(const fs::path& path, Message& message) {
  std::ifstream f(path, std::ios::binary);
  return f && message.ParseFromIstream(&f);
}

std::vector<std::int64_t> dims_of(const onnx::TensorProto& t) {
  std::vector<std::int64_t> dims;
  for (int i = 0; i < t.dims_size(); ++i) dims.push_back(t.dims(i));
  return dims;
}

std::string dims_string(const std::vector<std::int64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

std::int64_t numel(const std::vector<std::int64_t>& dims) {
  std::int64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

std::vector<float> floats_of(const onnx::TensorProto& t) {
  const auto n = static_cast<std::size_t>(numel(dims_of(t)));
  std::vector<float> v(n);
  if (t.data_type() == onnx::TensorProto::BOOL) {  // as 0/1 (see the Cast appended to bool outputs)
    if (t.has_raw_data() && t.raw_data().size() == n)
      for (std::size_t i = 0; i < n; ++i) v[i] = t.raw_data()[i] != 0 ? 1.f : 0.f;
    else if (static_cast<std::size_t>(t.int32_data_size()) == n)
      for (std::size_t i = 0; i < n; ++i) v[i] = t.int32_data(static_cast<int>(i)) != 0 ? 1.f : 0.f;
    else
      ADD_FAILURE() << t.name() << ": expected " << n << " bools";
  } else if (t.has_raw_data()) {
    if (t.raw_data().size() != n * sizeof(float)) ADD_FAILURE() << t.name() << ": raw_data has the wrong size";
    else if (n) std::memcpy(v.data(), t.raw_data().data(), n * sizeof(float));  // little-endian host
  } else if (static_cast<std::size_t>(t.float_data_size()) == n) {
    std::copy(t.float_data().begin(), t.float_data().end(), v.begin());
  } else {
    ADD_FAILURE() << t.name() << ": expected " << n << " floats";
  }
  return v;
}

std::string dtype_name(int elem_type) {
  return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(elem_type));
}

// ‖out − ref‖ / ‖ref‖ (‖out − ref‖ when ref is all zeros). Positions where
// both are NaN, or both the same infinity, count as equal.
double relative_l2(std::span<const float> out, std::span<const float> ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double r = ref[i], o = out[i];
    if ((std::isnan(r) && std::isnan(o)) || (std::isinf(r) && r == o)) continue;
    const double d = o - r;
    num += d * d;
    den += std::isfinite(r) ? r * r : 0.0;
  }
  if (std::isnan(num)) return num;
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// The strategies every case runs under: the reference kernels, the host
// backend (Halide kernels, the reference where the host has none), and the
// GPU (the ops it cannot run stay on the host, around it).
const std::vector<std::string> kStrategies = {"reference", "cpu", "gpu"};

using CaseParam = std::tuple<std::string, std::string>;  // case name, strategy

class OnnxNodeCase : public ::testing::TestWithParam<CaseParam> {};

TEST_P(OnnxNodeCase, MatchesReference) {
  const auto& [name, strategy] = GetParam();
  if (const char* reason = skip_reason(name)) GTEST_SKIP() << name << ": skipped: " << reason;
  if (strategy == "gpu" && !vkfuse::testing::have_vulkan_device()) GTEST_SKIP() << "no Vulkan device";

  const fs::path dir = cases_root() / name;
  const fs::path data = dir / "test_data_set_0";
  onnx::ModelProto model;
  ASSERT_TRUE(parse_file(dir / "model.onnx", model)) << "cannot parse " << (dir / "model.onnx");
  auto& graph = *model.mutable_graph();

  // Guard the allow-list: a selected case must use supported ops only.
  for (const auto& node : graph.node())
    ASSERT_TRUE(kSupportedOps.count(node.op_type()))
        << name << " uses op " << node.op_type() << ", which vkfuse does not support: fix kSelected/kNotSelected";

  // Reference inputs, in graph-input order (input_<j>.pb is graph.input[j]).
  std::vector<onnx::TensorProto> inputs(static_cast<std::size_t>(graph.input_size()));
  for (int j = 0; j < graph.input_size(); ++j) {
    const fs::path p = data / ("input_" + std::to_string(j) + ".pb");
    ASSERT_TRUE(parse_file(p, inputs[j])) << "cannot parse " << p;
    inputs[j].set_name(graph.input(j).name());
  }
  std::vector<onnx::TensorProto> refs(static_cast<std::size_t>(graph.output_size()));
  for (int j = 0; j < graph.output_size(); ++j) {
    const fs::path p = data / ("output_" + std::to_string(j) + ".pb");
    ASSERT_TRUE(parse_file(p, refs[j])) << "cannot parse " << p;
    refs[j].set_name(graph.output(j).name());
  }

  // Float inputs that vkfuse needs as constants (they set output shapes), as
  // exported models carry them: they become initializers like int64 inputs.
  std::set<std::string> parameter_inputs;
  for (const auto& node : graph.node())
    if (auto it = kConstantInputs.find(node.op_type()); it != kConstantInputs.end())
      for (int i : it->second)
        if (i < node.input_size()) parameter_inputs.insert(node.input(i));
  if (strategy != "reference")
    for (const auto& node : graph.node())
      if (auto it = kWeightInputs.find(node.op_type()); it != kWeightInputs.end())
        for (int i : it->second)
          if (i < node.input_size()) parameter_inputs.insert(node.input(i));

  // A bool output (a comparison's, a logic op's) becomes float32 through an
  // appended Cast, and is compared with the reference's bools as 0/1.
  for (auto& vi : *graph.mutable_output()) {
    if (!vi.type().has_tensor_type() || vi.type().tensor_type().elem_type() != onnx::TensorProto::BOOL) continue;
    const std::string bool_name = vi.name() + "_bool";
    for (auto& node : *graph.mutable_node())
      for (auto& out : *node.mutable_output())
        if (out == vi.name()) out = bool_name;
    auto* cast = graph.add_node();
    cast->set_op_type("Cast");
    cast->add_input(bool_name);
    cast->add_output(vi.name());
    auto* to = cast->add_attribute();
    to->set_name("to");
    to->set_type(onnx::AttributeProto::INT);
    to->set_i(onnx::TensorProto::FLOAT);
    vi.mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }

  // Every runtime tensor must be float32 now, except int64, int32 and bool
  // inputs, which become initializers (the importer holds int32 and bool
  // constants as int64). Anything else belongs on kSkipped, with a reason.
  for (const auto& vi : graph.output()) {
    ASSERT_TRUE(vi.type().has_tensor_type()) << name << ": output " << vi.name() << " is not a tensor; add to kSkipped";
    ASSERT_EQ(vi.type().tensor_type().elem_type(), onnx::TensorProto::FLOAT)
        << name << ": output " << vi.name() << " is " << dtype_name(vi.type().tensor_type().elem_type())
        << "; add the case to kSkipped with a reason";
  }
  std::map<std::string, const onnx::TensorProto*> runtime_inputs;
  {
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> kept;
    for (int j = 0; j < graph.input_size(); ++j) {
      const auto& vi = graph.input(j);
      ASSERT_TRUE(vi.type().has_tensor_type()) << name << ": input " << vi.name() << " is not a tensor; add to kSkipped";
      const int et = vi.type().tensor_type().elem_type();
      if (et == onnx::TensorProto::INT64 || et == onnx::TensorProto::INT32 || et == onnx::TensorProto::BOOL ||
          parameter_inputs.count(vi.name())) {
        *graph.add_initializer() = inputs[j];
      } else {
        ASSERT_EQ(et, onnx::TensorProto::FLOAT) << name << ": input " << vi.name() << " is " << dtype_name(et)
                                                << "; add the case to kSkipped with a reason";
        *kept.Add() = vi;
        runtime_inputs[vi.name()] = &inputs[j];
      }
    }
    graph.mutable_input()->Swap(&kept);
  }
  std::string bytes;
  ASSERT_TRUE(model.SerializeToString(&bytes));

  vkfuse::LoadOptions opts;
  opts.strategy = strategy;
  try {
    auto m = vkfuse::Model::load_bytes(
        {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, opts);

    // Inputs: by name, float32, shaped as the case's data.
    std::vector<std::vector<float>> in_data;
    std::vector<vkfuse::InputBuffer> in_bufs;
    in_data.reserve(m.inputs().size());
    ASSERT_EQ(m.inputs().size(), runtime_inputs.size()) << name << ": the model's runtime inputs";
    for (const auto& info : m.inputs()) {
      auto it = runtime_inputs.find(info.name);
      ASSERT_NE(it, runtime_inputs.end()) << name << ": model input '" << info.name << "' is not in the case";
      EXPECT_EQ(info.dtype, "float32") << info.name;
      ASSERT_EQ(info.shape, dims_of(*it->second))
          << name << ": input " << info.name << " shape " << dims_string(info.shape) << " vs the case's "
          << dims_string(dims_of(*it->second));
      in_data.push_back(floats_of(*it->second));
      in_bufs.push_back({info.name, in_data.back()});
    }

    // Outputs: by name; shapes must match exactly.
    ASSERT_EQ(m.outputs().size(), refs.size()) << name << ": output count";
    std::vector<std::vector<float>> out_data;
    std::vector<vkfuse::OutputBuffer> out_bufs;
    std::vector<const onnx::TensorProto*> out_refs;
    out_data.reserve(refs.size());
    for (const auto& info : m.outputs()) {
      auto it = std::find_if(refs.begin(), refs.end(), [&](const auto& r) { return r.name() == info.name; });
      ASSERT_NE(it, refs.end()) << name << ": model output '" << info.name << "' is not in the case";
      ASSERT_EQ(info.shape, dims_of(*it)) << name << ": output " << info.name << " shape "
                                          << dims_string(info.shape) << " vs reference " << dims_string(dims_of(*it));
      out_data.emplace_back(static_cast<std::size_t>(info.element_count()), std::nanf(""));
      out_bufs.push_back({info.name, out_data.back()});
      out_refs.push_back(&*it);
    }

    const auto t = m.run(in_bufs, out_bufs);
    // The strategy ran where it says: `cpu` dispatches nothing, and under
    // `gpu` every host kernel belongs to an op the load named as kept on the
    // host (a silent fallback would pass the comparison below untested).
    bool kept_on_host = false;
    for (const auto& w : m.warnings()) kept_on_host = kept_on_host || w.find("kept on the host") != std::string::npos;
    if (strategy == "cpu") {
      EXPECT_EQ(t.dispatches, 0) << name;
    }
    if (strategy == "gpu" && !kept_on_host) {
      EXPECT_EQ(t.host_kernels, 0) << name << ": host kernels with no warning";
    }

    for (std::size_t k = 0; k < out_refs.size(); ++k) {
      const auto ref = floats_of(*out_refs[k]);
      ASSERT_EQ(ref.size(), out_data[k].size());
      const double err = relative_l2(out_data[k], ref);
      EXPECT_LE(err, kTolerance) << name << ": output " << out_refs[k]->name() << " relative L2 error " << err;
    }
  } catch (const vkfuse::Error& e) {
    FAIL() << name << ": vkfuse::Error(" << vkfuse::error_kind_name(e.kind()) << "): " << e.what();
  } catch (const std::exception& e) {
    FAIL() << name << ": exception: " << e.what();
  }
}

std::string case_test_name(const ::testing::TestParamInfo<CaseParam>& info) {
  std::string s = std::get<0>(info.param) + "_" + std::get<1>(info.param);
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Onnx, OnnxNodeCase,
                         ::testing::Combine(::testing::ValuesIn(list_cases()), ::testing::ValuesIn(kStrategies)),
                         case_test_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OnnxNodeCase);  // DataPresent reports the empty case

// Fails loudly when the generated data is missing, and reports the selection.
TEST(OnnxNodeCases, DataPresent) {
  ASSERT_TRUE(fs::is_directory(cases_root()))
      << cases_root() << " is missing: run the fixture test data.onnx_conformance "
      << "(ctest -R data.onnx_conformance) or tools/generate_conformance.py --out " << VKFUSE_TESTDATA << "/onnx-node";
  std::size_t total = 0;
  for (const auto& entry : fs::directory_iterator(cases_root()))
    if (entry.is_directory()) ++total;
  const auto selected = list_cases();
  std::map<std::string, std::vector<std::string>> skipped;
  for (const auto& n : selected)
    if (const char* r = skip_reason(n)) skipped[r].push_back(n);
  std::size_t n_skipped = 0;
  std::ostringstream report;
  for (const auto& [reason, names] : skipped) {
    n_skipped += names.size();
    report << "  skipped (" << reason << "):";
    for (const auto& n : names) report << ' ' << n;
    report << '\n';
  }
  std::cout << "ONNX node cases: " << total << " generated, " << selected.size() << " selected, " << n_skipped
            << " skipped, " << selected.size() - n_skipped << " run\n"
            << report.str();
  ASSERT_GT(selected.size() - n_skipped, 0u) << "no runnable case in " << cases_root();

  // Every supported op has at least one case that runs.
  std::set<std::string> covered;
  for (const auto& n : selected)
    if (!skip_reason(n)) covered.insert(selected_op(n));
  for (const auto& op : kSupportedOps)
    EXPECT_TRUE(covered.count(op) || kNoCase.count(op)) << "no runnable conformance case selects op " << op;
}

}  // namespace
