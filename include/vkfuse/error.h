// vkfuse/error.h — the one exception type vkfuse throws at its API boundary.
#pragma once

#include <stdexcept>
#include <string>

namespace vkfuse {

// What went wrong, coarsely, so that callers (and the CLI's exit codes) can
// tell bad input from a missing device from a bug.
enum class ErrorKind {
  InvalidModel,    // the model file is missing, malformed, or not a valid graph
  Unsupported,     // a valid model using an op or attribute vkfuse does not run
  InvalidInput,    // a run's inputs do not match the model's declared inputs
  InvalidArgument, // a bad option, strategy name, device index, ...
  Device,          // no usable Vulkan device, or a Vulkan call failed
  Io,              // a file could not be read or written
  Internal,        // a vkfuse bug: please report it
  // The device failed while the model was loaded or running. The run (or
  // load) that meets one of these throws; a loaded model then rebuilds its
  // device executors at its next run (on a fresh device context after a
  // lost device or a timeout), and a model of the default strategy that
  // cannot rebuild them runs on the host from then on, with a warning.
  DeviceLost,         // VK_ERROR_DEVICE_LOST: a driver reset, a GPU fault, a hang detected by the driver
  OutOfDeviceMemory,  // an allocation or submission ran out of device (or driver) memory
  DeviceTimeout,      // the device did not finish a submission within LoadOptions::device_timeout_ms
};

const char* error_kind_name(ErrorKind kind);

// Whether an error came from the accelerator (no device, or one of its
// failures): the kinds a default-strategy model answers by running on the host.
inline bool is_device_error(ErrorKind kind) {
  return kind == ErrorKind::Device || kind == ErrorKind::DeviceLost || kind == ErrorKind::OutOfDeviceMemory ||
         kind == ErrorKind::DeviceTimeout;
}

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace vkfuse
