// The strategies: how each one places ops and forms units, then pass 3.
//
//   cpu       every op on the host
//   gpu       every supported op on the accelerator, as few units as stay acyclic
//             (one for the whole graph when the accelerator runs every op)
//   naive     every supported op offloaded on its own, with its own transfers
//             (the thesis' baseline)
//   fused     cost-aware: anchors → clusters → units (the default). The passes'
//             plan is compared, by the k-weighted simulated schedule, with the
//             cpu, gpu, per-op and naive plans, and with the cpu, gpu and per-op
//             plans after the cluster pass' boundary refinement; then, within a
//             fixed search budget, with restarts from each op alone in a unit
//             (grown along its best path, then refined). The best one wins, so
//             fused never predicts worse than the plan a user would have picked
//             by hand, and on random DAGs of up to 12 ops stays within 5% of an
//             exhaustive search (tests/planner/test_planner_strategies.cpp).
//   passes    the thesis' algorithm alone: pass 1 → 2 → 3, no other candidate
//             and no search (the ablation's "selective fusion")
//   fuse-all  clusters without cost selection: every maximal acyclic cluster
//             of supported ops that holds an anchor (an op that computes
//             faster on the accelerator) is offloaded whole, whether or not it
//             pays for its transfers; clusters with no anchor stay on the
//             host. gpu offloads them too. (The ablation's "fuse everything".)
//   per-op    cost-aware placement without clustering: an op goes to the
//             accelerator, alone in its unit, when t_accel + k × its own
//             transfers < t_host
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "planner/schedule.h"
#include "vkfuse/error.h"

namespace vkfuse::planner {

namespace {

// Search budget of fused's restarts, in node-steps of the schedule simulation
// (one simulation of an n-node graph costs n): ≈0.05 s for Inception v3 in a
// release build. Graphs of up to ≈25 ops get every restart.
constexpr std::int64_t kRestartBudget = 400'000;
// How far each restart grows its unit before refining (look-ahead steps).
constexpr int kGrowSteps = 6;

Partition all_host(const CostModel& cm) { return Partition(static_cast<std::size_t>(cm.node_count()), -1); }

Partition each_alone(const CostModel& cm, const std::vector<char>& on_accel) {
  Partition p = all_host(cm);
  for (int i = 0; i < cm.node_count(); ++i)
    if (on_accel[static_cast<std::size_t>(i)]) p[static_cast<std::size_t>(i)] = i;
  return p;
}

Partition per_op(const CostModel& cm, const std::vector<char>& supported, double k) {
  std::vector<char> on_accel(supported.size(), 0);
  for (int i = 0; i < cm.node_count(); ++i) {
    if (!supported[static_cast<std::size_t>(i)]) continue;
    double xfer = 0;
    for (graph::ValueId v : cm.activation_inputs(i)) xfer += cm.transfer_us(Direction::host_to_device, v);
    for (graph::ValueId v : cm.outputs(i))
      if (cm.is_graph_output(v) || !cm.consumers()[static_cast<std::size_t>(v)].empty())
        xfer += cm.transfer_us(Direction::device_to_host, v);
    on_accel[static_cast<std::size_t>(i)] = cm.accel_alone_us(i) + k * xfer < cm.host_us(i) ? 1 : 0;
  }
  return each_alone(cm, on_accel);
}

std::string ms(double us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", us / 1e3);
  return buf;
}

int unsupported_count(const std::vector<char>& supported) {
  int n = 0;
  for (char s : supported) n += s ? 0 : 1;
  return n;
}

Partition fuse_all(const CostModel& cm, const std::vector<char>& supported, const std::vector<Anchor>& anchors) {
  Partition p = maximal_clusters(cm, supported);
  std::vector<char> keep(p.size(), 0);  // by cluster id (a member's node index)
  for (const Anchor& a : anchors)
    if (const int c = p[static_cast<std::size_t>(a.node)]; c >= 0) keep[static_cast<std::size_t>(c)] = 1;
  // Dissolving whole clusters of an acyclic partition keeps it acyclic.
  for (int& c : p)
    if (c >= 0 && !keep[static_cast<std::size_t>(c)]) c = -1;
  return p;
}

}  // namespace

std::vector<std::string> strategy_names() {
  return {"cpu", "gpu", "naive", "fused", "passes", "fuse-all", "per-op"};
}

Plan make_plan(const graph::Graph& g, const DeviceProfile& host, const DeviceProfile& accel, const LinkProfile& link,
               const PlanOptions& options) {
  CostModel cm(g, host, accel, link);
  return make_plan(cm, options);
}

Plan make_plan(const CostModel& cm, const PlanOptions& options) {
  const double k = options.k;
  if (!(k >= 0) || !std::isfinite(k))
    throw Error(ErrorKind::InvalidArgument, "the offloading ratio k must be a finite number >= 0");
  const std::vector<char> supported = supported_mask(cm, options.accel_supports);
  const std::string& s = options.strategy;
  Partition p;
  std::string note, candidate = s;
  const int unsupported = unsupported_count(supported);
  const std::string unsupported_note =
      unsupported ? std::to_string(unsupported) + " op(s) the accelerator does not run stay on the host" : "";

  if (s == "cpu") {
    p = all_host(cm);
  } else if (s == "gpu") {
    p = maximal_clusters(cm, supported);
    note = unsupported_note;
  } else if (s == "fuse-all") {
    const std::vector<Anchor> anchors = find_anchors(cm, supported, k);
    p = fuse_all(cm, supported, anchors);
    note = std::to_string(anchors.size()) + " anchors; every cluster holding one offloaded whole";
    if (unsupported) note += "; " + unsupported_note;
  } else if (s == "passes") {
    const std::vector<Anchor> anchors = find_anchors(cm, supported, k);
    p = develop_clusters(cm, anchors, supported, k);
    note = std::to_string(anchors.size()) + " anchors; passes 1-3 alone";
    if (unsupported) note += "; " + unsupported_note;
  } else if (s == "naive") {
    p = each_alone(cm, supported);
    note = unsupported_note;
  } else if (s == "per-op") {
    p = per_op(cm, supported, k);
  } else if (s == "fused") {
    const std::vector<Anchor> anchors = find_anchors(cm, supported, k);
    int strong = 0;
    for (const Anchor& a : anchors) strong += a.strong ? 1 : 0;
    struct Candidate {
      const char* name;
      Partition p;
      double cost = 0;
    };
    std::vector<Candidate> cands;
    cands.push_back({"passes", develop_clusters(cm, anchors, supported, k)});
    cands.push_back({"cpu", all_host(cm)});
    cands.push_back({"gpu", maximal_clusters(cm, supported)});
    cands.push_back({"per-op", per_op(cm, supported, k)});
    cands.push_back({"naive", each_alone(cm, supported)});
    // Each candidate, then the boundary refinement from each (a local search
    // from several starting points).
    detail::Simulator sim(cm);
    std::size_t best = 0;
    for (std::size_t c = 0; c < cands.size(); ++c) {
      cands[c].cost = sim.predict(cands[c].p, k);
      if (cands[c].cost < cands[best].cost) best = c;
    }
    note = std::to_string(anchors.size()) + " anchors (" + std::to_string(strong) + " strong); objective (ms";
    note += k == 1.0 ? "" : ", transfers x k";
    note += "):";
    for (const Candidate& c : cands) note += std::string(" ") + c.name + " " + ms(c.cost);
    note += std::string("; chose ") + cands[best].name;
    p = cands[best].p;
    double best_cost = cands[best].cost;
    const char* refined_from = nullptr;
    // The passes' plan is refined already; naive's many one-op units are
    // per-op's with more transfers, so it is not a useful start.
    for (std::size_t c = 1; c + 1 < cands.size(); ++c) {
      Partition refined = detail::refine(cm, supported, cands[c].p, k, 6);
      const double t = sim.predict(refined, k);
      if (t < best_cost * (1 - 1e-12)) {
        best_cost = t;
        p = std::move(refined);
        refined_from = cands[c].name;
      }
    }
    // Multi-start: each supported op alone in a unit, largest host time first,
    // grown along its best path (grow_path) and refined, while a fixed search budget lasts (deterministic; small graphs
    // get every start, large ones the most promising). The overlap of host and
    // accelerator work makes the schedule rugged; restarts find what one
    // local search misses.
    std::vector<int> seeds;
    for (int i = 0; i < cm.node_count(); ++i)
      if (supported[static_cast<std::size_t>(i)] && !cm.node(i).view) seeds.push_back(i);
    std::stable_sort(seeds.begin(), seeds.end(), [&](int a, int b) { return cm.host_us(a) > cm.host_us(b); });
    std::int64_t budget = kRestartBudget;
    std::string restart_from;
    for (int seed : seeds) {
      if (budget <= 0) break;
      Partition start = all_host(cm);
      start[static_cast<std::size_t>(seed)] = seed;
      start = detail::grow_path(cm, supported, std::move(start), seed, k, kGrowSteps, &budget);
      Partition refined = detail::refine(cm, supported, std::move(start), k, 6, &budget);
      const double t = sim.predict(refined, k);
      if (t < best_cost * (1 - 1e-12)) {
        best_cost = t;
        p = std::move(refined);
        refined_from = "a restart";
        restart_from = cm.graph().nodes[static_cast<std::size_t>(seed)].name;
      }
    }
    candidate = cands[best].name;
    if (refined_from) {
      note += std::string(", then refined from ") + refined_from;
      if (!restart_from.empty()) note += " at " + restart_from;
      note += " to " + ms(best_cost);
      candidate = std::string(refined_from) == "a restart" ? "restart at " + restart_from
                                                            : std::string(refined_from) + ", refined";
    }
    if (unsupported) note += "; " + unsupported_note;
  } else {
    std::string known;
    for (const auto& n : strategy_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error(ErrorKind::InvalidArgument, "unknown strategy '" + s + "' (strategies: " + known + ")");
  }
  // The thesis' baseline gives every op its own transfers: its units keep
  // nothing in device memory between them.
  Plan plan = encapsulate(cm, p, s, k, options.devices_present, s == "naive");
  plan.note = note;
  plan.candidate = candidate;
  return plan;
}

}  // namespace vkfuse::planner
