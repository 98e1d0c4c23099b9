// Reading a saved plan back: its placement (which unit each op is in) is
// taken from the JSON, matched to the graph by node name, and re-encapsulated
// under the profiles and link at hand, so transfers and predictions are
// recomputed rather than trusted.
#include <fstream>
#include <map>
#include <sstream>
#include <nlohmann/json.hpp>

#include "planner/planner.h"
#include "vkfuse/error.h"

namespace vkfuse::planner {

using nlohmann::json;

Plan plan_from_json(std::string_view json_text, const CostModel& cm, bool devices_present) {
  const std::string what = "plan";
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::parse_error& e) {
    throw Error(ErrorKind::InvalidArgument, what + ": not valid JSON (" + e.what() + ")");
  }
  auto fail = [&](const std::string& msg) -> void { throw Error(ErrorKind::InvalidArgument, what + ": " + msg); };
  if (!j.is_object()) fail("expected a JSON object");
  if (j.contains("format") &&
      (!j["format"].is_number_integer() || j["format"].get<int>() < 1 || j["format"].get<int>() > kPlanFormat))
    fail("format " + j["format"].dump() + " is not one this vkfuse reads (" + std::to_string(kPlanFormat) +
         "); save the plan again with this version's `vkfuse plan`");
  if (!j.contains("nodes") || !j["nodes"].is_array()) fail("missing field 'nodes'");
  // Named in the errors about nodes, when it is not the model at hand.
  const std::string saved_for = j.contains("model") && j["model"].is_string() ? j["model"].get<std::string>() : "";
  const std::string strategy =
      j.contains("strategy") && j["strategy"].is_string() ? j["strategy"].get<std::string>() : std::string("loaded");
  const double k = j.contains("k") && j["k"].is_number() ? j["k"].get<double>() : 1.0;
  const graph::Graph& g = cm.graph();
  std::map<std::string, int> index;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) index[g.nodes[i].name] = static_cast<int>(i);
  Partition p(g.nodes.size(), -1);
  std::vector<char> seen(g.nodes.size(), 0);
  for (const json& n : j["nodes"]) {
    if (!n.is_object() || !n.contains("name") || !n["name"].is_string()) fail("every entry of 'nodes' needs a 'name'");
    const std::string name = n["name"].get<std::string>();
    auto it = index.find(name);
    if (it == index.end())
      fail("node '" + name + "' is not in model '" + g.name + "'" +
           (saved_for.empty() || saved_for == g.name ? std::string() : " (the plan was saved for '" + saved_for + "')"));
    if (seen[static_cast<std::size_t>(it->second)]) fail("node '" + name + "' appears twice");
    seen[static_cast<std::size_t>(it->second)] = 1;
    if (n.contains("unit") && !n["unit"].is_null()) {
      if (!n["unit"].is_number_integer() || n["unit"].get<int>() < 0)
        fail("node '" + name + "': 'unit' must be a unit id or null");
      p[static_cast<std::size_t>(it->second)] = n["unit"].get<int>();
    }
  }
  for (std::size_t i = 0; i < g.nodes.size(); ++i)
    if (!seen[i]) fail("node '" + g.nodes[i].name + "' of the model is missing");
  if (!is_acyclic(cm, p)) fail("its units form a cycle through host ops");
  const bool isolated = j.contains("isolated_units") && j["isolated_units"].is_boolean() && j["isolated_units"].get<bool>();
  Plan plan = encapsulate(cm, p, strategy, k, devices_present, isolated);
  plan.note = "loaded from a saved plan; transfers and times recomputed";
  return plan;
}

Plan load_plan(const std::string& path, const CostModel& cm, bool devices_present) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::Io, "cannot read plan '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return plan_from_json(text.str(), cm, devices_present);
  } catch (const Error& e) {
    throw Error(e.kind(), std::string(e.what()) + " (in '" + path + "'; write one with `vkfuse plan MODEL --json FILE`)");
  }
}

}  // namespace vkfuse::planner
