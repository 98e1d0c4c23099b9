#include "runtime/hetero_executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
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
  // Overlap: a unit is started and the host goes on with segments that do
  // not need its outputs; it is waited for when one does (or at the end).
  // Off where the accelerator runs on the host's own cores (lavapipe): the
  // two would only take turns on the same cores, which is also what the
  // cost model predicts for them. VKFUSE_OVERLAP=0/1 overrides.
  overlap_ = !plan_.shares_host_cores;
  if (const char* e = std::getenv("VKFUSE_OVERLAP"); e && *e) overlap_ = std::string(e) != "0";
  // Every segment's transfers pass through here on their way to the link
  // emulator (when there is one), so that each is timed with its hold.
  options_.on_transfer = [this, inner = options_.on_transfer](TransferDirection d, std::int64_t bytes,
                                                                double measured_us) {
    const auto t0 = std::chrono::steady_clock::now();
    if (inner) inner(d, bytes, measured_us);
    const double held = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    (d == TransferDirection::upload ? upload_us_ : download_us_) += measured_us + held;
  };
  // Consecutive host steps form one host segment: they are contiguous in a
  // topological order, so the segment's inputs are all produced before it.
  std::vector<std::vector<std::int32_t>> groups;
  std::vector<bool> accel;
  std::vector<std::string> names;
  std::vector<const planner::DispatchUnit*> units;
  std::vector<double> host_us;  // per group: predicted Σ of its host ops
  int host_segments = 0;
  for (const auto& step : plan_.steps) {
    if (step.kind == planner::Step::Kind::host_op) {
      if (groups.empty() || accel.back()) {
        groups.emplace_back();
        accel.push_back(false);
        names.push_back("host segment " + std::to_string(++host_segments));
        units.push_back(nullptr);
        host_us.push_back(0);
      }
      groups.back().push_back(step.index);
      host_us.back() += plan_.nodes.at(static_cast<std::size_t>(step.index)).host_us;
    } else {
      auto unit = std::find_if(plan_.units.begin(), plan_.units.end(), [&](auto& u) { return u.id == step.index; });
      if (unit == plan_.units.end()) throw Error(ErrorKind::Internal, "plan step names a missing dispatch unit");
      groups.emplace_back(unit->nodes.begin(), unit->nodes.end());
      accel.push_back(true);
      names.push_back("unit " + std::to_string(unit->id));
      units.push_back(&*unit);
      host_us.push_back(0);
    }
  }
  for (std::size_t i = 0; i < groups.size(); ++i) {
    Segment s;
    s.on_accelerator = accel[i];
    s.name = names[i];
    s.first_step = static_cast<int>(step_times_.size());
    if (!s.on_accelerator) {
      step_times_.push_back({s.name, StepTime::Device::host, host_us[i], 0, 0});
    } else {
      const planner::DispatchUnit& u = *units[i];
      auto transfers = [&](const std::vector<planner::Transfer>& ts, const char* what) {
        StepTime t{s.name + " " + what, StepTime::Device::link, 0, 0, 0};
        for (const auto& x : ts) {
          t.predicted_us += x.predicted_us;
          t.bytes += x.bytes;
        }
        return t;
      };
      s.has_upload = !u.uploads.empty();
      s.has_download = !u.downloads.empty();
      if (s.has_upload) step_times_.push_back(transfers(u.uploads, "upload"));
      step_times_.push_back({s.name, StepTime::Device::accelerator, u.compute_us, 0, 0});
      if (s.has_download) step_times_.push_back(transfers(u.downloads, "download"));
    }
    if (groups.size() == 1 && groups[i].size() == graph_.nodes.size()) {
      // The whole graph on one device (every all-host plan): no copy of it
      // and its weights.
      s.inputs = graph_.inputs;
      s.outputs = graph_.outputs;
      s.executor = factory(graph_, s.on_accelerator, options_);
    } else {
      s.subgraph = std::make_unique<graph::Graph>(graph::extract_subgraph(graph_, groups[i], &s.inputs, &s.outputs));
      s.executor = factory(*s.subgraph, s.on_accelerator, options_);
    }
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
  // Values a started, unfinished unit will write: by the segment's index.
  std::vector<int> pending_of(graph_.values.size(), -1);
  std::vector<std::size_t> in_flight;  // in start order
  std::vector<const float*> seg_in;
  std::vector<float*> seg_out;

  auto account = [&](Segment& s, double wall_us, double upload_us, double download_us, double start_trace_us) {
    auto* step = &step_times_[static_cast<std::size_t>(s.first_step)];
    if (!s.on_accelerator) {
      step->measured_us = wall_us;
    } else {
      if (s.has_upload) (step++)->measured_us = upload_us;
      // Transfers the plan has no entry for stay in the unit's own time.
      const double moved = (s.has_upload ? upload_us : 0) + (s.has_download ? download_us : 0);
      (step++)->measured_us = std::max(0.0, wall_us - moved);
      if (s.has_download) step->measured_us = download_us;
    }
    if (options_.trace)
      options_.trace->add({s.name, s.on_accelerator ? "dispatch-unit" : "host",
                           s.on_accelerator ? Trace::Track::accelerator : Trace::Track::host, start_trace_us,
                           options_.trace->now_us() - start_trace_us, -1});
    const auto st = s.executor->stats();
    stats_.dispatches += st.dispatches;
    stats_.bytes_uploaded += st.bytes_uploaded;
    stats_.bytes_downloaded += st.bytes_downloaded;
  };
  auto finish = [&](std::size_t k) {
    Segment& s = segments_[k];
    download_us_ = 0;
    s.executor->finish();
    const double span_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - s.started).count();
    for (auto v : s.outputs) pending_of[static_cast<std::size_t>(v)] = -1;
    in_flight.erase(std::find(in_flight.begin(), in_flight.end(), k));
    account(s, span_us, s.started_upload_us, download_us_, s.started_trace_us);
  };

  try {
    for (std::size_t k = 0; k < segments_.size(); ++k) {
      Segment& s = segments_[k];
      // Wait for the units that produce this segment's inputs, and only those.
      for (auto v : s.inputs)
        if (const int p = pending_of[static_cast<std::size_t>(v)]; p >= 0) finish(static_cast<std::size_t>(p));
      seg_in.clear();
      seg_out.clear();
      for (auto v : s.inputs) seg_in.push_back(where[static_cast<std::size_t>(v)]);
      for (auto v : s.outputs) seg_out.push_back(where[static_cast<std::size_t>(v)]);
      s.started_trace_us = options_.trace ? options_.trace->now_us() : 0;
      upload_us_ = download_us_ = 0;
      s.started = std::chrono::steady_clock::now();
      if (s.on_accelerator && overlap_) {
        s.executor->start(seg_in, seg_out);
        s.started_upload_us = upload_us_;
        for (auto v : s.outputs) pending_of[static_cast<std::size_t>(v)] = static_cast<int>(k);
        in_flight.push_back(k);
        continue;
      }
      s.executor->run(seg_in, seg_out);
      const double wall_us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - s.started).count();
      account(s, wall_us, upload_us_, download_us_, s.started_trace_us);
    }
    while (!in_flight.empty()) finish(in_flight.front());
  } catch (...) {
    // Leave no unit in flight: the next run starts them again.
    for (std::size_t k : in_flight) {
      try {
        segments_[k].executor->finish();
      } catch (...) {
      }
    }
    throw;
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
