// Plan helpers and the plan checker.
#include "planner/plan.h"

#include <algorithm>
#include <set>

#include "vkfuse/error.h"

namespace vkfuse::planner {

using graph::kNoValue;
using graph::ValueId;

const char* placement_name(Placement p) { return p == Placement::accel ? "accel" : "host"; }

std::vector<int> host_segments(const graph::Graph& g, const Plan& plan) {
  const std::vector<std::int32_t> producer = g.producers();
  auto reads_a_download = [&](int n) {
    for (ValueId v : g.nodes[static_cast<std::size_t>(n)].inputs) {
      if (v == kNoValue) continue;
      const std::int32_t p = producer[static_cast<std::size_t>(v)];
      if (p >= 0 && plan.nodes.at(static_cast<std::size_t>(p)).placement == Placement::accel) return true;
    }
    return false;
  };
  HostSegmenter segmenter(g.nodes.size());
  for (const Step& step : plan.steps) {
    if (step.kind == Step::Kind::host_op) segmenter.host_op(step.index, reads_a_download(step.index));
    else segmenter.unit();
  }
  return segmenter.segments();
}

int Plan::accel_node_count() const {
  int n = 0;
  for (const PlanNode& pn : nodes) n += pn.placement == Placement::accel ? 1 : 0;
  return n;
}

namespace {

[[noreturn]] void violation(const std::string& what) { throw Error(ErrorKind::Internal, "invalid plan: " + what); }

}  // namespace

void check_plan(const Plan& plan, const graph::Graph& g) {
  const std::size_t n = g.nodes.size();
  if (plan.nodes.size() != n)
    violation(std::to_string(plan.nodes.size()) + " node entries for " + std::to_string(n) + " nodes");
  std::vector<std::int32_t> producer = g.producers();
  std::vector<std::vector<int>> consumers(g.values.size());
  for (std::size_t i = 0; i < n; ++i)
    for (ValueId v : g.nodes[i].inputs)
      if (v != kNoValue && !g.is_constant(v)) consumers[static_cast<std::size_t>(v)].push_back(static_cast<int>(i));
  std::vector<char> is_output(g.values.size(), 0);
  for (ValueId v : g.outputs) is_output[static_cast<std::size_t>(v)] = 1;

  for (std::size_t i = 0; i < n; ++i) {
    const PlanNode& pn = plan.nodes[i];
    if (pn.name != g.nodes[i].name)
      violation("node " + std::to_string(i) + " is '" + pn.name + "', graph has '" + g.nodes[i].name + "'");
    if ((pn.placement == Placement::accel) != (pn.unit >= 0))
      violation("node '" + pn.name + "': placement and unit disagree");
    if (pn.unit >= static_cast<int>(plan.units.size())) violation("node '" + pn.name + "' names a missing unit");
  }
  std::vector<int> unit_of(n, -1);
  for (std::size_t u = 0; u < plan.units.size(); ++u) {
    const DispatchUnit& unit = plan.units[u];
    if (unit.id != static_cast<int>(u)) violation("unit ids must be 0..N-1 in order");
    if (unit.nodes.empty()) violation("unit " + std::to_string(u) + " is empty");
    for (int i : unit.nodes) {
      if (i < 0 || static_cast<std::size_t>(i) >= n) violation("unit " + std::to_string(u) + " names a missing node");
      if (unit_of[static_cast<std::size_t>(i)] >= 0)
        violation("node '" + plan.nodes[static_cast<std::size_t>(i)].name + "' is in two units");
      if (plan.nodes[static_cast<std::size_t>(i)].unit != static_cast<int>(u))
        violation("node '" + plan.nodes[static_cast<std::size_t>(i)].name + "' disagrees with unit " +
                  std::to_string(u));
      unit_of[static_cast<std::size_t>(i)] = static_cast<int>(u);
    }
  }
  for (std::size_t i = 0; i < n; ++i)
    if (plan.nodes[i].unit >= 0 && unit_of[i] != plan.nodes[i].unit)
      violation("node '" + plan.nodes[i].name + "' is missing from its unit");

  // Steps: each host op and each unit once, in a topological order.
  std::vector<char> done(n, 0);
  std::vector<char> step_seen_unit(plan.units.size(), 0);
  auto input_ready = [&](int i, const std::vector<char>& local) {
    for (ValueId v : g.nodes[static_cast<std::size_t>(i)].inputs) {
      if (v == kNoValue || g.is_constant(v)) continue;
      const int p = producer[static_cast<std::size_t>(v)];
      if (p >= 0 && !done[static_cast<std::size_t>(p)] && !local[static_cast<std::size_t>(p)]) return false;
    }
    return true;
  };
  std::vector<char> none(n, 0), local(n, 0), uploaded(g.values.size(), 0);
  for (const Step& s : plan.steps) {
    if (s.kind == Step::Kind::host_op) {
      if (s.index < 0 || static_cast<std::size_t>(s.index) >= n) violation("a step names a missing node");
      const std::size_t i = static_cast<std::size_t>(s.index);
      if (plan.nodes[i].placement != Placement::host)
        violation("node '" + plan.nodes[i].name + "' is a host step but placed on the accelerator");
      if (done[i]) violation("node '" + plan.nodes[i].name + "' runs twice");
      if (!input_ready(s.index, none)) violation("host op '" + plan.nodes[i].name + "' runs before its inputs");
      done[i] = 1;
    } else {
      if (s.index < 0 || static_cast<std::size_t>(s.index) >= plan.units.size())
        violation("a step names a missing unit");
      if (step_seen_unit[static_cast<std::size_t>(s.index)])
        violation("unit " + std::to_string(s.index) + " runs twice");
      step_seen_unit[static_cast<std::size_t>(s.index)] = 1;
      const DispatchUnit& unit = plan.units[static_cast<std::size_t>(s.index)];
      for (int i : unit.nodes) {
        if (!input_ready(i, local))
          violation("unit " + std::to_string(unit.id) + ": '" + plan.nodes[static_cast<std::size_t>(i)].name +
                    "' reads a value not yet computed (a cycle through host ops?)");
        local[static_cast<std::size_t>(i)] = 1;
      }
      std::set<ValueId> ups, downs;
      for (int i : unit.nodes) {
        for (ValueId v : g.nodes[static_cast<std::size_t>(i)].inputs) {
          if (v == kNoValue || g.is_constant(v)) continue;
          // Values units produce, and values an earlier unit uploaded, are in device memory already.
          const int p = producer[static_cast<std::size_t>(v)];
          if (plan.isolated_units ? (p < 0 || !local[static_cast<std::size_t>(p)])
                                  : ((p < 0 || unit_of[static_cast<std::size_t>(p)] < 0) &&
                                     !uploaded[static_cast<std::size_t>(v)]))
            ups.insert(v);
        }
        for (ValueId v : g.nodes[static_cast<std::size_t>(i)].outputs) {
          if (v == kNoValue) continue;
          bool on_host = is_output[static_cast<std::size_t>(v)] != 0;
          for (int c : consumers[static_cast<std::size_t>(v)])
            on_host = on_host || (plan.isolated_units ? !local[static_cast<std::size_t>(c)]
                                                      : unit_of[static_cast<std::size_t>(c)] < 0);
          if (on_host) downs.insert(v);
        }
      }
      std::set<ValueId> got_ups, got_downs;
      for (const Transfer& t : unit.uploads) got_ups.insert(t.value);
      for (const Transfer& t : unit.downloads) got_downs.insert(t.value);
      if (got_ups != ups || unit.uploads.size() != ups.size())
        violation("unit " + std::to_string(unit.id) +
                  ": uploads are not exactly the values it reads from the host that no earlier unit uploaded");
      if (got_downs != downs || unit.downloads.size() != downs.size())
        violation("unit " + std::to_string(unit.id) + ": downloads are not exactly its values that the host reads");
      for (ValueId v : ups) uploaded[static_cast<std::size_t>(v)] = 1;
      for (int i : unit.nodes) {
        local[static_cast<std::size_t>(i)] = 0;
        done[static_cast<std::size_t>(i)] = 1;
      }
    }
  }
  for (std::size_t i = 0; i < n; ++i)
    if (!done[i]) violation("node '" + plan.nodes[i].name + "' never runs");
}

}  // namespace vkfuse::planner
