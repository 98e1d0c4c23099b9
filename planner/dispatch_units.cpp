// Pass 3, dispatch-unit encapsulation: each cluster becomes one unit — one
// submission whose inputs are uploaded once, whose intermediates stay in
// device memory, whose elementwise epilogues run in their producer's kernel,
// and whose outputs (whatever anything outside reads) are downloaded once.
// The units and the host ops are put in a topological order, and the schedule
// simulation gives the plan's predicted time.
#include <string>

#include "planner/schedule.h"
#include "vkfuse/error.h"

namespace vkfuse::planner {

using graph::ValueId;

namespace {

Transfer make_transfer(const CostModel& cm, Direction d, ValueId v) {
  Transfer t;
  t.value = v;
  t.name = cm.graph().value(v).name;
  t.bytes = static_cast<std::int64_t>(cm.value_bytes(v));
  t.predicted_us = cm.transfer_us(d, v);
  return t;
}

}  // namespace

Plan encapsulate(const CostModel& cm, const Partition& p, const std::string& strategy, double k, bool devices_present,
                 bool isolated_units) {
  const graph::Graph& g = cm.graph();
  const int n = cm.node_count();
  if (static_cast<int>(p.size()) != n)
    throw Error(ErrorKind::Internal,
                "planner: partition has " + std::to_string(p.size()) + " entries for " + std::to_string(n) + " nodes");
  detail::Layout layout = detail::lay_out(cm, p, isolated_units);
  if (!layout.acyclic)
    throw Error(ErrorKind::Internal,
                "planner: strategy '" + strategy + "' produced clusters with a cycle through host ops");

  Plan plan;
  plan.model = g.name;
  plan.strategy = strategy;
  plan.k = k;
  plan.host_profile = cm.host().name;
  plan.accel_profile = cm.accel().name;
  plan.shares_host_cores = cm.accel().shares_host_cores;
  plan.isolated_units = isolated_units;
  plan.link = cm.link();
  // Predicted from the profiles the plan uses: an all-host plan's from the
  // host's alone.
  plan.predicted_only = !devices_present || !cm.host().measured || (!layout.units.empty() && !cm.accel().measured);

  plan.nodes.resize(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const graph::Node& node = g.nodes[static_cast<std::size_t>(i)];
    PlanNode& pn = plan.nodes[static_cast<std::size_t>(i)];
    pn.name = node.name;
    pn.op_type = node.op_type;
    if (node.activation.kind != graph::Activation::Kind::None) pn.op_type += std::string("+") + node.activation.name();
    pn.op_class = cm.node(i).view ? "view" : op_class_name(cm.node(i).op_class);
    pn.unit = layout.unit_of[static_cast<std::size_t>(i)];
    pn.placement = pn.unit >= 0 ? Placement::accel : Placement::host;
    pn.host_us = cm.host_us(i);
    pn.accel_us = cm.accel_us(i);
  }

  for (std::size_t u = 0; u < layout.units.size(); ++u) {
    const detail::UnitLayout& ul = layout.units[u];
    DispatchUnit unit;
    unit.id = static_cast<int>(u);
    unit.nodes = ul.nodes;
    unit.kernel_of = cm.kernel_roots(ul.nodes, p);
    for (int i : ul.nodes) {
      unit.dispatches.push_back(cm.fusion().kernels(i, p, !isolated_units));
      unit.kernels += unit.dispatches.back();
    }
    for (ValueId v : ul.uploads) unit.uploads.push_back(make_transfer(cm, Direction::host_to_device, v));
    for (ValueId v : ul.downloads) unit.downloads.push_back(make_transfer(cm, Direction::device_to_host, v));
    unit.compute_us = ul.compute_us;
    plan.accel_ms += unit.compute_us / 1e3;
    for (const Transfer& t : unit.uploads) {
      plan.transfer_ms += t.predicted_us / 1e3;
      plan.bytes_uploaded += t.bytes;
    }
    for (const Transfer& t : unit.downloads) {
      plan.transfer_ms += t.predicted_us / 1e3;
      plan.bytes_downloaded += t.bytes;
    }
    plan.transfers += static_cast<int>(unit.uploads.size() + unit.downloads.size());
    plan.units.push_back(std::move(unit));
  }

  std::vector<detail::ItemTime> times;
  plan.predicted_ms = detail::simulate(cm, layout, 1.0, &times) / 1e3;
  for (std::size_t s = 0; s < layout.order.size(); ++s) {
    Step step;
    step.kind = layout.order[s].is_unit ? Step::Kind::unit : Step::Kind::host_op;
    step.index = layout.order[s].index;
    step.start_us = times[s].start_us;
    step.end_us = times[s].end_us;
    plan.steps.push_back(step);
  }
  // The host ops' kernels and times, as the host lowering will run them.
  HostLayout host_layout;
  cm.host_layout(host_segments(g, plan), host_layout);
  for (int i = 0; i < n; ++i) {
    PlanNode& pn = plan.nodes[static_cast<std::size_t>(i)];
    if (pn.placement != Placement::host) continue;
    int conv = host_layout.epilogue_of[static_cast<std::size_t>(i)];
    if (conv < 0) conv = host_layout.gated_conv[static_cast<std::size_t>(i)];
    pn.kernel_of = conv >= 0 ? conv : i;
    pn.host_us = cm.host_op_us(i, host_layout);
    pn.blocked = host_layout.blocked_kernel[static_cast<std::size_t>(i)] != 0;
    for (ValueId v : cm.outputs(i))
      if (host_layout.planar_copy[static_cast<std::size_t>(v)]) {
        pn.to_planar = true;
        ++plan.host_copies;
      }
    plan.host_kernels += conv >= 0 ? 0 : 1;
    plan.host_ms += pn.host_us / 1e3;
  }
  return plan;
}

}  // namespace vkfuse::planner
