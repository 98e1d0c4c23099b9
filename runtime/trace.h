// runtime/trace.h — a Chrome/Perfetto trace ("traceEvents" JSON) of host ops,
// dispatch units and transfers, each with its size; open it in
// ui.perfetto.dev or chrome://tracing.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace vkfuse::runtime {

class Trace {
 public:
  enum class Track : std::uint8_t { host, accelerator, link };
  struct Event {
    std::string name, category;
    Track track = Track::host;
    double start_us = 0, duration_us = 0;
    std::int64_t bytes = -1;  // transfers: the size; -1 for none
  };

  Trace() : origin_(std::chrono::steady_clock::now()) {}

  // Microseconds since the trace began.
  double now_us() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - origin_).count();
  }
  // The same for a given instant.
  double us_at(std::chrono::steady_clock::time_point t) const {
    return std::chrono::duration<double, std::micro>(t - origin_).count();
  }
  void add(Event e) {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(e));
  }
  // Empties the trace and starts its clock again (before a run of its own).
  void restart() {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.clear();
    origin_ = std::chrono::steady_clock::now();
  }
  std::vector<Event> events() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }
  std::string to_json() const;

 private:
  std::chrono::steady_clock::time_point origin_;
  mutable std::mutex mutex_;
  std::vector<Event> events_;
};

}  // namespace vkfuse::runtime
