// Pass 1, anchor identification: the ops worth offloading for their own sake.
//
// For each op the accelerator supports:
//   gain     = t_host − (submit + t_accel)       compute time saved
//   transfer = uploads of its inputs + downloads of its outputs, as a unit alone
//   benefit  = gain − k × transfer
// Every op with gain > 0 is an anchor; those with benefit > 0 are strong
// (they pay for their own transfers, the thesis' anchors). Weak anchors matter
// on slow links, where only a cluster that keeps its intermediates on the
// device can pay for the transfers. Sorted: strong first, then by benefit.
#include <algorithm>

#include "planner/planner.h"

namespace vkfuse::planner {

std::vector<char> supported_mask(const CostModel& cm, const AccelSupports& supports) {
  std::vector<char> mask(static_cast<std::size_t>(cm.node_count()), 1);
  if (!supports) return mask;
  const graph::Graph& g = cm.graph();
  for (int i = 0; i < cm.node_count(); ++i)
    mask[static_cast<std::size_t>(i)] = supports(g, g.nodes[static_cast<std::size_t>(i)]) ? 1 : 0;
  return mask;
}

std::vector<Anchor> find_anchors(const CostModel& cm, const std::vector<char>& supported, double k) {
  std::vector<Anchor> anchors;
  for (int i = 0; i < cm.node_count(); ++i) {
    if (!supported[static_cast<std::size_t>(i)] || cm.node(i).view) continue;
    Anchor a;
    a.node = i;
    a.gain_us = cm.host_us(i) - cm.accel_alone_us(i);
    if (!(a.gain_us > 0)) continue;
    for (graph::ValueId v : cm.activation_inputs(i)) a.transfer_us += cm.transfer_us(Direction::host_to_device, v);
    for (graph::ValueId v : cm.outputs(i))
      if (cm.is_graph_output(v) || !cm.consumers()[static_cast<std::size_t>(v)].empty())
        a.transfer_us += cm.transfer_us(Direction::device_to_host, v);
    a.benefit_us = a.gain_us - k * a.transfer_us;
    a.strong = a.benefit_us > 0;
    anchors.push_back(a);
  }
  std::stable_sort(anchors.begin(), anchors.end(), [](const Anchor& a, const Anchor& b) {
    if (a.strong != b.strong) return a.strong;
    return a.benefit_us > b.benefit_us;
  });
  return anchors;
}

}  // namespace vkfuse::planner
