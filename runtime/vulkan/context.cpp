#include "runtime/vulkan/context.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "graph/passes.h"
#include "vkfuse/error.h"

namespace vkfuse::runtime::vulkan {

namespace {

std::atomic<std::int64_t> g_validation_errors{0};

[[noreturn]] void device_error(const std::string& what, VkResult r) {
  throw Error(ErrorKind::Device, what + " failed (VkResult " + std::to_string(static_cast<int>(r)) + ")");
}

struct Fault {
  std::atomic<int> skip{0}, times{0};
  std::atomic<int> result{VK_SUCCESS};
};
Fault g_faults[3];
std::atomic<bool> g_any_fault{false};

// The injected result of this call at `site`, or VK_SUCCESS to make the call.
VkResult injected(FaultSite site) {
  if (!g_any_fault.load(std::memory_order_relaxed)) return VK_SUCCESS;
  Fault& f = g_faults[static_cast<int>(site)];
  if (f.times.load() == 0) return VK_SUCCESS;
  if (f.skip.load() > 0 && f.skip.fetch_sub(1) > 0) return VK_SUCCESS;
  // Take one of the `times` (-1: unlimited), so that two threads cannot both take the last.
  for (int t = f.times.load(); t != 0;)
    if (t < 0 || f.times.compare_exchange_weak(t, t - 1)) return static_cast<VkResult>(f.result.load());
  return VK_SUCCESS;
}

VkResult submit_to(VkQueue queue, const VkSubmitInfo& s, VkFence fence) {
  const VkResult r = injected(FaultSite::submit);
  return r != VK_SUCCESS ? r : vkQueueSubmit(queue, 1, &s, fence);
}

VkResult wait_for(VkDevice device, VkFence fence, std::uint64_t timeout_ms) {
  const VkResult r = injected(FaultSite::wait);
  if (r != VK_SUCCESS) return r;
  const std::uint64_t ns = timeout_ms > UINT64_MAX / 1'000'000 ? UINT64_MAX : timeout_ms * 1'000'000;
  return vkWaitForFences(device, 1, &fence, VK_TRUE, ns);
}

VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                              VkDebugUtilsMessageTypeFlagsEXT,
                                              const VkDebugUtilsMessengerCallbackDataEXT* data, void*) {
  if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
    ++g_validation_errors;
    std::fprintf(stderr, "vkfuse: validation error: %s\n", data && data->pMessage ? data->pMessage : "?");
  } else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
    std::fprintf(stderr, "vkfuse: validation warning: %s\n", data && data->pMessage ? data->pMessage : "?");
  }
  return VK_FALSE;
}

std::mutex g_contexts_mutex;
// Keyed by "device <uuid><settings>" (one context per device) and by
// "selector <selector><settings>" (the same context, found without
// enumerating devices again).
std::map<std::string, std::weak_ptr<Context>> g_contexts;

}  // namespace

std::int64_t validation_error_count() { return g_validation_errors.load(); }

void inject_fault(FaultSite site, VkResult result, int skip, int times) {
  Fault& f = g_faults[static_cast<int>(site)];
  f.result = result;
  f.skip = skip;
  f.times = times;
  g_any_fault = true;
}

void clear_faults() {
  for (Fault& f : g_faults) f.times = 0;
  g_any_fault = false;
}

ErrorKind error_kind_of(VkResult r) {
  switch (r) {
    case VK_ERROR_DEVICE_LOST: return ErrorKind::DeviceLost;
    case VK_TIMEOUT: return ErrorKind::DeviceTimeout;
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    case VK_ERROR_OUT_OF_HOST_MEMORY: return ErrorKind::OutOfDeviceMemory;
    default: return ErrorKind::Device;
  }
}

void Context::check(VkResult r, const char* what) {
  if (r == VK_SUCCESS) return;
  const std::string code = " (VkResult " + std::to_string(static_cast<int>(r)) + ")";
  switch (r) {
    case VK_ERROR_DEVICE_LOST:
      retired_ = true;
      throw Error(ErrorKind::DeviceLost, "the Vulkan device '" + name_ + "' was lost in " + what + code +
                                             ": the driver reset it or the GPU faulted; the model rebuilds its "
                                             "device state at the next run (check `dmesg` if it recurs)");
    case VK_TIMEOUT:
      hung_ = true;
      retired_ = true;
      throw Error(ErrorKind::DeviceTimeout, "the Vulkan device '" + name_ + "' did not finish its work in time (" +
                                                what + "); the model rebuilds its device state at the next run "
                                                "(a longer device_timeout_ms, or --device-timeout, allows more)");
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    case VK_ERROR_OUT_OF_HOST_MEMORY:
      throw Error(ErrorKind::OutOfDeviceMemory, std::string(what) + " ran out of " +
                                                    (r == VK_ERROR_OUT_OF_HOST_MEMORY ? "driver" : "device") +
                                                    " memory on '" + name_ + "'" + code +
                                                    "; free device memory, or run on the host (--strategy cpu)");
    default:
      device_error(what, r);
  }
}

bool validation_requested() {
  const char* v = std::getenv("VKFUSE_VALIDATION");
  return v && *v && std::string(v) != "0";
}

bool sync_validation_requested() {
  const char* v = std::getenv("VKFUSE_VALIDATION");
  return v && std::string(v) == "sync";
}

DeviceLimits DeviceLimits::parse(const std::string& spec) {
  DeviceLimits l;
  if (spec.empty()) return l;
  // The preset stands for its pairs wherever it appears in the list.
  std::string expanded = "," + spec + ",";
  for (std::size_t at; (at = expanded.find(",discrete,")) != std::string::npos;)
    expanded.replace(at, 10, ",host_visible_mib=256,texel_elements=65536,mapped_io=0,gpu_kernels=1,");
  auto bad = [&](const std::string& why) {
    return Error(ErrorKind::InvalidArgument,
                 "VKFUSE_DEVICE_LIMITS='" + spec + "': " + why +
                     " (expected key=value pairs and the preset `discrete`: host_visible_mib=N, texel_elements=N, mapped_io=0|1, "
                     "gpu_kernels=0|1, subgroup_ops=0|1, storage_range_mib=N, arena_windows=0|1)");
  };
  std::size_t at = 0;
  while (at <= expanded.size()) {
    const std::size_t comma = std::min(expanded.find(',', at), expanded.size());
    const std::string item = expanded.substr(at, comma - at);
    at = comma + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos) throw bad("'" + item + "' has no value");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    char* end = nullptr;
    const unsigned long long n = std::strtoull(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || value[0] == '-') throw bad("'" + value + "' is not a number");
    if (key == "host_visible_mib") {
      if (n == 0) throw bad("host_visible_mib must be at least 1");
      l.host_visible_window = n << 20;
    } else if (key == "texel_elements") {
      if (n == 0 || n > UINT32_MAX) throw bad("texel_elements must be between 1 and 2^32-1");
      l.max_texel_elements = static_cast<std::uint32_t>(n);
    } else if (key == "storage_range_mib") {
      if (n == 0 || n > 4095) throw bad("storage_range_mib must be between 1 and 4095");
      l.storage_range = n << 20;
    } else if (key == "arena_windows") {
      if (n > 1) throw bad("arena_windows is 0 or 1");
      l.arena_windows = n == 1;
    } else if (key == "mapped_io") {
      if (n > 1) throw bad("mapped_io is 0 or 1");
      l.mapped_io = n == 1;
    } else if (key == "gpu_kernels") {
      if (n > 1) throw bad("gpu_kernels is 0 or 1");
      l.gpu_kernels = n == 1;
    } else if (key == "subgroup_ops") {
      if (n > 1) throw bad("subgroup_ops is 0 or 1");
      l.subgroup_ops = n == 1;
    } else {
      throw bad("unknown key '" + key + "'");
    }
  }
  return l;
}

DeviceLimits DeviceLimits::from_env() {
  const char* v = std::getenv("VKFUSE_DEVICE_LIMITS");
  return parse(v ? v : "");
}

void DeviceLimits::apply(VkPhysicalDeviceLimits& limits) const {
  if (max_texel_elements) limits.maxTexelBufferElements = std::min(limits.maxTexelBufferElements, max_texel_elements);
  if (storage_range)
    limits.maxStorageBufferRange =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(limits.maxStorageBufferRange, storage_range));
}

std::string DeviceLimits::describe() const {
  std::string s;
  auto add = [&](const std::string& item) { s += (s.empty() ? "" : ",") + item; };
  if (host_visible_window) add("host_visible_mib=" + std::to_string(host_visible_window >> 20));
  if (max_texel_elements) add("texel_elements=" + std::to_string(max_texel_elements));
  if (storage_range) add("storage_range_mib=" + std::to_string(storage_range >> 20));
  if (arena_windows) add("arena_windows=1");
  if (!mapped_io) add("mapped_io=0");
  if (gpu_kernels) add("gpu_kernels=1");
  if (!subgroup_ops) add("subgroup_ops=0");
  return s;
}

std::string default_cache_dir() {
  if (const char* d = std::getenv("VKFUSE_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/vkfuse";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/vkfuse";
  return "";
}

std::shared_ptr<Context> Context::acquire(const std::string& selector) {
  const DeviceLimits limits = DeviceLimits::from_env();
  const std::string settings = std::string(validation_requested() ? "#validation" : "") +
                               (sync_validation_requested() ? "#sync" : "") + "#" + limits.describe();
  if (std::string why; !load_vulkan(&why)) throw Error(ErrorKind::Device, "no Vulkan device: " + why);
  std::lock_guard<std::mutex> lock(g_contexts_mutex);
  // A selector seen before needs no device enumeration (an instance of its own).
  if (auto it = g_contexts.find("selector " + selector + settings); it != g_contexts.end())
    if (auto ctx = it->second.lock(); ctx && !ctx->retired()) return ctx;
  const std::vector<DeviceInfo> devices = list_devices();
  const int chosen = select_device(devices, selector);  // throws for no device or no match
  std::vector<int> candidates{chosen};
  if (selector.empty())
    for (int i : device_preference(devices))
      if (i != chosen) candidates.push_back(i);
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    const DeviceInfo& d = devices[static_cast<std::size_t>(candidates[c])];
    // One context per physical device (and validation and limits settings).
    const std::string key = "device " + (d.uuid.empty() ? std::to_string(d.index) : d.uuid) + settings;
    std::shared_ptr<Context> ctx;
    if (auto it = g_contexts.find(key); it != g_contexts.end()) ctx = it->second.lock();
    if (ctx && ctx->retired()) ctx.reset();
    if (!ctx) {
      ctx.reset(new Context());
      ctx->imposed_ = limits;
      try {
        ctx->init(d.index);
      } catch (const Error& e) {
        if (!is_device_error(e.kind()) || c + 1 == candidates.size()) throw;
        std::fprintf(stderr, "vkfuse: note: skipping Vulkan device %d (%s): %s\n", d.index, d.name.c_str(), e.what());
        continue;
      }
      g_contexts[key] = ctx;
    }
    g_contexts["selector " + selector + settings] = ctx;
    return ctx;
  }
  throw Error(ErrorKind::Device, "no Vulkan device initialises");
}

namespace {

// One instance per layer setting (none, validation, validation with
// synchronization), made at first use and never destroyed: see
// process_instance() in context.h.
struct ProcessInstance {
  VkInstance instance = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
};
std::mutex g_instances_mutex;
ProcessInstance g_instances[3];

}  // namespace

VkInstance process_instance(bool validation, bool sync_validation, VkResult* result) {
  if (result) *result = VK_SUCCESS;
  std::lock_guard<std::mutex> lock(g_instances_mutex);
  ProcessInstance& slot = g_instances[validation ? (sync_validation ? 2 : 1) : 0];
  if (slot.instance) return slot.instance;
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "vkfuse";
  app.apiVersion = VK_API_VERSION_1_1;
  std::vector<const char*> layers, extensions;
  if (validation) {
    std::uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, nullptr);
    std::vector<VkLayerProperties> avail(n);
    vkEnumerateInstanceLayerProperties(&n, avail.data());
    bool found = false;
    for (auto& l : avail) found = found || std::strcmp(l.layerName, "VK_LAYER_KHRONOS_validation") == 0;
    if (!found)
      throw Error(ErrorKind::Device, "VKFUSE_VALIDATION=1 but VK_LAYER_KHRONOS_validation is not installed");
    layers.push_back("VK_LAYER_KHRONOS_validation");
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  }
  VkInstanceCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  info.pApplicationInfo = &app;
  info.enabledLayerCount = static_cast<std::uint32_t>(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = static_cast<std::uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  // Synchronization validation: hazards between dispatches, copies and the
  // host (what a GPU that runs work concurrently would turn into races).
  const VkValidationFeatureEnableEXT sync_feature = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
  VkValidationFeaturesEXT validation_features{};
  validation_features.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT;
  validation_features.enabledValidationFeatureCount = 1;
  validation_features.pEnabledValidationFeatures = &sync_feature;
  if (validation && sync_validation) info.pNext = &validation_features;
  VkInstance instance = VK_NULL_HANDLE;
  const VkResult r = vkCreateInstance(&info, nullptr, &instance);
  if (result) *result = r;
  if (r != VK_SUCCESS) return VK_NULL_HANDLE;  // tried again at the next call
  slot.instance = instance;
  if (validation) {
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT"));
    if (create) {
      VkDebugUtilsMessengerCreateInfoEXT m{};
      m.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
      m.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT;
      m.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                      VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
      m.pfnUserCallback = debug_callback;
      if (create(instance, &m, nullptr, &slot.messenger) != VK_SUCCESS) slot.messenger = VK_NULL_HANDLE;
    }
  }
  return instance;
}

void Context::init(int index) {
  VkResult r = VK_SUCCESS;
  instance_ = process_instance(validation_requested(), sync_validation_requested(), &r);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
    throw Error(ErrorKind::Device, "no Vulkan device: no Vulkan driver is installed");
  check(r, "vkCreateInstance");

  std::uint32_t count = 0;
  vkEnumeratePhysicalDevices(instance_, &count, nullptr);
  std::vector<VkPhysicalDevice> devices(count);
  vkEnumeratePhysicalDevices(instance_, &count, devices.data());
  if (index < 0 || static_cast<std::uint32_t>(index) >= count)
    throw Error(ErrorKind::Device, "Vulkan device " + std::to_string(index) + " is gone");
  physical_ = devices[static_cast<std::size_t>(index)];
  vkGetPhysicalDeviceProperties(physical_, &props_);
  name_ = props_.deviceName;
  if (props_.apiVersion < VK_API_VERSION_1_1)
    throw Error(ErrorKind::Device, "Vulkan device '" + name_ + "' supports only Vulkan 1.0 (1.1 is needed)");
  imposed_.apply(props_.limits);
  vkGetPhysicalDeviceMemoryProperties(physical_, &mem_);
  {
    std::uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties(physical_, nullptr, &n, nullptr);
    std::vector<VkExtensionProperties> exts(n);
    vkEnumerateDeviceExtensionProperties(physical_, nullptr, &n, exts.data());
    for (const auto& e : exts) memory_budget_ = memory_budget_ || std::strcmp(e.extensionName, "VK_EXT_memory_budget") == 0;
  }
  // Unified memory: an integrated GPU or a CPU device whose largest
  // device-local heap is host-visible (and coherent) as a whole. A discrete
  // GPU with resizable BAR shows the same memory types, but the host reaches
  // its memory over PCIe, uncached: that is a window (window_holds), not
  // unified memory.
  if (props_.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU || props_.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU) {
    std::uint32_t largest = UINT32_MAX;
    for (std::uint32_t h = 0; h < mem_.memoryHeapCount; ++h)
      if ((mem_.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
          (largest == UINT32_MAX || mem_.memoryHeaps[h].size > mem_.memoryHeaps[largest].size))
        largest = h;
    const VkMemoryPropertyFlags mappable = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                           VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    for (std::uint32_t i = 0; i < mem_.memoryTypeCount; ++i)
      unified_ = unified_ || (mem_.memoryTypes[i].heapIndex == largest &&
                              (mem_.memoryTypes[i].propertyFlags & mappable) == mappable);
    if (imposed_.host_visible_window) unified_ = false;
  }

  VkPhysicalDeviceSubgroupProperties subgroup{};
  subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
  VkPhysicalDeviceProperties2 props2{};
  props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
  props2.pNext = &subgroup;
  vkGetPhysicalDeviceProperties2(physical_, &props2);
  subgroup_size_ = std::max(1u, subgroup.subgroupSize);
  const VkSubgroupFeatureFlags needed = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
  subgroup_arithmetic_ = imposed_.subgroup_ops && (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                         (subgroup.supportedOperations & needed) == needed;

  VkPhysicalDevice16BitStorageFeatures storage16{};
  storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
  VkPhysicalDeviceFeatures2 features{};
  features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
  features.pNext = &storage16;
  vkGetPhysicalDeviceFeatures2(physical_, &features);
  fp16_storage_ = storage16.storageBuffer16BitAccess == VK_TRUE;

  // A queue family with compute; prefer one without graphics (a dedicated compute queue).
  std::uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> families(nq);
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &nq, families.data());
  int family = -1;
  for (std::uint32_t i = 0; i < nq; ++i) {
    if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
    if (family < 0 || (!(families[i].queueFlags & VK_QUEUE_GRAPHICS_BIT) &&
                       (families[static_cast<std::size_t>(family)].queueFlags & VK_QUEUE_GRAPHICS_BIT)))
      family = static_cast<int>(i);
  }
  if (family < 0) throw Error(ErrorKind::Device, "Vulkan device '" + name_ + "' has no compute queue");
  queue_family_ = static_cast<std::uint32_t>(family);
  // A transfer-only family (a discrete GPU's copy engines) carries uploads
  // and downloads beside the compute queue; without one they share it.
  transfer_family_ = queue_family_;
  for (std::uint32_t i = 0; i < nq; ++i)
    if ((families[i].queueFlags & VK_QUEUE_TRANSFER_BIT) &&
        !(families[i].queueFlags & (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT)) && families[i].queueCount > 0) {
      transfer_family_ = i;
      break;
    }

  const float priority = 1.f;
  VkDeviceQueueCreateInfo queues[2] = {};
  for (VkDeviceQueueCreateInfo& q : queues) {
    q.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
    q.queueCount = 1;
    q.pQueuePriorities = &priority;
  }
  queues[0].queueFamilyIndex = queue_family_;
  queues[1].queueFamilyIndex = transfer_family_;
  VkPhysicalDevice16BitStorageFeatures enable16{};
  enable16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
  enable16.storageBuffer16BitAccess = storage16.storageBuffer16BitAccess;
  VkDeviceCreateInfo d{};
  d.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
  d.pNext = &enable16;
  d.queueCreateInfoCount = transfer_family_ == queue_family_ ? 1 : 2;
  d.pQueueCreateInfos = queues;
  check(vkCreateDevice(physical_, &d, nullptr, &device_), "vkCreateDevice");
  vkGetDeviceQueue(device_, queue_family_, 0, &queue_);
  transfer_queue_ = queue_;
  if (transfer_family_ != queue_family_) vkGetDeviceQueue(device_, transfer_family_, 0, &transfer_queue_);

  VkCommandPoolCreateInfo pool{};
  pool.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pool.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT | VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool.queueFamilyIndex = queue_family_;
  check(vkCreateCommandPool(device_, &pool, nullptr, &pool_), "vkCreateCommandPool");
  VkFenceCreateInfo f{};
  f.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  check(vkCreateFence(device_, &f, nullptr, &fence_), "vkCreateFence");

  // The pipeline cache, keyed on disk by vendor, device, driver version and
  // pipeline-cache UUID (the driver checks the latter again in the data's
  // header). The file is the driver's data and an FNV-1a checksum of it: a
  // file that does not match is discarded, with a note, and rebuilt.
  cache_dir_ = default_cache_dir();
  std::vector<char> data;
  if (!cache_dir_.empty()) {
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; ++i) std::snprintf(uuid + 2 * i, 3, "%02x", props_.pipelineCacheUUID[i]);
    char ids[48];
    std::snprintf(ids, sizeof ids, "%04x-%04x-%08x-", props_.vendorID, props_.deviceID, props_.driverVersion);
    cache_file_ = cache_dir_ + "/pipelines-" + ids + uuid + ".bin";
    std::ifstream in(cache_file_, std::ios::binary);
    if (in) data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    std::uint64_t stored = 0;
    const bool whole = data.size() > sizeof stored &&
                       (std::memcpy(&stored, data.data() + data.size() - sizeof stored, sizeof stored),
                        stored == graph::fnv1a(data.data(), data.size() - sizeof stored));
    if (whole) {
      data.resize(data.size() - sizeof stored);
    } else if (in) {
      std::fprintf(stderr, "vkfuse: note: discarded the pipeline cache %s: damaged (checksum); it is rebuilt\n",
                   cache_file_.c_str());
      std::error_code ec;
      std::filesystem::remove(cache_file_, ec);
      data.clear();
    }
  }
  VkPipelineCacheCreateInfo pc{};
  pc.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO;
  pc.initialDataSize = data.size();
  pc.pInitialData = data.empty() ? nullptr : data.data();
  if (vkCreatePipelineCache(device_, &pc, nullptr, &pipeline_cache_) != VK_SUCCESS) {
    pc.initialDataSize = 0;  // a stale or corrupt cache file: start empty
    pc.pInitialData = nullptr;
    check(vkCreatePipelineCache(device_, &pc, nullptr, &pipeline_cache_), "vkCreatePipelineCache");
  }
}

bool Context::wait_idle() {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  bool ok = vkQueueWaitIdle(queue_) == VK_SUCCESS;
  if (transfer_queue_ != queue_) ok = vkQueueWaitIdle(transfer_queue_) == VK_SUCCESS && ok;
  return ok;
}

Context::~Context() {
  if (device_ && hung()) {
    std::fprintf(stderr, "vkfuse: note: the Vulkan device '%s' timed out; its context is left to the driver\n",
                 name_.c_str());
  } else if (device_) {
    vkDeviceWaitIdle(device_);
    save_pipeline_cache();
    if (pipeline_cache_) vkDestroyPipelineCache(device_, pipeline_cache_, nullptr);
    if (fence_) vkDestroyFence(device_, fence_, nullptr);
    if (pool_) vkDestroyCommandPool(device_, pool_, nullptr);
    vkDestroyDevice(device_, nullptr);
  }
}

void Context::save_pipeline_cache() {
  if (cache_file_.empty() || !pipeline_cache_) return;
  std::size_t size = 0;
  if (vkGetPipelineCacheData(device_, pipeline_cache_, &size, nullptr) != VK_SUCCESS || size == 0) return;
  std::vector<char> data(size);
  if (vkGetPipelineCacheData(device_, pipeline_cache_, &size, data.data()) != VK_SUCCESS) return;
  std::error_code ec;
  std::filesystem::create_directories(cache_dir_, ec);
  const std::uint64_t sum = graph::fnv1a(data.data(), size);
  const std::span<const char> parts[] = {{data.data(), size}, {reinterpret_cast<const char*>(&sum), sizeof sum}};
  graph::write_file_atomically(cache_file_, parts);  // an unwritable cache folder is not an error
}

std::uint32_t Context::memory_type(std::uint32_t bits, VkMemoryPropertyFlags required,
                                   VkMemoryPropertyFlags preferred, VkMemoryPropertyFlags avoided, bool& found) const {
  found = false;
  std::uint32_t best = 0;
  int best_score = INT32_MIN;
  for (std::uint32_t i = 0; i < mem_.memoryTypeCount; ++i) {
    if (!(bits & (1u << i))) continue;
    const VkMemoryPropertyFlags f = mem_.memoryTypes[i].propertyFlags;
    if ((f & required) != required) continue;
    const int score = 2 * __builtin_popcount(f & preferred) - __builtin_popcount(f & avoided);
    if (score > best_score) {
      best_score = score;
      best = i;
      found = true;
    }
  }
  return best;
}

bool Context::window_holds(VkDeviceSize bytes, std::uint32_t heap) const {
  const std::uint64_t used = window_used_.load();
  if (imposed_.host_visible_window) return used + bytes <= imposed_.host_visible_window;
  if (memory_budget_) {
    // What the heap has left for this process, halved: other allocations
    // (ours and other processes') need room too.
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget{};
    budget.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT;
    VkPhysicalDeviceMemoryProperties2 props{};
    props.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2;
    props.pNext = &budget;
    vkGetPhysicalDeviceMemoryProperties2(physical_, &props);
    const VkDeviceSize left =
        budget.heapBudget[heap] > budget.heapUsage[heap] ? budget.heapBudget[heap] - budget.heapUsage[heap] : 0;
    return bytes <= left / 2;
  }
  return used + bytes <= mem_.memoryHeaps[heap].size / 2;
}

Buffer Context::create_buffer(VkDeviceSize size, VkBufferUsageFlags usage, Placement placement,
                              const std::string& what) {
  Buffer b;
  b.size = std::max<VkDeviceSize>(size, 256);
  VkBufferCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  info.size = b.size;
  info.usage = usage | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  // Used by both queues where they are of different families.
  const std::uint32_t families[2] = {queue_family_, transfer_family_};
  info.sharingMode = transfer_family_ == queue_family_ ? VK_SHARING_MODE_EXCLUSIVE : VK_SHARING_MODE_CONCURRENT;
  info.queueFamilyIndexCount = transfer_family_ == queue_family_ ? 0 : 2;
  info.pQueueFamilyIndices = families;
  check(vkCreateBuffer(device_, &info, nullptr, &b.buffer), "vkCreateBuffer");
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(device_, b.buffer, &req);
  const VkMemoryPropertyFlags local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;

  // Candidates in order of preference: (memory type, map it, bytes of the
  // host-visible window it takes). An allocation that fails falls back to
  // the next (a full BAR window, a heap over its budget).
  struct Choice {
    std::uint32_t type;
    bool map;
    VkDeviceSize window;
  };
  std::vector<Choice> choices;
  bool found = false;
  // Device-local memory kept off the host-visible window unless it is all host memory anyway.
  const std::uint32_t device_type = memory_type(req.memoryTypeBits, local, 0, unified_ ? 0 : host, found);
  const bool device_found = found;
  const bool device_mappable = device_found && unified_ && imposed_.mapped_io &&
                               (mem_.memoryTypes[device_type].propertyFlags & host) == host;
  switch (placement) {
    case Placement::Device:
      if (device_found) choices.push_back({device_type, device_mappable, 0});
      break;
    case Placement::DeviceMappable:
      if (imposed_.mapped_io) {
        // Unified memory: prefer what the host reads cached (outputs are read straight from it).
        const std::uint32_t t =
            memory_type(req.memoryTypeBits, local | host, unified_ ? VK_MEMORY_PROPERTY_HOST_CACHED_BIT : 0, 0, found);
        if (found && unified_) choices.push_back({t, true, 0});
        else if (found && window_holds(req.size, mem_.memoryTypes[t].heapIndex)) choices.push_back({t, true, req.size});
      }
      if (device_found) choices.push_back({device_type, device_mappable, 0});
      break;
    case Placement::Staging: {
      // Pinned host memory, cached for reading back.
      const std::uint32_t t =
          memory_type(req.memoryTypeBits, host, VK_MEMORY_PROPERTY_HOST_CACHED_BIT, unified_ ? 0 : local, found);
      if (found) choices.push_back({t, true, 0});
      break;
    }
  }
  if (choices.empty()) {
    const std::uint32_t t = memory_type(req.memoryTypeBits, 0, local, 0, found);
    choices.push_back({t, placement == Placement::Staging, 0});
  }
  VkResult r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
  for (const Choice& c : choices) {
    VkMemoryAllocateInfo alloc{};
    alloc.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
    alloc.allocationSize = req.size;
    alloc.memoryTypeIndex = c.type;
    r = injected(FaultSite::allocate);
    if (r == VK_SUCCESS) r = vkAllocateMemory(device_, &alloc, nullptr, &b.memory);
    if (r != VK_SUCCESS) continue;
    if (c.map && (r = vkMapMemory(device_, b.memory, 0, VK_WHOLE_SIZE, 0, &b.mapped)) != VK_SUCCESS) {
      vkFreeMemory(device_, b.memory, nullptr);  // unmappable after all: the next choice
      b.memory = VK_NULL_HANDLE;
      continue;
    }
    b.window_bytes = c.window;
    // A window's memory is read back uncached (a BAR), whatever a CPU device reports for it.
    b.host_cached = b.mapped && c.window == 0 &&
                    (mem_.memoryTypes[c.type].propertyFlags & VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    break;
  }
  if (r != VK_SUCCESS) {
    vkDestroyBuffer(device_, b.buffer, nullptr);
    const VkDeviceSize heap = mem_.memoryHeaps[mem_.memoryTypes[choices.back().type].heapIndex].size;
    if (r == VK_ERROR_DEVICE_LOST) check(r, "vkAllocateMemory");
    throw Error(ErrorKind::OutOfDeviceMemory, "out of device memory: " + (what.empty() ? std::string("a buffer") : what) +
                                       " needs " + std::to_string((size + (1 << 20) - 1) >> 20) + " MiB on '" +
                                       name_ + "' (heap of " + std::to_string(heap >> 20) + " MiB, VkResult " +
                                       std::to_string(static_cast<int>(r)) +
                                       "); run that part on the host (--strategy cpu or fused)");
  }
  check(vkBindBufferMemory(device_, b.buffer, b.memory, 0), "vkBindBufferMemory");
  window_used_ += b.window_bytes;
  return b;
}

void Context::destroy_buffer(Buffer& b) {
  window_used_ -= b.window_bytes;
  if (b.mapped) vkUnmapMemory(device_, b.memory);
  if (b.buffer) vkDestroyBuffer(device_, b.buffer, nullptr);
  if (b.memory) vkFreeMemory(device_, b.memory, nullptr);
  b = Buffer{};
}

void Context::upload(const Buffer& dst, VkDeviceSize offset, const void* data, VkDeviceSize size) {
  if (size == 0) return;
  if (dst.mapped) {
    std::memcpy(static_cast<char*>(dst.mapped) + offset, data, size);
    return;
  }
  Buffer staging = create_buffer(size, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, Placement::Staging, "a staging buffer");
  std::memcpy(staging.mapped, data, size);
  submit_and_wait([&](VkCommandBuffer cmd) {
    VkBufferCopy region{0, offset, size};
    vkCmdCopyBuffer(cmd, staging.buffer, dst.buffer, 1, &region);
    // The copy's writes before whatever reads or writes dst next.
    VkMemoryBarrier mb{};
    mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                       VK_ACCESS_TRANSFER_WRITE_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, nullptr,
                         0, nullptr);
  });
  destroy_buffer(staging);
}

void Context::submit_and_wait(const std::function<void(VkCommandBuffer)>& record) {
  VkCommandBufferAllocateInfo a{};
  a.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  a.commandPool = pool_;
  a.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  a.commandBufferCount = 1;
  VkCommandBuffer cmd;
  std::lock_guard<std::mutex> lock(queue_mutex_);
  check(vkAllocateCommandBuffers(device_, &a, &cmd), "vkAllocateCommandBuffers");
  VkCommandBufferBeginInfo begin{};
  begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(cmd, &begin), "vkBeginCommandBuffer");
  record(cmd);
  check(vkEndCommandBuffer(cmd), "vkEndCommandBuffer");
  VkSubmitInfo s{};
  s.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  s.commandBufferCount = 1;
  s.pCommandBuffers = &cmd;
  check(submit_to(queue_, s, fence_), "vkQueueSubmit");
  check(wait_for(device_, fence_, kDefaultWaitMs), "vkWaitForFences");
  vkResetFences(device_, 1, &fence_);
  vkFreeCommandBuffers(device_, pool_, 1, &cmd);
}

void Context::submit_and_wait(VkCommandBuffer cmd, VkFence fence) {
  submit(cmd, fence);
  wait_and_reset(fence);
}

void Context::submit(VkCommandBuffer cmd, VkFence fence) { submit(Queue::compute, cmd, {}, VK_NULL_HANDLE, fence); }

void Context::submit(Queue queue, VkCommandBuffer cmd, std::span<const VkSemaphore> waits, VkSemaphore signal,
                     VkFence fence) {
  const std::vector<VkPipelineStageFlags> stages(waits.size(), VK_PIPELINE_STAGE_ALL_COMMANDS_BIT);
  VkSubmitInfo s{};
  s.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  s.waitSemaphoreCount = static_cast<std::uint32_t>(waits.size());
  s.pWaitSemaphores = waits.data();
  s.pWaitDstStageMask = stages.data();
  s.commandBufferCount = 1;
  s.pCommandBuffers = &cmd;
  s.signalSemaphoreCount = signal ? 1 : 0;
  s.pSignalSemaphores = &signal;
  std::lock_guard<std::mutex> lock(queue_mutex_);
  check(submit_to(queue == Queue::transfer ? transfer_queue_ : queue_, s, fence), "vkQueueSubmit");
}

void Context::wait_and_reset(VkFence fence, std::uint64_t timeout_ms) {
  check(wait_for(device_, fence, timeout_ms), "vkWaitForFences");
  vkResetFences(device_, 1, &fence);
}

}  // namespace vkfuse::runtime::vulkan
