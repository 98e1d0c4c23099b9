// runtime/hetero_executor.h — runs a planner::Plan on the real backends: runs
// of consecutive host ops as host segments (Halide), and every dispatch unit
// of the plan as one command buffer of a single Vulkan executor over all the
// plan's accelerator ops. The units share one device arena, weights and
// pipelines, so a value passed from unit to unit stays in device memory: only
// the values a host op (or the caller) produces and a unit reads go up, once,
// and only the values a host op reads (or graph outputs) come down — exactly
// the transfers the plan lists. Each transfer is held by the emulated link
// (when there is one) on its own, as the cost model charges it. With overlap
// on, a unit is submitted and the host runs on through the segments that do
// not need its outputs, waiting on the unit only when a consumer needs them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "planner/plan.h"
#include "runtime/executor.h"
#include "runtime/trace.h"

namespace vkfuse::runtime {

namespace vulkan {
class VulkanExecutor;
}

class HeteroExecutor final : public Executor {
 public:
  HeteroExecutor(const graph::Graph& graph, planner::Plan plan, ExecutorOptions options);
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
  // The device executor of the plan's units (null for an all-host plan).
  const vulkan::VulkanExecutor* device() const { return device_.get(); }

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
    int unit = -1;                           // on the accelerator: the device executor's unit
    std::unique_ptr<graph::Graph> subgraph;  // host: stable address (executors keep a reference); null: the whole graph
    std::vector<graph::ValueId> inputs, outputs;  // ids in the whole graph: what it reads and what leaves it
    std::unique_ptr<Executor> executor;           // host segments
    int first_step = 0;  // its first entry in step_times_
    bool has_upload = false, has_download = false;
    // The current run, between start and finish of a unit.
    std::chrono::steady_clock::time_point started;
    double started_upload_us = 0, started_trace_us = 0;
  };

  // Rewires device_graph_ for a plan with isolated units (`naive`).
  void isolate_units(const std::vector<int>& unit_of);

  const graph::Graph& graph_;
  planner::Plan plan_;
  ExecutorOptions options_;
  std::vector<Segment> segments_;
  // All the plan's accelerator ops, unit after unit (null: the whole graph),
  // its inputs and outputs as ids of the whole graph, and its executor.
  std::unique_ptr<graph::Graph> device_graph_;
  std::vector<graph::ValueId> device_inputs_, device_outputs_;
  std::unique_ptr<vulkan::VulkanExecutor> device_;
  std::vector<std::vector<float>> buffers_;  // per value id: host storage of values crossing segments
  ExecutorStats stats_;
  std::vector<StepTime> step_times_;
  bool overlap_ = false;
  // Transfer time of the running unit, summed by the on_transfer wrapper.
  double upload_us_ = 0, download_us_ = 0;
};

}  // namespace vkfuse::runtime
