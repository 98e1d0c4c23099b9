// runtime/hetero_executor.h — runs a planner::Plan: runs of consecutive host
// ops as host segments, each dispatch unit as one device executor over its
// subgraph (inputs uploaded once, intermediates on the device, outputs
// downloaded once), in the plan's order, with the link emulated where the plan
// says so and every step traced.
#pragma once

#include <functional>
#include <memory>
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
  int segment_count() const { return static_cast<int>(segments_.size()); }

 private:
  struct Segment {
    bool on_accelerator = false;
    std::string name;
    std::unique_ptr<graph::Graph> subgraph;  // stable address: executors keep a reference
    std::vector<graph::ValueId> inputs, outputs;  // ids in the whole graph
    std::unique_ptr<Executor> executor;
  };

  const graph::Graph& graph_;
  planner::Plan plan_;
  ExecutorOptions options_;
  std::vector<Segment> segments_;
  std::vector<std::vector<float>> buffers_;  // per value id: host storage of intermediates
  ExecutorStats stats_;
  std::string accel_description_;
};

}  // namespace vkfuse::runtime
