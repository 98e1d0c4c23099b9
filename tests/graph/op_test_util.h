// tests/graph/op_test_util.h — what the reference-kernel tests share: a node
// of one op, running it, and checks of exact results and errors.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph::op_test {

inline Node make_node(const std::string& op, Attributes attrs = {}, std::size_t n_outputs = 1) {
  Node n;
  n.name = op + "_test";
  n.op_type = op;
  n.attrs = std::move(attrs);
  for (std::size_t i = 0; i < n_outputs; ++i) n.outputs.push_back(static_cast<ValueId>(i));
  return n;
}

inline std::vector<Tensor> run(const Node& node, std::vector<const Tensor*> inputs, std::int64_t opset = 13) {
  return evaluate_node(OpContext{node, opset, 1}, std::span<const Tensor* const>(inputs));
}

inline void expect_f32(const Tensor& t, const Shape& shape, const std::vector<float>& want) {
  ASSERT_EQ(t.dtype(), DType::f32);
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(std::vector<float>(t.f32_span().begin(), t.f32_span().end()), want);
}

inline void expect_near(const Tensor& t, const Shape& shape, const std::vector<float>& want, float tol = 1e-5f) {
  ASSERT_EQ(t.dtype(), DType::f32);
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(static_cast<std::size_t>(t.numel()), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.f32()[i], want[i], tol) << "element " << i;
}

inline void expect_i64(const Tensor& t, const Shape& shape, const std::vector<std::int64_t>& want) {
  ASSERT_EQ(t.dtype(), DType::i64);
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(std::vector<std::int64_t>(t.i64_span().begin(), t.i64_span().end()), want);
}

inline std::vector<float> iota_f(std::size_t n, float start = 0.f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

inline Tensor ints(std::vector<std::int64_t> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return Tensor::from_i64({n}, std::move(v));
}

inline Tensor floats(std::vector<float> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return Tensor::from_f32({n}, std::move(v));
}

// Throws, returning the error, or fails the test.
inline Error error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected vkfuse::Error";
  return Error(ErrorKind::Internal, "");
}

inline InputInfo info(Shape s, DType t = DType::f32, const Tensor* constant = nullptr) {
  InputInfo i;
  i.dtype = t;
  i.shape = std::move(s);
  i.constant = constant;
  return i;
}

}  // namespace vkfuse::graph::op_test
