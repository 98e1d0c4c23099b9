// Vulkan device discovery for `vkfuse devices` and device selection.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>

#include "runtime/executor.h"
#include "runtime/vulkan/context.h"
#include "runtime/vulkan/loader.h"
#include "vkfuse/vkfuse.h"

namespace vkfuse {

namespace {

std::string version_string(std::uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) + "." +
         std::to_string(VK_API_VERSION_PATCH(v));
}

const char* type_name(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete-gpu";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated-gpu";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual-gpu";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
  }
}

}  // namespace

namespace runtime {

std::string no_vulkan_device_reason() {
  if (std::string why; !vulkan::load_vulkan(&why)) return "no Vulkan device: " + why;
  if (list_devices().empty()) return "no Vulkan device found (install a Vulkan driver, e.g. mesa-vulkan-drivers)";
  return "";
}

}  // namespace runtime

std::vector<DeviceInfo> list_devices() {
  if (!runtime::vulkan::load_vulkan()) return {};  // no loader: no devices, not an error
  VkResult result = VK_SUCCESS;
  const VkInstance instance = runtime::vulkan::process_instance(false, false, &result);
  if (result == VK_ERROR_INCOMPATIBLE_DRIVER || result == VK_ERROR_INITIALIZATION_FAILED)
    return {};  // no ICD installed: no devices, not an error
  if (result != VK_SUCCESS)
    throw Error(ErrorKind::Device, "vkCreateInstance failed (VkResult " + std::to_string(result) + ")");
  std::uint32_t count = 0;
  vkEnumeratePhysicalDevices(instance, &count, nullptr);
  std::vector<VkPhysicalDevice> handles(count);
  vkEnumeratePhysicalDevices(instance, &count, handles.data());

  const runtime::vulkan::DeviceLimits imposed = runtime::vulkan::DeviceLimits::from_env();
  std::vector<DeviceInfo> devices;
  for (std::uint32_t i = 0; i < count; ++i) {
    VkPhysicalDeviceProperties props{};
    vkGetPhysicalDeviceProperties(handles[i], &props);
    imposed.apply(props.limits);
    DeviceInfo d;
    d.index = static_cast<int>(i);
    d.name = props.deviceName;
    d.type = type_name(props.deviceType);
    d.api_version = version_string(props.apiVersion);
    d.max_tensor_bytes = props.limits.maxStorageBufferRange;

    VkPhysicalDeviceIDProperties id{};
    id.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES;
    VkPhysicalDeviceSubgroupProperties subgroup{};
    subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
    subgroup.pNext = &id;
    VkPhysicalDeviceDriverProperties driver{};
    driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
    VkPhysicalDeviceProperties2 props2{};
    props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
    props2.pNext = &subgroup;
    const bool has_driver_props = props.apiVersion >= VK_API_VERSION_1_2;
    if (has_driver_props) id.pNext = &driver;
    vkGetPhysicalDeviceProperties2(handles[i], &props2);
    d.subgroup_size = subgroup.subgroupSize;
    static const char* hex = "0123456789abcdef";
    for (auto b : id.deviceUUID) {
      d.uuid += hex[b >> 4];
      d.uuid += hex[b & 15];
    }
    d.driver = has_driver_props ? std::string(driver.driverName) + " " + driver.driverInfo
                                : "driver " + std::to_string(props.driverVersion);

    VkPhysicalDevice16BitStorageFeatures storage16{};
    storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    VkPhysicalDeviceShaderFloat16Int8Features f16{};
    f16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
    VkPhysicalDeviceFeatures2 features{};
    features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    features.pNext = &storage16;
    if (has_driver_props) storage16.pNext = &f16;
    vkGetPhysicalDeviceFeatures2(handles[i], &features);
    d.fp16 = storage16.storageBuffer16BitAccess && f16.shaderFloat16;

    VkPhysicalDeviceMemoryProperties mem{};
    vkGetPhysicalDeviceMemoryProperties(handles[i], &mem);
    for (std::uint32_t h = 0; h < mem.memoryHeapCount; ++h)
      if (mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) d.device_local_bytes += mem.memoryHeaps[h].size;
    devices.push_back(std::move(d));
  }
  return devices;
}

namespace runtime::vulkan {

namespace {

int type_rank(const std::string& type) {
  return type == "discrete-gpu" ? 0 : type == "integrated-gpu" ? 1 : type == "virtual-gpu" ? 2 : type == "cpu" ? 3 : 4;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool vulkan_1_1(const DeviceInfo& d) {
  const auto dot = d.api_version.find('.');
  const int major = std::atoi(d.api_version.c_str());
  const int minor = dot == std::string::npos ? 0 : std::atoi(d.api_version.c_str() + dot + 1);
  return major > 1 || (major == 1 && minor >= 1);
}

}  // namespace

std::vector<int> device_preference(const std::vector<DeviceInfo>& devices) {
  std::vector<int> order;
  for (const DeviceInfo& d : devices)
    if (vulkan_1_1(d)) order.push_back(d.index);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return type_rank(devices[static_cast<std::size_t>(a)].type) < type_rank(devices[static_cast<std::size_t>(b)].type);
  });
  return order;
}

int select_device(const std::vector<DeviceInfo>& devices, const std::string& selector) {
  if (devices.empty()) throw Error(ErrorKind::Device, "no Vulkan device found (see `vkfuse devices`)");
  if (selector.empty()) {
    const std::vector<int> order = device_preference(devices);
    if (order.empty()) throw Error(ErrorKind::Device, "no Vulkan 1.1 device found (see `vkfuse devices`)");
    return order.front();
  }
  const bool digits = std::all_of(selector.begin(), selector.end(), [](unsigned char c) { return std::isdigit(c); });
  if (digits && selector.size() < 8) {
    const long idx = std::strtol(selector.c_str(), nullptr, 10);
    if (idx < 0 || idx >= static_cast<long>(devices.size()))
      throw Error(ErrorKind::InvalidArgument, "device index " + selector + " is out of range (" +
                                                  std::to_string(devices.size()) +
                                                  " Vulkan device(s); see `vkfuse devices`)");
    return static_cast<int>(idx);
  }
  const std::string want = lower(selector);
  for (const DeviceInfo& d : devices)
    if (!d.uuid.empty() && lower(d.uuid) == want) return d.index;
  for (const DeviceInfo& d : devices)
    if (lower(d.name).find(want) != std::string::npos) return d.index;
  throw Error(ErrorKind::InvalidArgument,
              "no Vulkan device matches '" + selector + "' (an index, a UUID or part of a name; see `vkfuse devices`)");
}

}  // namespace runtime::vulkan

}  // namespace vkfuse
