// tests/planner/test_planner_profiles.cpp — device and link profiles: the
// built-in defaults, interpolation, JSON round trips, clear errors naming the
// bad field, link presets and custom link specs.
//
// Run: ctest -R test_planner_profiles
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "planner/planner.h"

namespace vkfuse::planner {
namespace {

void expect_error(const std::function<void()>& f, ErrorKind kind, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected vkfuse::Error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

TEST(DeviceProfile, DefaultsAreValidAndLabelledNotMeasured) {
  DeviceProfile host = default_host_profile(), lvp = default_lavapipe_profile();
  validate(host);
  validate(lvp);
  EXPECT_FALSE(host.measured);
  EXPECT_FALSE(lvp.measured);
  EXPECT_NE(host.name.find("not measured"), std::string::npos);
  EXPECT_NE(lvp.name.find("not measured"), std::string::npos);
  EXPECT_EQ(host.kind, "host");
  EXPECT_EQ(lvp.kind, "vulkan");
  EXPECT_FALSE(host.shares_host_cores);
  EXPECT_TRUE(lvp.shares_host_cores);
  // lavapipe: ≈7 GFLOP/s on large convs, 50 us per submission; the host is far faster.
  EXPECT_NEAR(lvp.throughput_gflops(OpClass::direct_conv, 1e9), 7, 1e-9);
  EXPECT_GT(host.throughput_gflops(OpClass::direct_conv, 1e8), 10 * lvp.throughput_gflops(OpClass::direct_conv, 1e8));
  EXPECT_GE(lvp.submit_us + lvp.dispatch_us, 50);
}

TEST(DeviceProfile, ThroughputInterpolatesInLogFlopsAndClamps) {
  DeviceProfile p = default_host_profile();
  p.op_class(OpClass::gemm).throughput = {{1e6, 10}, {1e8, 30}};
  EXPECT_NEAR(p.throughput_gflops(OpClass::gemm, 1e7), 20, 1e-9);   // halfway in log
  EXPECT_NEAR(p.throughput_gflops(OpClass::gemm, 1e3), 10, 1e-9);   // clamped low
  EXPECT_NEAR(p.throughput_gflops(OpClass::gemm, 1e12), 30, 1e-9);  // clamped high
  EXPECT_EQ(parse_op_class("conv1x1_gemm"), OpClass::conv1x1_gemm);
  EXPECT_FALSE(parse_op_class("winograd").has_value());
}

// Points measured on ops of known shape: an op of known shape takes the rate
// of the measured shapes nearest to it, not of whatever has its FLOPs.
TEST(DeviceProfile, ThroughputOfShapedPointsIsTheNearestShapes) {
  DeviceProfile p = default_host_profile();
  const OpGeometry big_map{3136, 1, 1, 64}, small_map{49, 1, 1, 1024}, odd_map{289, 1, 1, 768};
  p.op_class(OpClass::conv1x1_gemm).throughput = {{1e8, 120, big_map}, {1e8, 40, small_map}, {1e8, 30, odd_map}};
  // The same shape: its own rate exactly.
  EXPECT_NEAR(p.throughput_gflops(OpClass::conv1x1_gemm, 1e8, big_map), 120, 1e-9);
  EXPECT_NEAR(p.throughput_gflops(OpClass::conv1x1_gemm, 1e8, small_map), 40, 1e-9);
  // Near the big map: close to its rate; between the small ones: between theirs.
  const double near_big = p.throughput_gflops(OpClass::conv1x1_gemm, 9e7, {3000, 1, 1, 64});
  EXPECT_GT(near_big, 100);
  EXPECT_LE(near_big, 120);
  const double between = p.throughput_gflops(OpClass::conv1x1_gemm, 1e8, {100, 1, 1, 900});
  EXPECT_GE(between, 30);
  EXPECT_LE(between, 40);
  // Unknown shape: the FLOPs table as before (all three at 1e8: the last).
  EXPECT_GT(p.throughput_gflops(OpClass::conv1x1_gemm, 1e8), 0);

  // Shapes survive the JSON round trip; tables without them still load.
  p.measured = true;
  DeviceProfile q = device_profile_from_json(device_profile_to_json(p));
  ASSERT_EQ(q.op_class(OpClass::conv1x1_gemm).throughput.size(), 3u);
  EXPECT_EQ(q.op_class(OpClass::conv1x1_gemm).throughput[1].shape.pixels, 49);
  EXPECT_EQ(q.op_class(OpClass::conv1x1_gemm).throughput[2].shape.channels, 768);
  EXPECT_FALSE(q.op_class(OpClass::gemm).throughput[0].shape.known());
  EXPECT_NEAR(q.throughput_gflops(OpClass::conv1x1_gemm, 1e8, odd_map), 30, 1e-9);
}

// Layers in blocked channels (planner/host_layout.h) run other kernels than
// planar ones of the same shape: each layout is priced from its own points,
// and a blocked layer from the planar ones where a profile has no blocked
// points (built-in and older profiles).
TEST(DeviceProfile, BlockedLayersArePricedFromBlockedPoints) {
  DeviceProfile p = default_host_profile();
  const OpGeometry planar{196, 9, 1, 1}, blocked{196, 9, 1, 1, true}, blocked_far{3136, 9, 2, 1, true};
  p.op_class(OpClass::depthwise).throughput = {{1e6, 10, planar}, {1e6, 40, blocked}, {1e7, 25, blocked_far}};
  EXPECT_NEAR(p.throughput_gflops(OpClass::depthwise, 1e6, planar), 10, 1e-9);
  EXPECT_NEAR(p.throughput_gflops(OpClass::depthwise, 1e6, blocked), 40, 1e-9);
  // Unknown shape: the planar FLOPs table.
  EXPECT_NEAR(p.throughput_gflops(OpClass::depthwise, 1e6), 10, 1e-9);
  // The flag survives the JSON round trip.
  p.measured = true;
  const DeviceProfile q = device_profile_from_json(device_profile_to_json(p));
  const auto& t = q.op_class(OpClass::depthwise).throughput;
  ASSERT_EQ(t.size(), 3u);
  EXPECT_FALSE(t[0].shape.blocked);
  EXPECT_TRUE(t[1].shape.blocked);
  EXPECT_NEAR(q.throughput_gflops(OpClass::depthwise, 1e6, blocked), 40, 1e-9);
  // No blocked points: a blocked layer at the planar rate.
  p.op_class(OpClass::depthwise).throughput = {{1e6, 10, planar}};
  EXPECT_NEAR(p.throughput_gflops(OpClass::depthwise, 1e6, blocked), 10, 1e-9);
}

TEST(DeviceProfile, JsonRoundTrip) {
  DeviceProfile p = default_lavapipe_profile();
  p.uuid = "00112233445566778899aabbccddeeff";
  p.measured = true;
  p.others_cpu_share = 0.25;
  p.kernel_shape.conv_ocb = 8;
  p.kernel_shape.conv_opx = 4;
  p.kernel_shape.pointwise_ocb = 16;
  p.kernel_shape.conv_fill = 0;
  p.kernel_shape.gpu_kernels = true;
  const std::string text = device_profile_to_json(p);
  DeviceProfile q = device_profile_from_json(text);
  EXPECT_EQ(device_profile_to_json(q), text);
  EXPECT_EQ(q.uuid, p.uuid);
  EXPECT_DOUBLE_EQ(q.others_cpu_share, 0.25);
  EXPECT_TRUE(q.shares_host_cores);
  EXPECT_TRUE(q.measured);
  EXPECT_EQ(q.kernel_shape, p.kernel_shape);
  EXPECT_DOUBLE_EQ(q.fp16_factor, 1);  // not written when 1
  p.fp16_factor = 0.8;
  EXPECT_DOUBLE_EQ(device_profile_from_json(device_profile_to_json(p)).fp16_factor, 0.8);
  // fp16's profile: every rate divided by the factor, the factor spent.
  const DeviceProfile half = for_fp16(p);
  EXPECT_DOUBLE_EQ(half.fp16_factor, 1);
  EXPECT_NEAR(half.throughput_gflops(OpClass::direct_conv, 1e8), p.throughput_gflops(OpClass::direct_conv, 1e8) / 0.8,
              1e-9);
  EXPECT_NEAR(half.bandwidth_gbs(OpClass::pooling), p.bandwidth_gbs(OpClass::pooling) / 0.8, 1e-9);
  EXPECT_EQ(describe(q.kernel_shape), "conv block 8x4, 1x1 block 16xdefault, conv fill 0");
  // Untuned: no field written, the device's defaults read back.
  const DeviceProfile untuned = device_profile_from_json(device_profile_to_json(default_lavapipe_profile()));
  EXPECT_FALSE(untuned.kernel_shape.tuned());
  EXPECT_EQ(describe(untuned.kernel_shape), "the device's defaults");
  // The tiled 1x1 GEMM alone is a tuned shape, and reads back.
  DeviceProfile tiled = default_lavapipe_profile();
  tiled.kernel_shape.pointwise_tiled = true;
  const DeviceProfile tiled_back = device_profile_from_json(device_profile_to_json(tiled));
  EXPECT_TRUE(tiled_back.kernel_shape.pointwise_tiled);
  EXPECT_EQ(describe(tiled_back.kernel_shape), "1x1 tiled");
}

TEST(DeviceProfile, HandWrittenProfileWithScalarThroughputs) {
  // A what-if accelerator, written by hand: one number per class is enough.
  std::string text = R"({"name": "npu-10x", "kind": "vulkan", "dispatch_us": 5, "submit_us": 20,
    "op_classes": {)";
  const char* classes[] = {"direct_conv", "conv1x1_gemm", "depthwise", "gemm", "pooling", "elementwise"};
  for (int i = 0; i < 6; ++i)
    text += std::string(i ? "," : "") + "\"" + classes[i] + R"(": {"throughput": 1000, "bandwidth_gbs": 100})";
  text += "}}";
  DeviceProfile p = device_profile_from_json(text);
  EXPECT_EQ(p.name, "npu-10x");
  EXPECT_FALSE(p.measured);
  EXPECT_NEAR(p.throughput_gflops(OpClass::depthwise, 12345), 1000, 1e-9);
}

TEST(DeviceProfile, ErrorsNameTheField) {
  const nlohmann::json good = nlohmann::json::parse(device_profile_to_json(default_host_profile()));
  auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good;
    edit(j);
    return j.dump();
  };
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j.erase("dispatch_us"); })); },
               ErrorKind::InvalidArgument, "missing field 'dispatch_us'");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["op_classes"].erase("depthwise"); })); },
               ErrorKind::InvalidArgument, "missing field 'op_classes.depthwise'");
  expect_error(
      [&] { device_profile_from_json(edited([](auto& j) { j["op_classes"]["pooling"].erase("bandwidth_gbs"); })); },
      ErrorKind::InvalidArgument, "missing field 'op_classes.pooling.bandwidth_gbs'");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j.erase("name"); })); }, ErrorKind::InvalidArgument,
               "missing field 'name'");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["submit_us"] = "fast"; })); },
               ErrorKind::InvalidArgument, "'submit_us' must be a number");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["kind"] = "gpu"; })); },
               ErrorKind::InvalidArgument, "kind");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["op_classes"]["gemm"]["throughput"] = -1; })); },
               ErrorKind::InvalidArgument, "op_classes.gemm.throughput");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["others_cpu_share"] = 1.5; })); },
               ErrorKind::InvalidArgument, "'others_cpu_share' must be in [0, 1]");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["kernel_shape"] = {{"conv_ocb", 5}}; })); },
               ErrorKind::InvalidArgument, "'kernel_shape.conv_ocb' must be 0 (default), 4, 8, 12 or 16");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["kernel_shape"] = {{"pointwise_opx", 17}}; })); },
               ErrorKind::InvalidArgument, "'kernel_shape.pointwise_opx' must be 0 (default) to 16");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["kernel_shape"] = {{"conv_fill", 1.5}}; })); },
               ErrorKind::InvalidArgument, "'kernel_shape.conv_fill' must be a whole number");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["kernel_shape"] = {{"conv_opx", 1e300}}; })); },
               ErrorKind::InvalidArgument, "'kernel_shape.conv_opx' must be a whole number");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["fp16_factor"] = 0; })); },
               ErrorKind::InvalidArgument, "'fp16_factor' must be positive");
  expect_error([&] { device_profile_from_json(edited([](auto& j) { j["kernel_shape"] = 8; })); },
               ErrorKind::InvalidArgument, "'kernel_shape' must be an object");
  expect_error([&] { device_profile_from_json("{\"name\": "); }, ErrorKind::InvalidArgument, "not valid JSON");
  expect_error([&] { device_profile_from_json("[1, 2]"); }, ErrorKind::InvalidArgument, "JSON object");
}

TEST(DeviceProfile, FileRoundTripAndIoErrors) {
  const std::string path = (std::filesystem::temp_directory_path() / "vkfuse_planner_profile_test.json").string();
  save_device_profile(default_host_profile(), path);
  EXPECT_EQ(device_profile_to_json(load_device_profile(path)), device_profile_to_json(default_host_profile()));
  std::remove(path.c_str());
  expect_error([&] { load_device_profile(path); }, ErrorKind::Io, path);
}

TEST(DeviceProfile, CacheKeyIsUuidDriverAndVersion) {
  DeviceProfile p = default_lavapipe_profile();
  p.uuid = "00ff";
  p.driver = "Mesa 22.3.6/llvmpipe";
  p.vkfuse_version = "0.1.0";
  EXPECT_EQ(profile_cache_file_name(p), "vulkan-00ff-Mesa_22.3.6_llvmpipe-vkfuse-0.1.0.json");
  DeviceProfile q = p;
  q.op_class(OpClass::gemm).bandwidth_gbs = 99;  // measurements differ, key does not
  EXPECT_TRUE(same_cache_key(p, q));
  q.vkfuse_version = "0.2.0";
  EXPECT_FALSE(same_cache_key(p, q));
}

TEST(LinkProfile, PresetsModelTheThesisEnvironments) {
  LinkProfile local = link_from_spec("local"), edge = link_from_spec("edge");
  EXPECT_EQ(local.name, "local");
  EXPECT_NEAR(local.h2d_mbps, 10000, 1e-9);
  EXPECT_NEAR(local.h2d_latency_us, 10, 1e-9);
  EXPECT_EQ(edge.name, "edge");
  EXPECT_NEAR(edge.h2d_mbps, 40, 1e-9);
  EXPECT_NEAR(edge.d2h_latency_us, 1000, 1e-9);
  EXPECT_TRUE(edge.emulated);
  // 1 MB over the edge link: 1 ms latency + 25 ms.
  EXPECT_NEAR(edge.transfer_us(Direction::host_to_device, 1e6), 26000, 1e-6);
  EXPECT_EQ(link_preset_names(), (std::vector<std::string>{"local", "edge"}));
  EXPECT_NE(edge.describe().find("40 MB/s up"), std::string::npos) << edge.describe();
}

TEST(LinkProfile, CustomSpecs) {
  LinkProfile l = link_from_spec("bw=100,lat=500");
  EXPECT_NEAR(l.h2d_mbps, 100, 1e-9);
  EXPECT_NEAR(l.d2h_mbps, 100, 1e-9);
  EXPECT_NEAR(l.h2d_latency_us, 500, 1e-9);
  EXPECT_NEAR(l.transfer_us(Direction::device_to_host, 1e6), 500 + 1e4, 1e-6);
  LinkProfile asym = link_from_spec("up=50,down=200,lat=0.5");
  EXPECT_NEAR(asym.h2d_mbps, 50, 1e-9);
  EXPECT_NEAR(asym.d2h_mbps, 200, 1e-9);
  EXPECT_NEAR(asym.d2h_latency_us, 0.5, 1e-9);
  for (const char* bad : {"bw=100", "lat=5", "bw=fast,lat=1", "bw=0,lat=1", "bw=-3,lat=1", "speed=1,lat=1", "fastest",
                          "bw=10,lat=1,", ""})
    expect_error([&] { link_from_spec(bad); }, ErrorKind::InvalidArgument, "link");
  expect_error([&] { link_from_spec("measured"); }, ErrorKind::InvalidArgument, "runtime");
}

TEST(LinkProfile, JsonRoundTripAndErrors) {
  LinkProfile edge = edge_link();
  const std::string text = link_profile_to_json(edge);
  EXPECT_EQ(link_profile_to_json(link_profile_from_json(text)), text);
  nlohmann::json missing = nlohmann::json::parse(text);
  missing.erase("device_to_host");
  expect_error([&] { link_profile_from_json(missing.dump()); }, ErrorKind::InvalidArgument,
               "missing field 'device_to_host'");
  nlohmann::json no_bw = nlohmann::json::parse(text);
  no_bw["host_to_device"].erase("bandwidth_mbps");
  expect_error([&] { link_profile_from_json(no_bw.dump()); }, ErrorKind::InvalidArgument,
               "missing field 'host_to_device.bandwidth_mbps'");
  const std::string path = (std::filesystem::temp_directory_path() / "vkfuse_planner_link_test.json").string();
  save_link_profile(edge, path);
  EXPECT_EQ(link_profile_to_json(load_link_profile(path)), text);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace vkfuse::planner
