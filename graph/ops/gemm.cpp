#include "graph/ops.h"

namespace vkfuse::graph {

void register_gemm_ops(std::vector<OpDef>& table) { (void)table; }

}  // namespace vkfuse::graph
