// Laying out a partition (units, transfers, a topological order) and the
// schedule simulation that predicts its time.
#include "planner/schedule.h"

#include <algorithm>
#include <limits>
#include <map>
#include <span>

#include "vkfuse/error.h"

namespace vkfuse::planner {

using graph::kNoValue;
using graph::ValueId;

namespace detail {

namespace {

// Labels renumbered 0.. in order of appearance, when they are too large to
// index a vector by.
Partition compact(const Partition& p) {
  std::map<int, int> ids;
  Partition out(p.size(), -1);
  for (std::size_t i = 0; i < p.size(); ++i)
    if (p[i] >= 0) out[i] = ids.emplace(p[i], static_cast<int>(ids.size())).first->second;
  return out;
}

}  // namespace

bool read_on_host(const CostModel& cm, const Partition& p, ValueId v) {
  if (cm.is_graph_output(v)) return true;
  for (int c : cm.consumers()[static_cast<std::size_t>(v)])
    if (p[static_cast<std::size_t>(c)] < 0) return true;
  return false;
}

Layout lay_out(const CostModel& cm, const Partition& p, bool isolated_units) {
  const int n = cm.node_count();
  Layout out;
  Simulator sim(cm);
  out.acyclic = sim.acyclic(p);
  if (!out.acyclic) return out;
  out.unit_of.assign(static_cast<std::size_t>(n), -1);
  std::vector<char> mask(static_cast<std::size_t>(n), 0);
  // Values already in device memory: uploaded by an earlier unit, or
  // produced by one (units share one device arena, so a value passed from
  // unit to unit never crosses the link).
  std::vector<char> on_device(cm.graph().values.size(), 0);
  const auto& producers = cm.producers();
  const auto& consumers = cm.consumers();
  for (int h : sim.order()) {
    if (p[static_cast<std::size_t>(h)] < 0) {
      out.order.push_back({false, h});
      continue;
    }
    const int u = static_cast<int>(out.units.size());
    out.order.push_back({true, u});
    UnitLayout unit;
    const std::span<const int> members = sim.members(h);
    unit.nodes.assign(members.begin(), members.end());
    for (int i : unit.nodes) {
      mask[static_cast<std::size_t>(i)] = 1;
      out.unit_of[static_cast<std::size_t>(i)] = u;
    }
    for (int i : unit.nodes) {
      for (ValueId v : cm.activation_inputs(i)) {
        const int pr = producers[static_cast<std::size_t>(v)];
        if (isolated_units) {
          // Every value from outside the unit comes up, once per unit.
          if ((pr < 0 || !mask[static_cast<std::size_t>(pr)]) &&
              std::find(unit.uploads.begin(), unit.uploads.end(), v) == unit.uploads.end())
            unit.uploads.push_back(v);
          continue;
        }
        if ((pr >= 0 && p[static_cast<std::size_t>(pr)] >= 0) || on_device[static_cast<std::size_t>(v)]) continue;
        on_device[static_cast<std::size_t>(v)] = 1;
        unit.uploads.push_back(v);
      }
      for (ValueId v : cm.outputs(i)) {
        bool down = read_on_host(cm, p, v);
        if (isolated_units)
          for (int c : consumers[static_cast<std::size_t>(v)]) down = down || !mask[static_cast<std::size_t>(c)];
        if (down) unit.downloads.push_back(v);
      }
    }
    unit.compute_us = cm.unit_compute_us(unit.nodes, p, !isolated_units);
    for (int i : unit.nodes) mask[static_cast<std::size_t>(i)] = 0;
    out.units.push_back(std::move(unit));
  }
  return out;
}

void HostOpTimes::host_op(const CostModel& cm, int i, std::span<const int> placement) {
  bool reads_a_download = false;
  for (ValueId v : cm.activation_inputs(i)) {
    const std::int32_t p = cm.producers()[static_cast<std::size_t>(v)];
    reads_a_download = reads_a_download || (p >= 0 && placement[static_cast<std::size_t>(p)] >= 0);
  }
  segmenter_.host_op(i, reads_a_download);
}

double simulate(const CostModel& cm, const Layout& layout, double transfer_scale, std::vector<ItemTime>* times) {
  const graph::Graph& g = cm.graph();
  std::vector<double> host_ready(g.values.size(), 0.0);
  // Three resources taking work in plan order: the host's cores, the link
  // and the accelerator; an accelerator on the host's own cores (lavapipe)
  // takes turns with the host ops on one clock, the link still apart.
  double host_free = 0, link_free = 0, accel_own = 0;
  double& accel_free = cm.accel().shares_host_cores ? host_free : accel_own;
  if (times) times->clear();
  HostOpTimes host_times;
  host_times.reset(cm.node_count());
  for (const OrderItem& item : layout.order) {
    if (item.is_unit) host_times.unit();
    else host_times.host_op(cm, item.index, layout.unit_of);
  }
  host_times.finish(cm);
  for (const OrderItem& item : layout.order) {
    ItemTime t;
    if (!item.is_unit) {
      const int i = item.index;
      double start = host_free;
      for (ValueId v : cm.activation_inputs(i)) start = std::max(start, host_ready[static_cast<std::size_t>(v)]);
      const double end = start + host_times.time_us(cm, i);
      host_free = end;
      for (ValueId v : cm.outputs(i)) host_ready[static_cast<std::size_t>(v)] = end;
      t = {start, end};
    } else {
      const UnitLayout& u = layout.units[static_cast<std::size_t>(item.index)];
      double first = std::numeric_limits<double>::infinity();
      double uploaded = 0;
      for (ValueId v : u.uploads) {
        const double s = std::max(link_free, host_ready[static_cast<std::size_t>(v)]);
        first = std::min(first, s);
        link_free = s + transfer_scale * cm.transfer_us(Direction::host_to_device, v);
        uploaded = link_free;
      }
      const double cs = std::max(accel_free, uploaded);
      first = std::min(first, cs);
      const double ce = cs + u.compute_us;
      accel_free = ce;
      double last = ce;
      for (ValueId v : u.downloads) {
        const double s = std::max(link_free, ce);
        link_free = s + transfer_scale * cm.transfer_us(Direction::device_to_host, v);
        host_ready[static_cast<std::size_t>(v)] = link_free;
        last = link_free;
      }
      t = {first, last};
    }
    if (times) times->push_back(t);
  }
  return std::max({host_free, link_free, accel_own});
}

Simulator::Simulator(const CostModel& cm) : cm_(cm), n_(cm.node_count()) {
  const auto& producers = cm.producers();
  for (int c = 0; c < n_; ++c)
    for (ValueId v : cm.activation_inputs(c)) {
      const int pr = producers[static_cast<std::size_t>(v)];
      if (pr >= 0) edges_.emplace_back(pr, c);
    }
  const auto n = static_cast<std::size_t>(n_);
  item_.resize(n);
  indeg_.resize(n);
  succ_start_.resize(n + 1);
  succ_.resize(edges_.size());
  fill_.resize(n + 1);
  member_start_.resize(n + 1);
  members_.resize(n);
  seen_.assign(cm.graph().values.size(), 0);
  host_ready_.assign(cm.graph().values.size(), 0.0);
  heap_.reserve(n);
  order_.reserve(n);
}

bool Simulator::sort(const Partition& p) {
  const auto n = static_cast<std::size_t>(n_);
  if (p.size() != n) throw Error(ErrorKind::Internal, "planner: a partition needs one entry per node");
  int max_label = -1;
  for (int label : p) max_label = std::max(max_label, label);
  if (max_label > 4 * n_ + 1024) return sort(compact(p));
  head_of_label_.assign(static_cast<std::size_t>(max_label + 1), -1);
  for (int i = 0; i < n_; ++i) {
    const int label = p[static_cast<std::size_t>(i)];
    if (label < 0) {
      item_[static_cast<std::size_t>(i)] = i;
      continue;
    }
    int& head = head_of_label_[static_cast<std::size_t>(label)];
    if (head < 0) head = i;
    item_[static_cast<std::size_t>(i)] = head;
  }
  // Item successor lists (CSR) and in-degrees, one entry per crossing read.
  std::fill(indeg_.begin(), indeg_.end(), 0);
  std::fill(succ_start_.begin(), succ_start_.end(), 0);
  for (auto [a, b] : edges_) {
    const int ia = item_[static_cast<std::size_t>(a)], ib = item_[static_cast<std::size_t>(b)];
    if (ia == ib) continue;
    ++succ_start_[static_cast<std::size_t>(ia) + 1];
    ++indeg_[static_cast<std::size_t>(ib)];
  }
  for (std::size_t i = 0; i < n; ++i) succ_start_[i + 1] += succ_start_[i];
  std::copy(succ_start_.begin(), succ_start_.end(), fill_.begin());
  for (auto [a, b] : edges_) {
    const int ia = item_[static_cast<std::size_t>(a)], ib = item_[static_cast<std::size_t>(b)];
    if (ia == ib) continue;
    succ_[static_cast<std::size_t>(fill_[static_cast<std::size_t>(ia)]++)] = ib;
  }
  // Members of each item (CSR, ascending).
  std::fill(member_start_.begin(), member_start_.end(), 0);
  for (std::size_t i = 0; i < n; ++i) ++member_start_[static_cast<std::size_t>(item_[i]) + 1];
  for (std::size_t i = 0; i < n; ++i) member_start_[i + 1] += member_start_[i];
  std::copy(member_start_.begin(), member_start_.end(), fill_.begin());
  for (std::size_t i = 0; i < n; ++i)
    members_[static_cast<std::size_t>(fill_[static_cast<std::size_t>(item_[i])]++)] = static_cast<int>(i);
  // Kahn, with lay_out's priority: units first, then the smallest head.
  auto key = [&](int h) { return (p[static_cast<std::size_t>(h)] >= 0 ? 0 : n_) + h; };
  auto later = [&](int a, int b) { return key(a) > key(b); };
  heap_.clear();
  order_.clear();
  int heads = 0;
  for (int i = 0; i < n_; ++i)
    if (item_[static_cast<std::size_t>(i)] == i) {
      ++heads;
      if (indeg_[static_cast<std::size_t>(i)] == 0) {
        heap_.push_back(i);
        std::push_heap(heap_.begin(), heap_.end(), later);
      }
    }
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const int h = heap_.back();
    heap_.pop_back();
    order_.push_back(h);
    for (int e = succ_start_[static_cast<std::size_t>(h)]; e < succ_start_[static_cast<std::size_t>(h) + 1]; ++e) {
      const int s = succ_[static_cast<std::size_t>(e)];
      if (--indeg_[static_cast<std::size_t>(s)] == 0) {
        heap_.push_back(s);
        std::push_heap(heap_.begin(), heap_.end(), later);
      }
    }
  }
  return static_cast<int>(order_.size()) == heads;
}

bool Simulator::acyclic(const Partition& p) { return sort(p); }

double Simulator::predict(const Partition& p_in, double transfer_scale) {
  if (!sort(p_in)) return std::numeric_limits<double>::infinity();
  const auto& producers = cm_.producers();
  // One stamp per prediction: a value uploaded once stays on the device for
  // every later unit, and values units produce never need an upload.
  ++stamp_;
  auto needs_upload = [&](ValueId v) {
    const int pr = producers[static_cast<std::size_t>(v)];
    if ((pr >= 0 && p_in[static_cast<std::size_t>(pr)] >= 0) || seen_[static_cast<std::size_t>(v)] == stamp_)
      return false;
    seen_[static_cast<std::size_t>(v)] = stamp_;
    return true;
  };
  std::fill(host_ready_.begin(), host_ready_.end(), 0.0);
  host_times_.reset(n_);
  for (int h : order_) {
    if (p_in[static_cast<std::size_t>(h)] < 0) host_times_.host_op(cm_, h, p_in);
    else host_times_.unit();
  }
  host_times_.finish(cm_);
  double host_free = 0, link_free = 0, accel_own = 0;  // as in simulate()
  double& accel_free = cm_.accel().shares_host_cores ? host_free : accel_own;
  for (int h : order_) {
    const int* mb = members_.data() + member_start_[static_cast<std::size_t>(h)];
    const int* me = members_.data() + member_start_[static_cast<std::size_t>(h) + 1];
    // A host op is its own item with a single member; a unit's label is >= 0.
    if (p_in.size() && p_in[static_cast<std::size_t>(h)] < 0) {
      double start = host_free;
      for (ValueId v : cm_.activation_inputs(h)) start = std::max(start, host_ready_[static_cast<std::size_t>(v)]);
      const double end = start + host_times_.time_us(cm_, h);
      host_free = end;
      for (ValueId v : cm_.outputs(h)) host_ready_[static_cast<std::size_t>(v)] = end;
      continue;
    }
    const std::span<const int> members(mb, me);
    const double compute = cm_.unit_compute_us(members, p_in);
    double uploaded = 0;
    for (int i : members)
      for (ValueId v : cm_.activation_inputs(i)) {
        if (!needs_upload(v)) continue;
        const double s = std::max(link_free, host_ready_[static_cast<std::size_t>(v)]);
        link_free = s + transfer_scale * cm_.transfer_us(Direction::host_to_device, v);
        uploaded = link_free;
      }
    const double cs = std::max(accel_free, uploaded);
    const double ce = cs + compute;
    accel_free = ce;
    for (int i : members)
      for (ValueId v : cm_.outputs(i)) {
        if (!read_on_host(cm_, p_in, v)) continue;
        const double s = std::max(link_free, ce);
        link_free = s + transfer_scale * cm_.transfer_us(Direction::device_to_host, v);
        host_ready_[static_cast<std::size_t>(v)] = link_free;
      }
  }
  return std::max({host_free, link_free, accel_own});
}

}  // namespace detail

bool is_acyclic(const CostModel& cm, const Partition& p) { return detail::Simulator(cm).acyclic(p); }

double predict_us(const CostModel& cm, const Partition& p, double transfer_scale) {
  return detail::Simulator(cm).predict(p, transfer_scale);
}

Partition maximal_clusters(const CostModel& cm, const std::vector<char>& on_accel) {
  const int n = cm.node_count();
  Partition p(static_cast<std::size_t>(n), -1);
  for (int i = 0; i < n; ++i)
    if (on_accel[static_cast<std::size_t>(i)]) p[static_cast<std::size_t>(i)] = i;
  const auto& producers = cm.producers();
  detail::Simulator sim(cm);
  for (int c = 0; c < n; ++c) {
    if (p[static_cast<std::size_t>(c)] < 0) continue;
    for (ValueId v : cm.activation_inputs(c)) {
      const int pr = producers[static_cast<std::size_t>(v)];
      if (pr < 0 || p[static_cast<std::size_t>(pr)] < 0) continue;
      const int a = p[static_cast<std::size_t>(pr)], b = p[static_cast<std::size_t>(c)];
      if (a == b) continue;
      Partition trial = p;
      for (int& label : trial)
        if (label == b) label = a;
      if (sim.acyclic(trial)) p = std::move(trial);
    }
  }
  return p;
}

}  // namespace vkfuse::planner
