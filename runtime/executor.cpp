#include "runtime/executor.h"

#include <algorithm>

namespace vkfuse::runtime {

std::vector<int> contiguous_groups(std::span<const int> group_of, std::size_t nodes, const std::string& who,
                                   int& count) {
  std::vector<int> group(group_of.begin(), group_of.end());
  if (group.empty()) group.assign(nodes, 0);
  if (group.size() != nodes) throw Error(ErrorKind::Internal, who + ": the group list needs one entry per node");
  count = nodes == 0 ? 1 : 0;
  for (int g : group) {
    if (g != count - 1 && g != count)
      throw Error(ErrorKind::Internal, who + ": groups must be numbered 0.. with their nodes contiguous");
    count = std::max(count, g + 1);
  }
  return group;
}

bool host_backend_available() { return true; }
bool vulkan_backend_available() { return true; }

}  // namespace vkfuse::runtime
