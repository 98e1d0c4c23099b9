// planner/schedule.h — internal to planner/: laying a partition out as units
// and host ops in a topological order, and the schedule simulation that gives
// the predicted time. Shared by the passes and the strategies; the public
// entry points (is_acyclic, predict_us, maximal_clusters) are in planner.h.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "planner/planner.h"

namespace vkfuse::planner::detail {

struct UnitLayout {
  std::vector<int> nodes;                 // ascending = topological
  std::vector<graph::ValueId> uploads;    // values it reads that no unit produced and no earlier unit uploaded
  std::vector<graph::ValueId> downloads;  // values it produces that host ops read (or graph outputs)
  double compute_us = 0;
};

struct OrderItem {
  bool is_unit = false;
  int index = 0;  // node index or index into Layout::units
};

struct Layout {
  bool acyclic = false;
  std::vector<UnitLayout> units;  // in execution order
  std::vector<int> unit_of;       // per node: index into units, -1 on the host
  std::vector<OrderItem> order;   // host ops and units, a topological order
};

// Whether v leaves the device under p: a graph output, or read by a host op.
// Values passed between units stay in device memory (one arena per plan).
bool read_on_host(const CostModel& cm, const Partition& p, graph::ValueId v);

// Lays out p. When the quotient graph has a cycle, acyclic is false and only
// that field is meaningful.
// With isolated_units (the `naive` baseline), every unit uploads all it reads
// from outside itself and downloads all that anything outside reads, as if
// each unit had device memory of its own.
Layout lay_out(const CostModel& cm, const Partition& p, bool isolated_units = false);

struct ItemTime {
  double start_us = 0, end_us = 0;
};

// The host ops' times as the host lowering runs them: the host segments as
// they form in execution order (planner::host_segments) and the layout the
// lowering gives those ops (CostModel::host_layout, CostModel::host_op_us).
// Fed the whole order first, since a value's layout depends on its readers.
class HostOpTimes {
 public:
  void reset(int nodes) { segmenter_.reset(static_cast<std::size_t>(nodes)); }
  void unit() { segmenter_.unit(); }
  // Host op i comes next; `placement` has per node its unit label (>= 0) or
  // -1 on the host.
  void host_op(const CostModel& cm, int i, std::span<const int> placement);
  // After the whole order: lays out the host ops.
  void finish(const CostModel& cm) { cm.host_layout(segmenter_.segments(), layout_); }
  // Then host op i's time.
  double time_us(const CostModel& cm, int i) const { return cm.host_op_us(i, layout_); }

 private:
  HostSegmenter segmenter_;
  HostLayout layout_;
};
// Simulated total (µs) of a layout, transfers scaled by transfer_scale; the
// per-item times go to `times` when given.
double simulate(const CostModel& cm, const Layout& layout, double transfer_scale,
                std::vector<ItemTime>* times = nullptr);

// The same simulation as lay_out + simulate, for search loops: no plan data,
// no allocation after the first call. predict() must agree with
// encapsulate()'s predicted time exactly (a test checks it).
class Simulator {
 public:
  explicit Simulator(const CostModel& cm);
  // +inf when p is cyclic.
  double predict(const Partition& p, double transfer_scale);
  bool acyclic(const Partition& p);
  // After acyclic() or predict() of an acyclic partition: the heads (smallest
  // node index) of the host ops and units in execution order, and the members
  // of the item with a given head, ascending.
  const std::vector<int>& order() const { return order_; }
  std::span<const int> members(int head) const {
    return {members_.data() + member_start_[static_cast<std::size_t>(head)],
            members_.data() + member_start_[static_cast<std::size_t>(head) + 1]};
  }

 private:
  bool sort(const Partition& p);  // fills item_, order_, members; false on a cycle

  const CostModel& cm_;
  int n_;
  std::vector<std::pair<int, int>> edges_;  // producer node → consumer node, per activation read
  std::vector<int> item_, head_of_label_, indeg_, succ_start_, succ_, fill_, heap_, order_;
  std::vector<int> member_start_, members_;
  std::vector<std::uint32_t> seen_;  // per value: stamp of the unit that uploads it
  std::uint32_t stamp_ = 0;
  std::vector<double> host_ready_;
  HostOpTimes host_times_;
};

// The boundary refinement of pass 2 (clusters.cpp): moves single ops between
// the host and neighbouring clusters, and merges neighbouring clusters, while
// the k-weighted simulated schedule improves; at most max_passes sweeps. When
// budget is given, each schedule simulation costs node_count() from it, and
// the refinement stops when it is spent.
Partition refine(const CostModel& cm, const std::vector<char>& supported, Partition p, double k, int max_passes,
                 std::int64_t* budget = nullptr);

// Grows cluster `label` of p one op at a time for up to `steps` steps, each
// time adding the supported host neighbour that gives the best schedule even
// when it is worse than before (a look-ahead past local optima), and returns
// the best partition seen on the way. Budget as for refine.
Partition grow_path(const CostModel& cm, const std::vector<char>& supported, Partition p, int label, double k,
                    int steps, std::int64_t* budget = nullptr);

}  // namespace vkfuse::planner::detail
