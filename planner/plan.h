// planner/plan.h — a plan is data: where each op runs, the dispatch units with
// the transfers they make, the execution order and the predicted time.
//
// Node indices are positions in the (sorted, prepared) graph the plan was made
// for; names are recorded too, so exported plans stand on their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "planner/profile.h"

namespace vkfuse::planner {

enum class Placement : std::uint8_t { host, accel };
const char* placement_name(Placement p);

// One value crossing the link.
struct Transfer {
  graph::ValueId value = graph::kNoValue;
  std::string name;
  std::int64_t bytes = 0;
  double predicted_us = 0;
};

// A dispatch unit: one submission (one command buffer) on the accelerator.
// All units of a plan share one device arena: a value one unit produces and
// another reads stays in device memory. A unit uploads the values it reads
// that the host (or the caller) produced and no earlier unit uploaded, and
// downloads the values it produces that a host op reads (or graph outputs),
// each once.
struct DispatchUnit {
  int id = 0;
  std::vector<int> nodes;           // in execution (topological) order
  std::vector<int> kernel_of;       // per entry of nodes: the node whose kernel it runs in
                                    // (itself, or the producer it is fused into as an epilogue)
  std::vector<int> dispatches;      // per entry of nodes: the kernels it launches (0: runs in another's,
                                    // or needs none; a Concat: one per input not written in place)
  int kernels = 0;                  // Σ dispatches: what the Vulkan executor launches for the unit
  std::vector<Transfer> uploads;    // host → device, before the unit runs
  std::vector<Transfer> downloads;  // device → host, after it
  double compute_us = 0;            // predicted accelerator time, submit included
};

struct PlanNode {
  std::string name, op_type, op_class;
  Placement placement = Placement::host;
  int unit = -1;        // unit id when on the accelerator
  double host_us = 0;   // predicted, on its own (on the host: as it runs there, an epilogue costing its extra reads)
  double accel_us = 0;  // predicted, as its own kernel
  // On the host: the node whose kernel runs it — itself, the Conv or Resize
  // it is the residual epilogue of, or the Conv whose filters take its gate
  // (HostFusion). -1 on the accelerator.
  int kernel_of = -1;
  // On the host: its kernel runs in blocked channels (planner/host_layout.h),
  // and its output is also copied to planar for its planar readers.
  bool blocked = false;
  bool to_planar = false;
};

// One entry of the execution order: a host op or a whole dispatch unit.
struct Step {
  enum class Kind : std::uint8_t { host_op, unit };
  Kind kind = Kind::host_op;
  int index = 0;        // node index (host_op) or unit id (unit)
  double start_us = 0;  // simulated schedule
  double end_us = 0;
};

struct Plan {
  std::string model;
  std::string strategy;
  std::string note;                         // how the strategy decided (e.g. which candidate won)
  // The plan that won: the strategy itself, or for `fused` one of its
  // candidates ("passes", "cpu", "gpu", "per-op", "naive"), "<candidate>,
  // refined" or "restart at <node>".
  std::string candidate;
  double k = 1;                             // the offloading-ratio knob the plan was made with
  std::string host_profile, accel_profile;  // profile names
  bool shares_host_cores = false;           // accelerator runs on the host's cores
  bool isolated_units = false;              // `naive`: no value stays in device memory between units
  LinkProfile link;
  bool predicted_only = true;  // profiles not measured on present devices

  std::vector<PlanNode> nodes;  // per graph node
  std::vector<DispatchUnit> units;
  std::vector<Step> steps;  // a valid topological order of host ops and units

  // The schedule simulation: host ops, the link and the accelerator are
  // three resources each taking work in plan order, so transfers overlap host
  // work and accelerator work; an accelerator on the host's cores
  // (shares_host_cores) takes turns with the host ops instead, while the link
  // still runs apart. This is what HeteroExecutor does.
  double predicted_ms = 0;
  double host_ms = 0;      // Σ host op time
  double accel_ms = 0;     // Σ unit compute time
  double transfer_ms = 0;  // Σ transfer time
  std::int64_t bytes_uploaded = 0, bytes_downloaded = 0;
  int transfers = 0;
  int host_kernels = 0;  // host ops that run a kernel of their own (the rest are epilogues)
  int host_copies = 0;   // copies from blocked channels to planar (host steps beside the kernels)

  int accel_node_count() const;
};

// The host segments of a plan, as HeteroExecutor runs them: per node its
// segment, numbered in plan order, or -1 on the accelerator. Consecutive
// host steps form one segment; a host op that reads a value a unit produced
// (a download) begins a new one, so that the host ops before it run while
// that unit is in flight. Ops fuse only within a segment.
std::vector<int> host_segments(const graph::Graph& g, const Plan& plan);

// That rule, step by step in execution order (host_segments and the
// schedule simulation's HostOpTimes both follow it).
class HostSegmenter {
 public:
  explicit HostSegmenter(std::size_t nodes = 0) { reset(nodes); }
  void reset(std::size_t nodes) {  // keeps its storage (search loops)
    segment_.assign(nodes, -1);
    current_ = -1;
    after_unit_ = true;
  }
  void unit() { after_unit_ = true; }
  // Host op i runs next; whether it reads a value an accelerator op made.
  void host_op(int i, bool reads_a_download) {
    if (after_unit_ || reads_a_download) ++current_;
    after_unit_ = false;
    segment_.at(static_cast<std::size_t>(i)) = current_;
  }
  // Per node its segment so far (-1: not a host op, or not reached).
  const std::vector<int>& segments() const { return segment_; }

 private:
  std::vector<int> segment_;
  int current_ = -1;
  bool after_unit_ = true;
};

// Checks that the plan is well formed for g: one entry per node, every
// accelerator node in exactly one unit, every node in exactly one step, steps a
// topological order, each unit's uploads/downloads exactly the values that
// cross the link there (see DispatchUnit). Throws Error(Internal) describing
// the first violation.
void check_plan(const Plan& plan, const graph::Graph& g);

// Exports. Text: a human table (placements, units with their transfers, order,
// predicted times, the link and profiles). JSON: everything in the plan. DOT:
// the graph, nodes coloured by device, units boxed as `subgraph cluster_N`,
// edges labelled with bytes where they cross the link.
std::string plan_to_text(const Plan& plan);
// The JSON's "format": the version of the fields a reader must understand
// (plan_from_json refuses a newer one and reads a file without it as 1).
constexpr int kPlanFormat = 1;
std::string plan_to_json(const Plan& plan);
std::string plan_to_dot(const Plan& plan, const graph::Graph& g);

}  // namespace vkfuse::planner
