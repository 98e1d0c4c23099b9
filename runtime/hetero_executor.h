// runtime/hetero_executor.h — runs a planner::Plan: runs of consecutive host
// ops as host segments, each dispatch unit as one device executor over its
// subgraph (inputs uploaded once, intermediates on the device, outputs
// downloaded once), in the plan's order, with the link emulated where the plan
// says so and every step traced. With overlap on, a unit is submitted and the
// host runs on through the segments that do not need its outputs, waiting on
// the unit (its fence) only when a consumer needs them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "planner/plan.h"
#include "runtime/executor.h"
#include "runtime/trace.h"

namespace vkfuse::runtime {

// Builds the executor of one segment: on_accelerator false → host.
using SegmentExecutorFactory =
    std::function<std::unique_ptr<Executor>(const graph::Graph& subgraph, bool on_accelerator, const ExecutorOptions&)>;

// The factory vkfuse uses: make_host_executor / make_vulkan_executor.
SegmentExecutorFactory default_segment_factory();

class HeteroExecutor final : public Executor {
 public:
  HeteroExecutor(const graph::Graph& graph, planner::Plan plan, ExecutorOptions options,
                 const SegmentExecutorFactory& factory = default_segment_factory());
  ~HeteroExecutor() override;

  void run(std::span<const float* const> inputs, std::span<float* const> outputs) override;
  ExecutorStats stats() const override { return stats_; }
  std::string description() const override;

  const planner::Plan& plan() const { return plan_; }
  // Whether run() overlaps dispatch units with the host segments that do not
  // depend on them (see the constructor); settable for tests and experiments.
  bool overlap() const { return overlap_; }
  void set_overlap(bool on) { overlap_ = on; }
  int segment_count() const { return static_cast<int>(segments_.size()); }

  // Predicted against measured, per step of the last run: each host segment,
  // and per dispatch unit its uploads, its compute (submission and wait) and
  // its downloads, in execution order. Predicted times come from the plan
  // (Σ op times of a host segment, the unit's compute, Σ of its transfers);
  // measured ones are wall time (a transfer's includes the emulated link's
  // hold; with overlap, a unit's compute is its span from submission to the
  // return of the wait on it, less its transfers, so it includes host work
  // done meanwhile). Empty entries (a unit without uploads) are left out.
  struct StepTime {
    enum class Device : std::uint8_t { host, accelerator, link };
    std::string name;
    Device device = Device::host;
    double predicted_us = 0;
    double measured_us = 0;
    std::int64_t bytes = 0;  // transfers: bytes moved; otherwise 0
  };
  const std::vector<StepTime>& step_times() const { return step_times_; }

 private:
  struct Segment {
    bool on_accelerator = false;
    std::string name;
    std::unique_ptr<graph::Graph> subgraph;  // stable address: executors keep a reference; null: the whole graph
    std::vector<graph::ValueId> inputs, outputs;  // ids in the whole graph
    std::unique_ptr<Executor> executor;
    int first_step = 0;  // its first entry in step_times_
    bool has_upload = false, has_download = false;
    // The current run, between start() and finish() of a unit.
    std::chrono::steady_clock::time_point started;
    double started_upload_us = 0, started_trace_us = 0;
  };

  const graph::Graph& graph_;
  planner::Plan plan_;
  ExecutorOptions options_;
  std::vector<Segment> segments_;
  std::vector<std::vector<float>> buffers_;  // per value id: host storage of intermediates
  ExecutorStats stats_;
  std::string accel_description_;
  std::vector<StepTime> step_times_;
  bool overlap_ = false;
  // Transfer time of the running segment, summed by the on_transfer wrapper.
  double upload_us_ = 0, download_us_ = 0;
};

}  // namespace vkfuse::runtime
