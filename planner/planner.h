// planner/planner.h — the planner: decides which ops run on the host and which
// on the accelerator, and groups accelerator ops into dispatch units, from
// device and link profiles alone (no Vulkan, no Halide here).
//
//   PlanOptions options;                 // strategy "fused", k = 1
//   Plan plan = make_plan(graph, default_host_profile(), accel_profile,
//                         link_from_spec("edge"), options);
//   std::cout << plan_to_text(plan);
//
// Strategies (strategies.cpp): cpu, gpu, naive, fused (default), passes,
// fuse-all, per-op. `passes` runs the three passes alone, one file each;
// `fused` keeps their plan unless the schedule simulation predicts another
// candidate (cpu, gpu, per-op, naive, or a refined restart) to be faster
// (Plan::candidate says which won):
//   1. find_anchors      (anchors.cpp)        ops whose offload benefit is large
//   2. develop_clusters  (clusters.cpp)       grow clusters along producer/consumer
//                                             edges while net benefit improves;
//                                             never a cycle through host ops
//   3. encapsulate       (dispatch_units.cpp) each cluster → one dispatch unit,
//                                             transfers, order, predicted time
// The profiles, the cost model and the plan data live in profile.h,
// cost_model.h and plan.h, included here.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/ir.h"
#include "planner/cost_model.h"
#include "planner/plan.h"
#include "planner/profile.h"

namespace vkfuse::planner {

// Whether the accelerator backend runs this op. Empty: every op graph/ops.h knows.
using AccelSupports = std::function<bool(const graph::Graph&, const graph::Node&)>;

struct PlanOptions {
  std::string strategy = "fused";
  // Offloading-ratio knob: an offload must show compute benefit > k × its
  // transfer cost. k = 1 plans for predicted time; k > 1 offloads less; k = 0
  // ignores transfers.
  double k = 1.0;
  AccelSupports accel_supports;
  // The profiles are measured ones of devices present on this machine; when
  // false (the default), the plan is labelled predicted_only.
  bool devices_present = false;
};

std::vector<std::string> strategy_names();  // cpu, gpu, naive, fused, passes, fuse-all, per-op

// Throws Error(InvalidArgument) for an unknown strategy or k < 0, and
// Error(InvalidArgument) for an unsorted or unshaped graph.
Plan make_plan(const graph::Graph& g, const DeviceProfile& host, const DeviceProfile& accel, const LinkProfile& link,
               const PlanOptions& options = {});
Plan make_plan(const CostModel& cm, const PlanOptions& options = {});

// ---- the passes, exposed for tests and tools --------------------------------

// Per node: -1 on the host, otherwise the id of the cluster (dispatch unit) it
// belongs to. Ids need not be contiguous.
using Partition = std::vector<int>;

// Which nodes the accelerator supports (1) or not (0).
std::vector<char> supported_mask(const CostModel& cm, const AccelSupports& supports);

// Pass 1. Every supported op that computes faster on the accelerator
// (gain = t_host − t_accel_alone > 0), best first. `strong` anchors pay for
// their own transfers: gain > k × transfer(own inputs and outputs); the others
// can still seed a cluster whose transfers are shared.
struct Anchor {
  int node = 0;
  double gain_us = 0;
  double transfer_us = 0;  // its own uploads and downloads, as a unit alone
  double benefit_us = 0;   // gain − k × transfer
  bool strong = false;
};
std::vector<Anchor> find_anchors(const CostModel& cm, const std::vector<char>& supported, double k);

// Net benefit of running `members` as one dispatch unit instead of on the host:
// Σ t_host − unit compute − k × (uploads + downloads), everything else on the host.
double cluster_benefit_us(const CostModel& cm, const std::vector<int>& members, double k);

// Pass 2. Grows clusters from the anchors (strong first); a merge (a neighbour
// op, or a neighbouring cluster) is taken while the merged cluster's benefit
// beats the parts' and the plan stays acyclic; clusters whose benefit is not
// positive go back to the host. Then a boundary refinement moves single ops in
// or out of clusters while the simulated (k-weighted) schedule improves.
Partition develop_clusters(const CostModel& cm, const std::vector<Anchor>& anchors, const std::vector<char>& supported,
                           double k);

// The plan's quotient graph (each cluster contracted, host ops alone) is
// acyclic: each cluster is convex and an execution order exists.
bool is_acyclic(const CostModel& cm, const Partition& p);
// Groups the accelerator-placed ops into maximal clusters along
// producer/consumer edges, merging only while the result stays acyclic.
Partition maximal_clusters(const CostModel& cm, const std::vector<char>& on_accel);
// Simulated total of the partition in µs (see Plan::predicted_ms), with
// transfer times scaled by transfer_scale (the k-weighted objective). +inf
// if the partition is cyclic.
double predict_us(const CostModel& cm, const Partition& p, double transfer_scale = 1.0);

// Pass 3. Each cluster → one dispatch unit with its transfers; steps in a
// valid topological order; the schedule simulation. Throws Error(Internal) on
// a cyclic partition.
// With isolated_units (the `naive` baseline) values between units go down
// and up again, as if each unit had device memory of its own.
Plan encapsulate(const CostModel& cm, const Partition& p, const std::string& strategy, double k, bool devices_present,
                 bool isolated_units = false);

// Reads a plan saved with plan_to_json back for the graph of cm: each op's
// unit is taken from the file (matched by node name); transfers, order and
// predicted times are recomputed with cm's profiles and link. Throws
// Error(InvalidArgument) naming the problem (bad JSON, an unknown or missing
// node, units that form a cycle).
Plan plan_from_json(std::string_view json_text, const CostModel& cm, bool devices_present = false);
// plan_from_json of a file.
Plan load_plan(const std::string& path, const CostModel& cm, bool devices_present = false);

}  // namespace vkfuse::planner
