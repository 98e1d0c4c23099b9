#include "runtime/trace.h"

#include <nlohmann/json.hpp>

namespace vkfuse::runtime {

std::string Trace::to_json() const {
  using json = nlohmann::json;
  json events = json::array();
  const char* names[] = {"host", "accelerator", "link"};
  for (int t = 0; t < 3; ++t)
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", t}, {"args", {{"name", names[t]}}}});
  for (const auto& e : this->events()) {
    json ev = {{"name", e.name}, {"cat", e.category}, {"ph", "X"},  {"pid", 1},
               {"tid", static_cast<int>(e.track)}, {"ts", e.start_us}, {"dur", e.duration_us}};
    if (e.bytes >= 0) ev["args"] = {{"bytes", e.bytes}};
    events.push_back(std::move(ev));
  }
  return json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
}

}  // namespace vkfuse::runtime
