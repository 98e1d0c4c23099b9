#include "runtime/executor.h"

#include <chrono>
#include <thread>

namespace vkfuse::runtime {

bool host_backend_available() { return true; }
bool vulkan_backend_available() { return true; }

std::function<void(TransferDirection, std::int64_t, double)> link_emulator(const planner::LinkProfile& link) {
  return [link](TransferDirection dir, std::int64_t bytes, double measured_us) {
    const double emulated_us = link.transfer_us(
        dir == TransferDirection::upload ? planner::Direction::host_to_device : planner::Direction::device_to_host,
        static_cast<double>(bytes));
    if (emulated_us > measured_us)
      std::this_thread::sleep_for(std::chrono::duration<double, std::micro>(emulated_us - measured_us));
  };
}

}  // namespace vkfuse::runtime
