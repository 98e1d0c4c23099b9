#include "runtime/hetero_executor.h"

#include <algorithm>
#include <cstring>

#include "graph/passes.h"
#include "runtime/host_executor.h"

namespace vkfuse::runtime {

SegmentExecutorFactory default_segment_factory() {
  return [](const graph::Graph& sub, bool on_accelerator, const ExecutorOptions& o) {
    return on_accelerator ? make_vulkan_executor(sub, o) : make_host_executor(sub, o);
  };
}

HeteroExecutor::HeteroExecutor(const graph::Graph& graph, planner::Plan plan, ExecutorOptions options,
                               const SegmentExecutorFactory& factory)
    : graph_(graph), plan_(std::move(plan)), options_(std::move(options)), buffers_(graph.values.size()) {
  // Consecutive host steps form one host segment: they are contiguous in a
  // topological order, so the segment's inputs are all produced before it.
  std::vector<std::vector<std::int32_t>> groups;
  std::vector<bool> accel;
  std::vector<std::string> names;
  for (const auto& step : plan_.steps) {
    if (step.kind == planner::Step::Kind::host_op) {
      if (groups.empty() || accel.back()) {
        groups.emplace_back();
        accel.push_back(false);
        names.push_back("host segment " + std::to_string(groups.size()));
      }
      groups.back().push_back(step.index);
    } else {
      auto unit = std::find_if(plan_.units.begin(), plan_.units.end(), [&](auto& u) { return u.id == step.index; });
      if (unit == plan_.units.end()) throw Error(ErrorKind::Internal, "plan step names a missing dispatch unit");
      groups.emplace_back(unit->nodes.begin(), unit->nodes.end());
      accel.push_back(true);
      names.push_back("unit " + std::to_string(unit->id));
    }
  }
  for (std::size_t i = 0; i < groups.size(); ++i) {
    Segment s;
    s.on_accelerator = accel[i];
    s.name = names[i];
    s.subgraph = std::make_unique<graph::Graph>(graph::extract_subgraph(graph_, groups[i], &s.inputs, &s.outputs));
    s.executor = factory(*s.subgraph, s.on_accelerator, options_);
    if (s.on_accelerator && accel_description_.empty()) accel_description_ = s.executor->description();
    segments_.push_back(std::move(s));
  }
  // Host storage for values that cross segments and are not graph inputs or outputs.
  std::vector<bool> external(graph_.values.size(), false);
  for (auto v : graph_.inputs) external[static_cast<std::size_t>(v)] = true;
  for (auto v : graph_.outputs) external[static_cast<std::size_t>(v)] = true;
  for (const auto& s : segments_)
    for (auto v : s.outputs)
      if (!external[static_cast<std::size_t>(v)])
        buffers_[static_cast<std::size_t>(v)].resize(static_cast<std::size_t>(graph::element_count(graph_.value(v).shape)));
}

HeteroExecutor::~HeteroExecutor() = default;

void HeteroExecutor::run(std::span<const float* const> inputs, std::span<float* const> outputs) {
  // Where each value lives on the host during this run.
  std::vector<float*> where(graph_.values.size(), nullptr);
  for (std::size_t i = 0; i < graph_.inputs.size(); ++i)
    where[static_cast<std::size_t>(graph_.inputs[i])] = const_cast<float*>(inputs[i]);
  for (std::size_t i = 0; i < graph_.outputs.size(); ++i) where[static_cast<std::size_t>(graph_.outputs[i])] = outputs[i];
  for (std::size_t v = 0; v < buffers_.size(); ++v)
    if (!buffers_[v].empty() && !where[v]) where[v] = buffers_[v].data();

  stats_ = {};
  std::vector<const float*> seg_in;
  std::vector<float*> seg_out;
  for (auto& s : segments_) {
    seg_in.clear();
    seg_out.clear();
    for (auto v : s.inputs) seg_in.push_back(where[static_cast<std::size_t>(v)]);
    for (auto v : s.outputs) seg_out.push_back(where[static_cast<std::size_t>(v)]);
    const double start = options_.trace ? options_.trace->now_us() : 0;
    s.executor->run(seg_in, seg_out);
    if (options_.trace)
      options_.trace->add({s.name, s.on_accelerator ? "dispatch-unit" : "host",
                           s.on_accelerator ? Trace::Track::accelerator : Trace::Track::host, start,
                           options_.trace->now_us() - start, -1});
    const auto st = s.executor->stats();
    stats_.dispatches += st.dispatches;
    stats_.bytes_uploaded += st.bytes_uploaded;
    stats_.bytes_downloaded += st.bytes_downloaded;
  }
  // Graph outputs that are constants (folded at load) are produced by no segment.
  for (std::size_t i = 0; i < graph_.outputs.size(); ++i) {
    const auto& v = graph_.value(graph_.outputs[i]);
    if (v.constant && v.constant->byte_size()) std::memcpy(outputs[i], v.constant->f32(), v.constant->byte_size());
  }
}

std::string HeteroExecutor::description() const {
  int units = 0, host = 0;
  for (const auto& s : segments_) (s.on_accelerator ? units : host)++;
  std::string d = "plan '" + plan_.strategy + "': " + std::to_string(host) + " host segment" + (host == 1 ? "" : "s") +
                  ", " + std::to_string(units) + " dispatch unit" + (units == 1 ? "" : "s");
  if (!accel_description_.empty()) d += " on " + accel_description_;
  if (host > 0) d += "; Halide kernels " + HostExecutor::kernel_target();
  d += "; link " + plan_.link.describe();
  return d;
}

}  // namespace vkfuse::runtime
