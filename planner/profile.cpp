// Device and link profiles: built-in defaults, presets, JSON load/save.
#include "planner/profile.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "graph/passes.h"
#include "vkfuse/error.h"

namespace vkfuse::planner {

using nlohmann::json;

namespace {

constexpr const char* kClassNames[kOpClassCount] = {"direct_conv", "conv1x1_gemm", "depthwise",
                                                    "gemm",        "pooling",      "elementwise"};

[[noreturn]] void bad(const std::string& what, const std::string& msg) {
  throw Error(ErrorKind::InvalidArgument, what + ": " + msg);
}

// Field access with errors that name the field by its dotted path.
const json& field(const json& obj, const std::string& key, const std::string& path, const std::string& what) {
  if (!obj.is_object()) bad(what, "'" + (path.empty() ? std::string("(top level)") : path) + "' is not an object");
  auto it = obj.find(key);
  if (it == obj.end()) bad(what, "missing field '" + (path.empty() ? key : path + "." + key) + "'");
  return *it;
}

double number(const json& obj, const std::string& key, const std::string& path, const std::string& what) {
  const json& v = field(obj, key, path, what);
  if (!v.is_number()) bad(what, "field '" + (path.empty() ? key : path + "." + key) + "' must be a number");
  return v.get<double>();
}

std::string text(const json& obj, const std::string& key, const std::string& path, const std::string& what,
                 const std::string& fallback, bool required) {
  if (!required && (!obj.is_object() || !obj.contains(key))) return fallback;
  const json& v = field(obj, key, path, what);
  if (!v.is_string()) bad(what, "field '" + (path.empty() ? key : path + "." + key) + "' must be a string");
  return v.get<std::string>();
}

bool flag(const json& obj, const std::string& key, const std::string& what, bool fallback) {
  if (!obj.contains(key)) return fallback;
  const json& v = obj.at(key);
  if (!v.is_boolean()) bad(what, "field '" + key + "' must be true or false");
  return v.get<bool>();
}

json parse(std::string_view text_in, const std::string& what) {
  try {
    return json::parse(text_in.begin(), text_in.end());
  } catch (const json::parse_error& e) {
    bad(what, std::string("not valid JSON (") + e.what() + ")");
  }
}

// A profile file's checksum: FNV-1a of its compact JSON without the
// "checksum" field. Files vkfuse writes carry one; a file without (written or
// edited by hand) is accepted as it is, one whose checksum does not match is
// damaged and refused.
std::string checksum_of(json j) {
  j.erase("checksum");
  const std::string compact = j.dump();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(graph::fnv1a(compact.data(), compact.size())));
  return hex;
}

std::string dump_with_checksum(json j) {
  j["checksum"] = checksum_of(j);
  return j.dump(2) + "\n";
}

void verify_checksum(const json& j, const std::string& what) {
  if (!j.contains("checksum")) return;
  if (!j["checksum"].is_string() || j["checksum"].get<std::string>() != checksum_of(j))
    bad(what, "its checksum does not match its contents: the file is damaged or was edited (a profile of your own "
              "may leave the \"checksum\" field out)");
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::Io, "cannot read " + what + " '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Whole or not at all, so that a reader (or a process calibrating at the
// same time) sees the old file or the whole new one.
void write_file(const std::string& path, const std::string& content, const std::string& what) {
  const std::span<const char> parts[] = {content};
  if (!graph::write_file_atomically(path, parts)) throw Error(ErrorKind::Io, "cannot write " + what + " '" + path + "'");
}

OpClassProfile table(std::vector<ThroughputPoint> points, double bandwidth_gbs) {
  return OpClassProfile{std::move(points), bandwidth_gbs};
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

const char* op_class_name(OpClass c) { return kClassNames[static_cast<std::size_t>(c)]; }

std::optional<OpClass> parse_op_class(std::string_view name) {
  for (OpClass c : kAllOpClasses)
    if (name == op_class_name(c)) return c;
  return std::nullopt;
}

double DeviceProfile::throughput_gflops(OpClass c, double flops, const OpGeometry& shape) const {
  const auto& all = op_class(c).throughput;
  if (all.empty()) return 1.0;
  // The op's layout's points (blocked channels are priced as planar where
  // none were measured).
  const bool blocked = shape.blocked && std::any_of(all.begin(), all.end(), [](const ThroughputPoint& p) {
                         return p.shape.known() && p.shape.blocked;
                       });
  std::vector<ThroughputPoint> pts;
  for (const auto& p : all)
    if (p.shape.blocked == blocked) pts.push_back(p);
  if (pts.empty()) return all.front().gflops;
  if (shape.known()) {
    // The two nearest measured shapes, weighted by inverse squared distance
    // (in log space, where a factor of two counts the same everywhere).
    auto ln = [](double a, double b) { return std::log(std::max(a, 1e-9) / std::max(b, 1e-9)); };
    double best[2] = {HUGE_VAL, HUGE_VAL};
    double rate[2] = {0, 0};
    for (const auto& p : pts) {
      if (!p.shape.known()) continue;
      const double df = ln(flops, p.flops), dp = ln(shape.pixels, p.shape.pixels),
                   dk = ln(shape.kernel, p.shape.kernel), ds = 2 * ln(shape.stride, p.shape.stride),
                   dc = ln(shape.channels, p.shape.channels);
      const double d2 = df * df + dp * dp + dk * dk + ds * ds + dc * dc;
      if (d2 < best[0]) {
        best[1] = best[0];
        rate[1] = rate[0];
        best[0] = d2;
        rate[0] = p.gflops;
      } else if (d2 < best[1]) {
        best[1] = d2;
        rate[1] = p.gflops;
      }
    }
    if (best[0] < HUGE_VAL) {
      if (best[1] == HUGE_VAL || best[0] < 1e-12) return rate[0];
      const double w0 = 1 / best[0], w1 = 1 / best[1];
      return std::exp((w0 * std::log(rate[0]) + w1 * std::log(rate[1])) / (w0 + w1));
    }
  }
  if (pts.size() == 1 || flops <= pts.front().flops) return pts.front().gflops;
  if (flops >= pts.back().flops) return pts.back().gflops;
  for (std::size_t i = 1; i < pts.size(); ++i) {
    if (flops <= pts[i].flops) {
      const auto& a = pts[i - 1];
      const auto& b = pts[i];
      const double la = std::log(std::max(a.flops, 1.0)), lb = std::log(std::max(b.flops, 1.0));
      const double t = lb > la ? (std::log(std::max(flops, 1.0)) - la) / (lb - la) : 1.0;
      return a.gflops + t * (b.gflops - a.gflops);
    }
  }
  return pts.back().gflops;
}

DeviceProfile for_fp16(DeviceProfile p) {
  for (auto& c : p.classes) {
    for (auto& pt : c.throughput) pt.gflops /= p.fp16_factor;
    c.bandwidth_gbs /= p.fp16_factor;
  }
  p.fp16_factor = 1;
  return p;
}

std::string describe(const KernelShape& s) {
  if (!s.tuned()) return "the device's defaults";
  std::string d;
  const auto block = [&](const char* what, int ocb, int opx) {
    if (ocb <= 0 && opx <= 0) return;
    d += (d.empty() ? "" : ", ") + std::string(what) + " block " +
         (ocb > 0 ? std::to_string(ocb) : std::string("default")) + "x" +
         (opx > 0 ? std::to_string(opx) : std::string("default"));
  };
  block("conv", s.conv_ocb, s.conv_opx);
  block("1x1", s.pointwise_ocb, s.pointwise_opx);
  if (s.pointwise_tiled) d += (d.empty() ? "" : ", ") + std::string("1x1 tiled");
  if (s.conv_fill >= 0) d += (d.empty() ? "" : ", ") + std::string("conv fill ") + std::to_string(s.conv_fill);
  return d;
}

void validate(const DeviceProfile& p) {
  const std::string what = "device profile '" + p.name + "'";
  if (p.kind != "host" && p.kind != "vulkan")
    bad(what, "field 'kind' must be \"host\" or \"vulkan\", not \"" + p.kind + "\"");
  if (!(p.dispatch_us >= 0)) bad(what, "field 'dispatch_us' must be >= 0");
  if (!(p.submit_us >= 0)) bad(what, "field 'submit_us' must be >= 0");
  if (!(p.sequence_factor > 0)) bad(what, "field 'sequence_factor' must be positive");
  if (!(p.fp16_factor > 0)) bad(what, "field 'fp16_factor' must be positive");
  if (!(p.others_cpu_share >= 0 && p.others_cpu_share <= 1)) bad(what, "field 'others_cpu_share' must be in [0, 1]");
  const KernelShape& ks = p.kernel_shape;
  const auto block_ok = [](int n) { return n == 0 || n == 4 || n == 8 || n == 12 || n == 16; };
  for (const auto& [key, ocb, opx] : {std::tuple{"conv", ks.conv_ocb, ks.conv_opx},
                                      std::tuple{"pointwise", ks.pointwise_ocb, ks.pointwise_opx}}) {
    if (!block_ok(ocb))
      bad(what, "field 'kernel_shape." + std::string(key) + "_ocb' must be 0 (default), 4, 8, 12 or 16");
    if (opx < 0 || opx > 16) bad(what, "field 'kernel_shape." + std::string(key) + "_opx' must be 0 (default) to 16");
  }
  if (ks.conv_fill < -1) bad(what, "field 'kernel_shape.conv_fill' must be -1 (default), 0 (never split) or more");
  for (OpClass c : kAllOpClasses) {
    const auto& oc = p.op_class(c);
    const std::string path = std::string("op_classes.") + op_class_name(c);
    if (oc.throughput.empty()) bad(what, "field '" + path + ".throughput' has no points");
    for (std::size_t i = 0; i < oc.throughput.size(); ++i) {
      if (!(oc.throughput[i].gflops > 0)) bad(what, "field '" + path + ".throughput' must be positive GFLOP/s");
      if (!(oc.throughput[i].flops >= 0)) bad(what, "field '" + path + ".throughput' has a negative size");
      if (i > 0 && oc.throughput[i].flops < oc.throughput[i - 1].flops)
        bad(what, "field '" + path + ".throughput' must be sorted by flops");
    }
    if (!(oc.bandwidth_gbs > 0)) bad(what, "field '" + path + ".bandwidth_gbs' must be positive");
  }
}

// ---- built-in defaults --------------------------------------------------------

DeviceProfile default_host_profile() {
  // 2 vCPU AMD EPYC Zen 4, Halide kernels on 2 threads (BASELINES.md): FMA peak
  // 232 GFLOP/s, hand-scheduled 3x3 conv 211 GFLOP/s at its best, GEMM 512³
  // 220 GFLOP/s, STREAM 37.6 GB/s. Achieved throughput across a whole network
  // is lower; these are conservative planning numbers, not measurements.
  DeviceProfile p;
  p.name = "host (default, not measured)";
  p.kind = "host";
  p.vkfuse_version = VKFUSE_VERSION;
  p.measured = false;
  p.shares_host_cores = false;
  p.dispatch_us = 5;  // one op call through the thread pool
  p.submit_us = 0;
  p.op_class(OpClass::direct_conv) = table({{1e6, 20}, {1e7, 60}, {1e8, 100}, {1e9, 110}}, 30);
  p.op_class(OpClass::conv1x1_gemm) = table({{1e6, 20}, {1e7, 70}, {1e8, 120}, {1e9, 140}}, 30);
  p.op_class(OpClass::depthwise) = table({{1e5, 5}, {1e6, 12}, {1e7, 25}}, 25);
  p.op_class(OpClass::gemm) = table({{1e5, 5}, {1e6, 30}, {1e7, 100}, {1e8, 180}}, 30);
  p.op_class(OpClass::pooling) = table({{1e5, 3}, {1e6, 8}, {1e7, 15}}, 20);
  p.op_class(OpClass::elementwise) = table({{1e5, 3}, {1e6, 8}, {1e7, 12}}, 20);
  return p;
}

DeviceProfile default_lavapipe_profile() {
  // Mesa 22.3 lavapipe on the same 2 cores (BASELINES.md): best probe conv
  // shader 7.4 GFLOP/s, pure FMA 78 GFLOP/s, vec4 SSBO stream 4.3 GB/s,
  // submit + fence wait 42–70 µs. It runs on the host's cores.
  DeviceProfile p;
  p.name = "lavapipe (default, not measured)";
  p.kind = "vulkan";
  p.driver = "Mesa lavapipe";
  p.vkfuse_version = VKFUSE_VERSION;
  p.measured = false;
  p.shares_host_cores = true;
  p.dispatch_us = 10;
  p.submit_us = 50;
  p.op_class(OpClass::direct_conv) = table({{1e6, 2}, {1e7, 5}, {1e8, 7}}, 4);
  p.op_class(OpClass::conv1x1_gemm) = table({{1e6, 2}, {1e7, 6}, {1e8, 8}}, 4);
  p.op_class(OpClass::depthwise) = table({{1e5, 0.5}, {1e6, 1.5}, {1e7, 3}}, 4);
  p.op_class(OpClass::gemm) = table({{1e5, 1}, {1e6, 4}, {1e7, 8}}, 4);
  p.op_class(OpClass::pooling) = table({{1e5, 0.5}, {1e6, 1.5}, {1e7, 2}}, 4);
  p.op_class(OpClass::elementwise) = table({{1e5, 0.5}, {1e6, 1.5}, {1e7, 2}}, 4);
  return p;
}

DeviceProfile default_accelerator_profile(std::string_view device_type) {
  if (device_type != "discrete-gpu" && device_type != "integrated-gpu") return default_lavapipe_profile();
  // Planning numbers until `vkfuse calibrate` has run, far above a CPU's so
  // that a GPU gets the convolutions: about a quarter of what vkfuse's GPU
  // kernels measured on an NVIDIA H200 at full clocks (calibrated
  // 2026-12-04: 3x3 convolutions of 0.01-0.2 GFLOP at 1.7-12 TFLOP/s, 1x1
  // at 1-7, depthwise and pooling 0.15-1.1, submit 40 us, dispatch 3 us),
  // for the mid-range discrete GPUs most users have.
  const bool discrete = device_type == "discrete-gpu";
  const double s = discrete ? 1.0 : 0.1;  // an integrated GPU: a tenth, and the host's memory bandwidth
  DeviceProfile p;
  p.name = std::string(discrete ? "discrete GPU" : "integrated GPU") + " (default, not measured)";
  p.kind = "vulkan";
  p.vkfuse_version = VKFUSE_VERSION;
  p.measured = false;
  p.shares_host_cores = false;
  p.dispatch_us = 3;
  p.submit_us = 40;
  p.op_class(OpClass::direct_conv) = table({{1e6, 50 * s}, {1e7, 400 * s}, {1e8, 1500 * s}, {1e9, 3000 * s}}, 400 * s);
  p.op_class(OpClass::conv1x1_gemm) = table({{1e6, 50 * s}, {1e7, 300 * s}, {1e8, 1200 * s}, {1e9, 2000 * s}}, 400 * s);
  p.op_class(OpClass::depthwise) = table({{1e5, 10 * s}, {1e6, 80 * s}, {1e7, 300 * s}}, 400 * s);
  p.op_class(OpClass::gemm) = table({{1e5, 6 * s}, {1e6, 60 * s}, {1e7, 300 * s}, {1e8, 600 * s}}, 400 * s);
  p.op_class(OpClass::pooling) = table({{1e5, 10 * s}, {1e6, 60 * s}, {1e7, 150 * s}}, 400 * s);
  p.op_class(OpClass::elementwise) = table({{1e5, 6 * s}, {1e6, 30 * s}, {1e7, 100 * s}}, 400 * s);
  return p;
}

LinkProfile default_link_profile(std::string_view device_type) {
  LinkProfile l;
  l.emulated = false;
  if (device_type == "discrete-gpu") {
    l.name = "measured (uncalibrated defaults for PCIe: run `vkfuse calibrate`)";
    l.h2d_mbps = l.d2h_mbps = 10000;  // PCIe 3.0 x16 as achieved from pinned memory, give or take
    l.h2d_latency_us = l.d2h_latency_us = 20;
  } else {
    l.name = "measured (uncalibrated defaults: run `vkfuse calibrate`)";
    l.h2d_mbps = 10400;  // lavapipe's memcpy rates here (shared/BASELINES.md)
    l.d2h_mbps = 12600;
    l.h2d_latency_us = l.d2h_latency_us = 50;
  }
  return l;
}

// ---- device profile JSON ------------------------------------------------------

DeviceProfile device_profile_from_json(std::string_view json_text) {
  const std::string what = "device profile";
  json j = parse(json_text, what);
  if (!j.is_object()) bad(what, "expected a JSON object");
  DeviceProfile p;
  p.name = text(j, "name", "", what, "", true);
  p.kind = text(j, "kind", "", what, "", true);
  p.uuid = text(j, "uuid", "", what, "", false);
  p.driver = text(j, "driver", "", what, "", false);
  p.device_type = text(j, "device_type", "", what, "", false);
  p.vkfuse_version = text(j, "vkfuse_version", "", what, "", false);
  p.measured = flag(j, "measured", what, false);
  p.shares_host_cores = flag(j, "shares_host_cores", what, false);
  p.dispatch_us = number(j, "dispatch_us", "", what);
  p.submit_us = number(j, "submit_us", "", what);
  if (j.contains("sequence_factor")) p.sequence_factor = number(j, "sequence_factor", "", what);
  if (j.contains("fp16_factor")) p.fp16_factor = number(j, "fp16_factor", "", what);
  if (j.contains("others_cpu_share")) p.others_cpu_share = number(j, "others_cpu_share", "", what);
  if (j.contains("kernel_shape")) {
    const json& ks = j["kernel_shape"];
    if (!ks.is_object()) bad(what, "field 'kernel_shape' must be an object");
    const auto whole = [&](const char* key, double fallback) {
      if (!ks.contains(key)) return fallback;
      const double v = number(ks, key, "kernel_shape", what);
      if (v != std::floor(v) || !(std::fabs(v) <= 1e12))
        bad(what, std::string("field 'kernel_shape.") + key + "' must be a whole number");
      return v;
    };
    p.kernel_shape.conv_ocb = static_cast<int>(whole("conv_ocb", 0));
    p.kernel_shape.conv_opx = static_cast<int>(whole("conv_opx", 0));
    p.kernel_shape.pointwise_ocb = static_cast<int>(whole("pointwise_ocb", 0));
    p.kernel_shape.pointwise_opx = static_cast<int>(whole("pointwise_opx", 0));
    p.kernel_shape.conv_fill = static_cast<std::int64_t>(whole("conv_fill", -1));
    p.kernel_shape.pointwise_tiled = flag(ks, "pointwise_tiled", what, false);
    p.kernel_shape.gpu_kernels = flag(ks, "gpu_kernels", what, false);
  }
  const json& classes = field(j, "op_classes", "", what);
  for (OpClass c : kAllOpClasses) {
    const std::string path = std::string("op_classes.") + op_class_name(c);
    const json& oc = field(classes, op_class_name(c), "op_classes", what);
    OpClassProfile& out = p.op_class(c);
    out.bandwidth_gbs = number(oc, "bandwidth_gbs", path, what);
    const json& tp = field(oc, "throughput", path, what);
    if (tp.is_number()) {
      out.throughput = {{0, tp.get<double>()}};
    } else if (tp.is_array()) {
      for (std::size_t i = 0; i < tp.size(); ++i) {
        const std::string ip = path + ".throughput[" + std::to_string(i) + "]";
        ThroughputPoint pt{number(tp[i], "flops", ip, what), number(tp[i], "gflops", ip, what), {}};
        if (tp[i].contains("shape")) {
          const json& sh = tp[i]["shape"];
          const std::string sp = ip + ".shape";
          pt.shape = {number(sh, "pixels", sp, what), number(sh, "kernel", sp, what), number(sh, "stride", sp, what),
                      number(sh, "channels", sp, what), flag(sh, "blocked", what, false)};
        }
        out.throughput.push_back(pt);
      }
    } else {
      bad(what, "field '" + path + ".throughput' must be a number or a list of {flops, gflops}");
    }
  }
  validate(p);
  verify_checksum(j, what);  // after the fields: a hand edit that breaks one is named by it
  return p;
}

std::string device_profile_to_json(const DeviceProfile& p) {
  json j;
  j["name"] = p.name;
  j["kind"] = p.kind;
  j["uuid"] = p.uuid;
  j["driver"] = p.driver;
  if (!p.device_type.empty()) j["device_type"] = p.device_type;
  j["vkfuse_version"] = p.vkfuse_version;
  j["measured"] = p.measured;
  j["shares_host_cores"] = p.shares_host_cores;
  j["dispatch_us"] = p.dispatch_us;
  j["submit_us"] = p.submit_us;
  j["sequence_factor"] = p.sequence_factor;
  if (p.fp16_factor != 1) j["fp16_factor"] = p.fp16_factor;
  j["others_cpu_share"] = p.others_cpu_share;
  if (p.kernel_shape.tuned())
    j["kernel_shape"] = {{"conv_ocb", p.kernel_shape.conv_ocb},
                         {"conv_opx", p.kernel_shape.conv_opx},
                         {"pointwise_ocb", p.kernel_shape.pointwise_ocb},
                         {"pointwise_opx", p.kernel_shape.pointwise_opx},
                         {"conv_fill", p.kernel_shape.conv_fill},
                         {"pointwise_tiled", p.kernel_shape.pointwise_tiled},
                         {"gpu_kernels", p.kernel_shape.gpu_kernels}};
  json classes = json::object();
  for (OpClass c : kAllOpClasses) {
    json pts = json::array();
    for (const auto& pt : p.op_class(c).throughput) {
      json jp = {{"flops", pt.flops}, {"gflops", pt.gflops}};
      if (pt.shape.known())
        jp["shape"] = {{"pixels", pt.shape.pixels},
                       {"kernel", pt.shape.kernel},
                       {"stride", pt.shape.stride},
                       {"channels", pt.shape.channels}};
      if (pt.shape.blocked) jp["shape"]["blocked"] = true;
      pts.push_back(jp);
    }
    classes[op_class_name(c)] = {{"throughput", pts}, {"bandwidth_gbs", p.op_class(c).bandwidth_gbs}};
  }
  j["op_classes"] = classes;
  return dump_with_checksum(std::move(j));
}

DeviceProfile load_device_profile(const std::string& path) {
  try {
    return device_profile_from_json(read_file(path, "device profile"));
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Io) throw;
    throw Error(e.kind(), path + ": " + e.what());
  }
}

void save_device_profile(const DeviceProfile& p, const std::string& path) {
  write_file(path, device_profile_to_json(p), "device profile");
}

std::string profile_cache_file_name(const DeviceProfile& p) {
  std::string raw = p.kind + "-" + (p.uuid.empty() ? std::string("nouuid") : p.uuid) + "-" +
                    (p.driver.empty() ? std::string("nodriver") : p.driver) + "-vkfuse-" + p.vkfuse_version;
  for (char& c : raw) {
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return raw + ".json";
}

bool same_cache_key(const DeviceProfile& a, const DeviceProfile& b) {
  return a.kind == b.kind && a.uuid == b.uuid && a.driver == b.driver && a.vkfuse_version == b.vkfuse_version;
}

// ---- links ---------------------------------------------------------------------

double LinkProfile::transfer_us(Direction d, double bytes) const {
  const bool up = d == Direction::host_to_device;
  const double mbps = up ? h2d_mbps : d2h_mbps;
  const double lat = up ? h2d_latency_us : d2h_latency_us;
  return lat + bytes / mbps;  // B / (MB/s) = µs
}

std::string LinkProfile::describe() const {
  std::string s = name + ": " + fmt(h2d_mbps) + " MB/s up, " + fmt(d2h_mbps) + " MB/s down, ";
  if (h2d_latency_us == d2h_latency_us)
    s += fmt(h2d_latency_us) + " us latency";
  else
    s += fmt(h2d_latency_us) + "/" + fmt(d2h_latency_us) + " us latency up/down";
  s += emulated ? " (emulated)" : " (real link, not emulated)";
  return s;
}

LinkProfile local_link() { return {"local", 10000, 10000, 10, 10, true}; }
LinkProfile edge_link() { return {"edge", 40, 40, 1000, 1000, true}; }
std::vector<std::string> link_preset_names() { return {"local", "edge"}; }

LinkProfile link_from_spec(std::string_view spec) {
  if (spec == "local") return local_link();
  if (spec == "edge") return edge_link();
  const std::string usage =
      "expected 'local', 'edge', 'measured' or 'bw=<MB/s>,lat=<us>' (or 'up=<MB/s>,down=<MB/s>,lat=<us>')";
  if (spec == "measured")
    throw Error(ErrorKind::InvalidArgument,
                "link 'measured' is resolved by the runtime from the real link; the planner needs its numbers");
  LinkProfile l;
  l.name = std::string(spec);
  l.emulated = true;
  bool have_up = false, have_down = false, have_lat = false;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t comma = spec.find(',', pos);
    std::string_view item = spec.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      throw Error(ErrorKind::InvalidArgument, "bad link '" + std::string(spec) + "': " + usage);
    std::string_view key = item.substr(0, eq), val = item.substr(eq + 1);
    double v = 0;
    auto [ptr, ec] = std::from_chars(val.data(), val.data() + val.size(), v);
    if (ec != std::errc() || ptr != val.data() + val.size() || !(v >= 0) || !std::isfinite(v))
      throw Error(ErrorKind::InvalidArgument,
                  "bad link '" + std::string(spec) + "': '" + std::string(val) + "' is not a non-negative number");
    if (key == "bw") {
      l.h2d_mbps = l.d2h_mbps = v;
      have_up = have_down = true;
    } else if (key == "up") {
      l.h2d_mbps = v;
      have_up = true;
    } else if (key == "down") {
      l.d2h_mbps = v;
      have_down = true;
    } else if (key == "lat") {
      l.h2d_latency_us = l.d2h_latency_us = v;
      have_lat = true;
    } else {
      throw Error(ErrorKind::InvalidArgument,
                  "bad link '" + std::string(spec) + "': unknown key '" + std::string(key) + "'; " + usage);
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  if (!have_up || !have_down || !have_lat)
    throw Error(ErrorKind::InvalidArgument, "bad link '" + std::string(spec) + "': " + usage);
  if (!(l.h2d_mbps > 0) || !(l.d2h_mbps > 0))
    throw Error(ErrorKind::InvalidArgument, "bad link '" + std::string(spec) + "': bandwidth must be positive");
  return l;
}

LinkProfile link_profile_from_json(std::string_view json_text) {
  const std::string what = "link profile";
  json j = parse(json_text, what);
  if (!j.is_object()) bad(what, "expected a JSON object");
  LinkProfile l;
  l.name = text(j, "name", "", what, "", true);
  const json& up = field(j, "host_to_device", "", what);
  const json& down = field(j, "device_to_host", "", what);
  l.h2d_mbps = number(up, "bandwidth_mbps", "host_to_device", what);
  l.h2d_latency_us = number(up, "latency_us", "host_to_device", what);
  l.d2h_mbps = number(down, "bandwidth_mbps", "device_to_host", what);
  l.d2h_latency_us = number(down, "latency_us", "device_to_host", what);
  l.emulated = flag(j, "emulated", what, true);
  if (!(l.h2d_mbps > 0) || !(l.d2h_mbps > 0)) bad(what, "bandwidth_mbps must be positive");
  if (!(l.h2d_latency_us >= 0) || !(l.d2h_latency_us >= 0)) bad(what, "latency_us must be >= 0");
  verify_checksum(j, what);
  return l;
}

std::string link_profile_to_json(const LinkProfile& l) {
  json j;
  j["name"] = l.name;
  j["host_to_device"] = {{"bandwidth_mbps", l.h2d_mbps}, {"latency_us", l.h2d_latency_us}};
  j["device_to_host"] = {{"bandwidth_mbps", l.d2h_mbps}, {"latency_us", l.d2h_latency_us}};
  j["emulated"] = l.emulated;
  return dump_with_checksum(std::move(j));
}

bool carries_checksum(std::string_view json_text) {
  try {
    const json j = json::parse(json_text.begin(), json_text.end());
    return j.is_object() && j.contains("checksum");
  } catch (const json::exception&) {
    return false;
  }
}

LinkProfile load_link_profile(const std::string& path) {
  try {
    return link_profile_from_json(read_file(path, "link profile"));
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Io) throw;
    throw Error(e.kind(), path + ": " + e.what());
  }
}

void save_link_profile(const LinkProfile& l, const std::string& path) {
  write_file(path, link_profile_to_json(l), "link profile");
}

}  // namespace vkfuse::planner
