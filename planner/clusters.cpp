// Pass 2, cluster development: grow clusters from the anchors.
//
// A cluster's net benefit (cluster_benefit_us) is the host time of its ops
// minus its accelerator time (one submission, epilogues fused) minus k × its
// transfers (inputs uploaded once, outputs downloaded once). From each anchor,
// strong ones first, the cluster absorbs a neighbour — a producer or consumer
// op, all outside consumers of one of its values at once, and with them any
// cluster they belong to — whenever the merged cluster's benefit beats the sum
// of the parts', best merge first, and only if the plan stays acyclic (no path
// leaving a cluster and re-entering it through a host op). Clusters that end
// with no positive benefit go back to the host.
//
// Then a boundary refinement moves one op at a time (in or out of a cluster,
// or between neighbouring clusters), a host op with a host neighbour into a new
// unit, whole neighbouring clusters together, or swaps two readers of one
// value between host and accelerator, while the simulated, k-weighted schedule
// improves: the sum-of-parts benefit cannot see host work overlapping
// accelerator work, the schedule can.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "planner/schedule.h"

namespace vkfuse::planner {

using graph::ValueId;

namespace {

class BenefitEvaluator {
 public:
  BenefitEvaluator(const CostModel& cm, double k)
      : cm_(cm), k_(k), unit_(static_cast<std::size_t>(cm.node_count()), -1), seen_(cm.graph().values.size(), 0) {}

  double operator()(const std::vector<int>& members) {
    for (int i : members) unit_[static_cast<std::size_t>(i)] = 0;
    double host = 0, xfer = 0;
    std::vector<ValueId> touched;
    const auto& producers = cm_.producers();
    for (int i : members) {
      host += cm_.host_us(i);
      for (ValueId v : cm_.activation_inputs(i)) {
        const int p = producers[static_cast<std::size_t>(v)];
        if (p >= 0 && unit_[static_cast<std::size_t>(p)] >= 0) continue;
        if (seen_[static_cast<std::size_t>(v)]) continue;
        seen_[static_cast<std::size_t>(v)] = 1;
        touched.push_back(v);
        xfer += cm_.transfer_us(Direction::host_to_device, v);
      }
      for (ValueId v : cm_.outputs(i)) {
        bool outside = cm_.is_graph_output(v);
        for (int c : cm_.consumers()[static_cast<std::size_t>(v)])
          outside = outside || unit_[static_cast<std::size_t>(c)] < 0;
        if (outside) xfer += cm_.transfer_us(Direction::device_to_host, v);
      }
    }
    const double compute = cm_.unit_compute_us(members, unit_);
    for (ValueId v : touched) seen_[static_cast<std::size_t>(v)] = 0;
    for (int i : members) unit_[static_cast<std::size_t>(i)] = -1;
    return host - compute - k_ * xfer;
  }

 private:
  const CostModel& cm_;
  double k_;
  std::vector<int> unit_;  // the members as one unit (0), everything else on the host (-1)
  std::vector<char> seen_;
};

// The "replace a cluster" move is tried only while there are at most this
// many clusters: it is meant to jump between a few alternatives, and costs
// one schedule simulation per cluster per op.
constexpr std::size_t kMaxReplacedClusters = 8;

bool better(double candidate, double current) { return candidate < current - 1e-9 * std::max(1.0, std::abs(current)); }

// Neighbours of node i: producers of its inputs and consumers of its outputs.
std::vector<int> neighbours(const CostModel& cm, int i) {
  std::vector<int> out;
  for (ValueId v : cm.activation_inputs(i)) {
    const int p = cm.producers()[static_cast<std::size_t>(v)];
    if (p >= 0) out.push_back(p);
  }
  for (ValueId v : cm.outputs(i))
    for (int c : cm.consumers()[static_cast<std::size_t>(v)]) out.push_back(c);
  return out;
}

}  // namespace

double cluster_benefit_us(const CostModel& cm, const std::vector<int>& members, double k) {
  std::vector<int> sorted = members;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  return BenefitEvaluator(cm, k)(sorted);
}

namespace detail {

// Boundary refinement against the simulated schedule (see the file comment).
Partition refine(const CostModel& cm, const std::vector<char>& supported, Partition p, double k, int max_passes,
                 std::int64_t* budget) {
  const int n = cm.node_count();
  Simulator sim(cm);
  double current = sim.predict(p, k);
  auto spent = [&] { return budget && *budget <= 0; };
  int fresh = n;  // a label no cluster uses
  for (int l : p) fresh = std::max(fresh, l + 1);
  for (int pass = 0; pass < max_passes; ++pass) {
    bool improved = false;
    double best = current;
    Partition best_p;
    auto consider = [&](Partition trial) {
      if (spent()) return;
      if (budget) *budget -= n;
      const double t = sim.predict(trial, k);
      if (better(t, best)) {
        best = t;
        best_p = std::move(trial);
      }
    };
    auto accept = [&] {
      if (best_p.empty()) return;
      p = std::move(best_p);
      best_p.clear();
      current = best;
      ++fresh;
      improved = true;
    };
    for (int i = 0; i < n; ++i) {
      if (!supported[static_cast<std::size_t>(i)]) continue;
      const int own = p[static_cast<std::size_t>(i)];
      std::set<int> adjacent;
      for (int j : neighbours(cm, i)) {
        const int l = p[static_cast<std::size_t>(j)];
        if (l >= 0 && l != own) adjacent.insert(l);
      }
      // Move the op alone: to the host, into a neighbouring cluster, or (from
      // the host) into a unit of its own.
      for (int l : adjacent) {
        Partition t = p;
        t[static_cast<std::size_t>(i)] = l;
        consider(std::move(t));
      }
      if (own >= 0) {
        Partition t = p;
        t[static_cast<std::size_t>(i)] = -1;
        consider(std::move(t));
        // Merge a whole neighbouring cluster into this one.
        for (int l : adjacent) {
          Partition m = p;
          for (int& x : m)
            if (x == l) x = own;
          consider(std::move(m));
        }
      } else {
        Partition t = p;
        t[static_cast<std::size_t>(i)] = fresh;
        consider(std::move(t));
        // A new unit of this op and one host neighbour: a pair may pay off
        // where neither op alone does.
        for (int j : neighbours(cm, i)) {
          if (p[static_cast<std::size_t>(j)] >= 0 || !supported[static_cast<std::size_t>(j)]) continue;
          Partition pair = p;
          pair[static_cast<std::size_t>(i)] = pair[static_cast<std::size_t>(j)] = fresh;
          consider(std::move(pair));
        }
        // A unit of this op in place of a whole cluster, which goes back to the
        // host: a jump between local optima of the overlap.
        std::set<int> labels(p.begin(), p.end());
        labels.erase(-1);
        if (labels.size() <= kMaxReplacedClusters)
          for (int l : labels) {
            Partition r = p;
            for (int& x : r)
              if (x == l) x = -1;
            r[static_cast<std::size_t>(i)] = fresh;
            consider(std::move(r));
          }
      }
      accept();
    }
    // Swaps between readers of one value: one leaves its cluster for the
    // host, the other takes its place. Which sibling runs where decides what
    // the host can overlap with the accelerator.
    for (std::size_t v = 0; v < cm.consumers().size(); ++v) {
      const auto& readers = cm.consumers()[v];
      for (int a : readers)
        for (int b : readers) {
          const int la = p[static_cast<std::size_t>(a)];
          if (la < 0 || p[static_cast<std::size_t>(b)] >= 0 || !supported[static_cast<std::size_t>(b)]) continue;
          Partition t = p;
          t[static_cast<std::size_t>(a)] = -1;
          t[static_cast<std::size_t>(b)] = la;
          consider(std::move(t));
          accept();
        }
    }
    if (!improved || spent()) break;
  }
  return p;
}

Partition grow_path(const CostModel& cm, const std::vector<char>& supported, Partition p, int label, double k,
                    int steps, std::int64_t* budget) {
  const int n = cm.node_count();
  Simulator sim(cm);
  Partition best_p = p;
  double best = sim.predict(p, k);
  for (int step = 0; step < steps; ++step) {
    std::set<int> frontier;
    for (int i = 0; i < n; ++i)
      if (p[static_cast<std::size_t>(i)] == label)
        for (int j : neighbours(cm, i))
          if (p[static_cast<std::size_t>(j)] < 0 && supported[static_cast<std::size_t>(j)]) frontier.insert(j);
    double step_best = std::numeric_limits<double>::infinity();
    int pick = -1;
    for (int j : frontier) {
      if (budget && *budget <= 0) break;
      if (budget) *budget -= n;
      Partition t = p;
      t[static_cast<std::size_t>(j)] = label;
      const double c = sim.predict(t, k);
      if (c < step_best) {
        step_best = c;
        pick = j;
      }
    }
    if (pick < 0 || !std::isfinite(step_best)) break;
    p[static_cast<std::size_t>(pick)] = label;
    if (better(step_best, best)) {
      best = step_best;
      best_p = p;
    }
  }
  return best_p;
}

}  // namespace detail

Partition develop_clusters(const CostModel& cm, const std::vector<Anchor>& anchors, const std::vector<char>& supported,
                           double k) {
  const int n = cm.node_count();
  Partition label(static_cast<std::size_t>(n), -1);
  std::map<int, std::vector<int>> members;  // label → sorted members
  std::map<int, double> benefit;
  BenefitEvaluator eval(cm, k);
  detail::Simulator sim(cm);

  for (const Anchor& anchor : anchors) {
    if (label[static_cast<std::size_t>(anchor.node)] >= 0) continue;
    const int id = anchor.node;
    label[static_cast<std::size_t>(id)] = id;
    members[id] = {id};
    benefit[id] = eval(members[id]);

    for (;;) {
      const std::vector<int>& cluster = members[id];
      // Candidate additions: each outside neighbour alone, and all outside
      // consumers of one value together (a fan-out pays its download only
      // once every reader is inside).
      std::set<std::vector<int>> candidates;
      for (int m : cluster) {
        for (int j : neighbours(cm, m))
          if (supported[static_cast<std::size_t>(j)] && label[static_cast<std::size_t>(j)] != id)
            candidates.insert({j});
        for (ValueId v : cm.outputs(m)) {
          std::vector<int> readers;
          for (int c : cm.consumers()[static_cast<std::size_t>(v)])
            if (supported[static_cast<std::size_t>(c)] && label[static_cast<std::size_t>(c)] != id)
              readers.push_back(c);
          if (readers.size() > 1) candidates.insert(readers);
        }
      }
      struct Merge {
        double delta;
        std::vector<int> merged;
        std::vector<int> absorbed;  // cluster labels merged in
      };
      std::vector<Merge> merges;
      for (const auto& add : candidates) {
        std::set<int> absorbed;
        std::vector<int> merged = cluster;
        double parts = benefit[id];
        for (int j : add) {
          const int l = label[static_cast<std::size_t>(j)];
          if (l >= 0 && l != id) {
            if (absorbed.insert(l).second) {
              merged.insert(merged.end(), members[l].begin(), members[l].end());
              parts += benefit[l];
            }
          } else {
            merged.push_back(j);
          }
        }
        std::sort(merged.begin(), merged.end());
        merged.erase(std::unique(merged.begin(), merged.end()), merged.end());
        const double delta = eval(merged) - parts;
        if (delta > 1e-9) merges.push_back({delta, std::move(merged), {absorbed.begin(), absorbed.end()}});
      }
      std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.delta > b.delta; });
      bool applied = false;
      for (Merge& m : merges) {
        Partition trial = label;
        for (int j : m.merged) trial[static_cast<std::size_t>(j)] = id;
        if (!sim.acyclic(trial)) continue;
        label = std::move(trial);
        for (int l : m.absorbed) {
          members.erase(l);
          benefit.erase(l);
        }
        members[id] = std::move(m.merged);
        benefit[id] = eval(members[id]);
        applied = true;
        break;
      }
      if (!applied) break;
    }
  }

  // Clusters that do not pay for themselves go back to the host.
  for (const auto& [id, ms] : members)
    if (!(benefit[id] > 0))
      for (int i : ms) label[static_cast<std::size_t>(i)] = -1;

  return detail::refine(cm, supported, std::move(label), k, 6);
}

}  // namespace vkfuse::planner
