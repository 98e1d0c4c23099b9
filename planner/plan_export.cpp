// Plans as text (a table for people), JSON (everything) and Graphviz DOT.
#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "planner/plan.h"

namespace vkfuse::planner {

using graph::kNoValue;
using graph::ValueId;
using nlohmann::json;

namespace {

std::string printf_str(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string ms3(double ms) { return printf_str("%.3f", ms); }

std::string human_bytes(std::int64_t b) {
  if (b >= 1000 * 1000) return printf_str("%.2f MB", static_cast<double>(b) / 1e6);
  if (b >= 1000) return printf_str("%.1f KB", static_cast<double>(b) / 1e3);
  return std::to_string(b) + " B";
}

// prefix + number, built by appending (GCC 12's -Wrestrict misfires on
// "literal" + std::to_string(...)).
std::string tag(const char* prefix, std::int64_t n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string step_name(const Plan& plan, const Step& s) {
  return s.kind == Step::Kind::unit ? tag("U", s.index) : plan.nodes[static_cast<std::size_t>(s.index)].name;
}

std::string predicted_label(const Plan& plan) {
  return plan.predicted_only ? "PREDICTED ONLY: the profiles are not measurements of devices present here"
                             : "predicted from measured profiles";
}

// Quotes and backslashes escaped; a newline becomes DOT's line break "\n".
std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string plan_to_text(const Plan& plan) {
  std::ostringstream o;
  o << "plan        " << plan.strategy << " (k=" << printf_str("%g", plan.k) << ") for " << plan.model << "\n";
  o << "predicted   " << ms3(plan.predicted_ms) << " ms   [" << predicted_label(plan) << "]\n";
  o << "            host ops " << ms3(plan.host_ms) << " ms, accelerator " << ms3(plan.accel_ms) << " ms, transfers "
    << ms3(plan.transfer_ms) << " ms; " << plan.units.size() << " units, " << plan.transfers << " transfers ("
    << human_bytes(plan.bytes_uploaded) << " up, " << human_bytes(plan.bytes_downloaded) << " down); "
    << plan.host_kernels << " host kernels"
    << (plan.host_copies > 0 ? ", " + std::to_string(plan.host_copies) + " copies to planar" : std::string()) << "\n";
  o << "host        " << plan.host_profile << "\n";
  o << "accel       " << plan.accel_profile
    << (plan.shares_host_cores ? "  [runs on the host's cores: its compute takes turns with host ops]" : "") << "\n";
  o << "link        " << plan.link.describe() << "\n";
  if (!plan.note.empty()) o << "decision    " << plan.note << "\n";
  if (!plan.candidate.empty() && plan.candidate != plan.strategy) o << "chosen      " << plan.candidate << "\n";

  std::size_t name_w = 4, op_w = 2;
  for (const PlanNode& n : plan.nodes) {
    name_w = std::max(name_w, n.name.size());
    op_w = std::max(op_w, n.op_type.size());
  }
  o << "\n  " << pad("#", 5) << pad("node", name_w + 2) << pad("op", op_w + 2) << pad("class", 14) << pad("on", 7)
    << pad("unit", 6) << pad("layout", 14) << pad("host ms", 10)
    << "accel ms   (unit #N: on the host, in node N's kernel; layout blocked: in blocks of 16 channels, "
       "+copy: also copied to planar)\n";
  for (std::size_t i = 0; i < plan.nodes.size(); ++i) {
    const PlanNode& n = plan.nodes[i];
    o << "  " << pad(std::to_string(i), 5) << pad(n.name, name_w + 2) << pad(n.op_type, op_w + 2) << pad(n.op_class, 14)
      << pad(placement_name(n.placement), 7)
      << pad(n.unit >= 0                                                   ? tag("U", n.unit)
             : n.kernel_of >= 0 && n.kernel_of != static_cast<int>(i) ? tag("#", n.kernel_of)
                                                                      : std::string("-"),
             6)
      << pad(n.blocked ? (n.to_planar ? "blocked+copy" : "blocked") : (n.to_planar ? "+copy" : "-"), 14)
      << pad(ms3(n.host_us / 1e3), 10) << ms3(n.accel_us / 1e3) << "\n";
  }
  if (!plan.units.empty()) {
    o << "\nunits\n";
    for (const DispatchUnit& u : plan.units) {
      o << "  U" << u.id << "  " << u.nodes.size() << " ops, " << u.kernels << " kernels, compute "
        << ms3(u.compute_us / 1e3) << " ms: ";
      for (std::size_t j = 0; j < u.nodes.size(); ++j)
        o << (j ? ", " : "") << plan.nodes[static_cast<std::size_t>(u.nodes[j])].name;
      o << "\n";
      // The kernels as the Vulkan executor launches them, with what runs in each.
      o << "      kernels ";
      bool any = false;
      for (std::size_t j = 0; j < u.nodes.size(); ++j) {
        if (u.dispatches[j] == 0) continue;
        o << (any ? ", " : "") << plan.nodes[static_cast<std::size_t>(u.nodes[j])].name;
        for (std::size_t q = 0; q < u.nodes.size(); ++q)
          if (q != j && u.kernel_of[q] == u.nodes[j]) o << "+" << plan.nodes[static_cast<std::size_t>(u.nodes[q])].name;
        if (u.dispatches[j] > 1) o << " (" << u.dispatches[j] << " kernels)";  // Concat copies, Split outputs, weight ranges
        any = true;
      }
      o << (any ? "" : "none") << "\n";
      for (const Transfer& t : u.uploads)
        o << "      up    " << t.name << "  " << t.bytes << " B  " << ms3(t.predicted_us / 1e3) << " ms\n";
      for (const Transfer& t : u.downloads)
        o << "      down  " << t.name << "  " << t.bytes << " B  " << ms3(t.predicted_us / 1e3) << " ms\n";
    }
  }
  o << "\norder (simulated start - end, ms)\n";
  for (std::size_t s = 0; s < plan.steps.size(); ++s) {
    const Step& st = plan.steps[s];
    o << "  " << pad(std::to_string(s), 5) << pad(step_name(plan, st), name_w + 2)
      << pad(st.kind == Step::Kind::unit ? "accel" : "host", 7) << ms3(st.start_us / 1e3) << " - "
      << ms3(st.end_us / 1e3) << "\n";
  }
  return o.str();
}

std::string plan_to_json(const Plan& plan) {
  json j;
  j["format"] = kPlanFormat;
  j["model"] = plan.model;
  j["strategy"] = plan.strategy;
  j["k"] = plan.k;
  j["note"] = plan.note;
  j["candidate"] = plan.candidate;
  j["predicted_only"] = plan.predicted_only;
  j["host_profile"] = plan.host_profile;
  j["accel_profile"] = plan.accel_profile;
  j["shares_host_cores"] = plan.shares_host_cores;
  j["isolated_units"] = plan.isolated_units;
  j["link"] = {{"name", plan.link.name},
               {"description", plan.link.describe()},
               {"host_to_device", {{"bandwidth_mbps", plan.link.h2d_mbps}, {"latency_us", plan.link.h2d_latency_us}}},
               {"device_to_host", {{"bandwidth_mbps", plan.link.d2h_mbps}, {"latency_us", plan.link.d2h_latency_us}}},
               {"emulated", plan.link.emulated}};
  j["predicted"] = {{"total_ms", plan.predicted_ms},
                    {"host_ms", plan.host_ms},
                    {"accel_ms", plan.accel_ms},
                    {"transfer_ms", plan.transfer_ms},
                    {"bytes_uploaded", plan.bytes_uploaded},
                    {"bytes_downloaded", plan.bytes_downloaded},
                    {"transfers", plan.transfers},
                    {"units", plan.units.size()},
                    {"host_kernels", plan.host_kernels},
                    {"host_copies", plan.host_copies}};
  json nodes = json::array();
  for (std::size_t i = 0; i < plan.nodes.size(); ++i) {
    const PlanNode& n = plan.nodes[i];
    json jn = {{"index", i},
               {"name", n.name},
               {"op", n.op_type},
               {"class", n.op_class},
               {"placement", placement_name(n.placement)},
               {"host_ms", n.host_us / 1e3},
               {"accel_ms", n.accel_us / 1e3}};
    jn["unit"] = n.unit >= 0 ? json(n.unit) : json(nullptr);
    if (n.kernel_of >= 0 && n.kernel_of != static_cast<int>(i)) jn["kernel_of"] = n.kernel_of;  // a host epilogue
    if (n.blocked) jn["layout"] = "blocked";
    if (n.to_planar) jn["to_planar"] = true;
    nodes.push_back(jn);
  }
  j["nodes"] = nodes;
  auto transfers = [](const std::vector<Transfer>& ts) {
    json a = json::array();
    for (const Transfer& t : ts)
      a.push_back({{"value", t.name}, {"bytes", t.bytes}, {"predicted_ms", t.predicted_us / 1e3}});
    return a;
  };
  json units = json::array();
  for (const DispatchUnit& u : plan.units) {
    json names = json::array(), kernels = json::array();
    for (std::size_t q = 0; q < u.nodes.size(); ++q) {
      names.push_back(plan.nodes[static_cast<std::size_t>(u.nodes[q])].name);
      kernels.push_back(plan.nodes[static_cast<std::size_t>(u.kernel_of[q])].name);
    }
    units.push_back({{"id", u.id},
                     {"nodes", names},
                     {"kernel_of", kernels},
                     {"kernels", u.kernels},
                     {"dispatches", u.dispatches},
                     {"compute_ms", u.compute_us / 1e3},
                     {"uploads", transfers(u.uploads)},
                     {"downloads", transfers(u.downloads)}});
  }
  j["units"] = units;
  json order = json::array();
  for (const Step& s : plan.steps) {
    json js = {{"kind", s.kind == Step::Kind::unit ? "unit" : "host_op"},
               {"start_ms", s.start_us / 1e3},
               {"end_ms", s.end_us / 1e3}};
    if (s.kind == Step::Kind::unit)
      js["unit"] = s.index;
    else
      js["node"] = plan.nodes[static_cast<std::size_t>(s.index)].name;
    order.push_back(js);
  }
  j["order"] = order;
  return j.dump(2) + "\n";
}

std::string plan_to_dot(const Plan& plan, const graph::Graph& g) {
  std::ostringstream o;
  const char* host_colour = "#cfe2f3";
  const char* accel_colour = "#f9cb9c";
  o << "digraph plan {\n";
  o << "  label=\""
    << dot_escape(plan.model + " — " + plan.strategy + " (k=" + printf_str("%g", plan.k) + "), " +
                  ms3(plan.predicted_ms) + " ms predicted" + (plan.predicted_only ? " (predicted only)" : "") +
                  "\nlink " + plan.link.describe() + "\nhost: " + plan.host_profile + "  accel: " + plan.accel_profile)
    << "\";\n  labelloc=t;\n  rankdir=TB;\n";
  o << "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n";
  o << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  auto node_decl = [&](std::size_t i) {
    const PlanNode& n = plan.nodes[i];
    o << "n" << i << " [label=\"" << dot_escape(n.name + "\n" + n.op_type) << "\", fillcolor=\""
      << (n.placement == Placement::accel ? accel_colour : host_colour) << "\"];\n";
  };
  for (const DispatchUnit& u : plan.units) {
    o << "  subgraph cluster_" << u.id << " {\n    label=\"U" << u.id << ": " << u.kernels << " kernels, "
      << ms3(u.compute_us / 1e3) << " ms\";\n    style=dashed; color=\"#b45f06\";\n";
    for (int i : u.nodes) {
      o << "    ";
      node_decl(static_cast<std::size_t>(i));
    }
    o << "  }\n";
  }
  for (std::size_t i = 0; i < plan.nodes.size(); ++i)
    if (plan.nodes[i].unit < 0) {
      o << "  ";
      node_decl(i);
    }
  for (ValueId v : g.inputs)
    o << "  v" << v << " [shape=ellipse, style=solid, label=\""
      << dot_escape(g.value(v).name + "\n" + graph::shape_string(g.value(v).shape)) << "\"];\n";
  for (ValueId v : g.outputs)
    o << "  out" << v << " [shape=ellipse, style=solid, label=\""
      << dot_escape(g.value(v).name + "\n" + graph::shape_string(g.value(v).shape)) << "\"];\n";

  std::vector<std::int32_t> producer = g.producers();
  auto unit_of = [&](std::int32_t node) { return node < 0 ? -1 : plan.nodes[static_cast<std::size_t>(node)].unit; };
  auto edge = [&](const std::string& from, const std::string& to, ValueId v, bool crosses) {
    o << "  " << from << " -> " << to;
    if (crosses) {
      const auto bytes = static_cast<std::int64_t>(graph::element_count(g.value(v).shape)) *
                         static_cast<std::int64_t>(graph::dtype_size(g.value(v).dtype));
      o << " [label=\"" << human_bytes(bytes) << "\", color=\"#cc0000\", fontcolor=\"#cc0000\", penwidth=2]";
    }
    o << ";\n";
  };
  for (std::size_t c = 0; c < g.nodes.size(); ++c) {
    std::vector<ValueId> seen;
    for (ValueId v : g.nodes[c].inputs) {
      if (v == kNoValue || g.is_constant(v)) continue;
      if (std::find(seen.begin(), seen.end(), v) != seen.end()) continue;
      seen.push_back(v);
      const std::int32_t p = producer[static_cast<std::size_t>(v)];
      const int uc = unit_of(static_cast<std::int32_t>(c));
      if (p < 0) {
        edge(tag("v", v), tag("n", c), v, uc >= 0);
      } else {
        const int up = unit_of(p);
        edge(tag("n", p), tag("n", c), v, up != uc);
      }
    }
  }
  for (ValueId v : g.outputs) {
    const std::int32_t p = producer[static_cast<std::size_t>(v)];
    if (p >= 0) edge(tag("n", p), tag("out", v), v, unit_of(p) >= 0);
  }
  o << "}\n";
  return o.str();
}

}  // namespace vkfuse::planner
