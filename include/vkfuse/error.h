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
  Device,          // no Vulkan device, device lost, out of device memory
  Io,              // a file could not be read or written
  Internal,        // a vkfuse bug: please report it
};

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace vkfuse
