// runtime/hetero_executor.h — runs a planner::Plan on the real backends: runs
// of consecutive host ops as segments of one Halide executor over all the
// plan's host ops (one host arena), and every dispatch unit of the plan as
// one command buffer of a single Vulkan executor over all the plan's
// accelerator ops. The units share one device arena, weights and
// pipelines, so a value passed from unit to unit stays in device memory: only
// the values a host op (or the caller) produces and a unit reads go up, once,
// and only the values a host op reads (or graph outputs) come down — exactly
// the transfers the plan lists.
//
// Asynchronous, as the plan's schedule simulation assumes: the host thread
// copies a unit's inputs into staging memory and hands the unit to a device
// thread, which submits it once the link has carried its uploads, waits for
// it, copies its downloads out and holds them until the link has carried them.
// The host thread meanwhile runs on through the host segments that do not
// read the unit's downloads, and waits for a unit only when one does. An
// emulated link is a timeline of its own (each transfer occupies it for
// latency + bytes / bandwidth, from when both it and the data are ready, the
// same rule as the cost model's): nobody sleeps in it but the device thread.
// Where the accelerator shares the host's cores (lavapipe), unit compute and
// host segments take turns on the cores, while link time still overlaps.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "graph/ir.h"
#include "planner/plan.h"
#include "runtime/executor.h"
#include "runtime/trace.h"

namespace vkfuse::runtime {

class HostExecutor;
namespace vulkan {
class VulkanExecutor;
}

// What the runs in flight on one loaded model share (each has its own
// HeteroExecutor): the host's cores, which host segments — and unit compute,
// where the accelerator runs on them — take in turns, and the link.
struct HostPart;    // a plan's host ops, lowered (hetero_executor.cpp)
struct DevicePart;  // a plan's accelerator ops, loaded on the device (hetero_executor.cpp)
struct RunResources {
  std::mutex host_cores;
  std::mutex link_mutex;
  std::chrono::steady_clock::time_point link_free{};  // emulated links: when the link is free again
  // The host and device sides of the model's plans, each lowered and its
  // weights packed (or uploaded) once for all its executors (pipeline
  // slots); keyed by the ops and their segments (units). An entry lives
  // while an executor runs it.
  std::mutex parts_mutex;
  std::map<std::string, std::weak_ptr<const HostPart>> host_parts;
  std::map<std::string, std::weak_ptr<const DevicePart>> device_parts;
};

class HeteroExecutor final : public Executor {
 public:
  // `shared`: the resources of the other executors of the same model that
  // may run at the same time (null: its own).
  HeteroExecutor(const graph::Graph& graph, planner::Plan plan, ExecutorOptions options,
                 std::shared_ptr<RunResources> shared = nullptr);
  ~HeteroExecutor() override;

  void run(std::span<const float* const> inputs, std::span<float* const> outputs) override;
  ExecutorStats stats() const override { return stats_; }
  MemoryUse memory() const override;
  std::string description() const override;

  const planner::Plan& plan() const { return plan_; }
  // Whether run() goes on with host segments while units are in flight (on
  // by default; VKFUSE_OVERLAP=0 turns it off); settable for tests and experiments.
  bool overlap() const { return overlap_; }
  void set_overlap(bool on) { overlap_ = on; }
  int segment_count() const { return static_cast<int>(segments_.size()); }
  // The device executor of the plan's units (null for an all-host plan), and
  // the host executor of its host segments (null for an all-device plan).
  const vulkan::VulkanExecutor* device() const { return device_.get(); }
  const HostExecutor* host() const { return host_.get(); }

  // Predicted against measured, per step of the last run: each host segment,
  // and per dispatch unit its uploads, its compute (submission and wait) and
  // its downloads, in execution order. Predicted times come from the plan
  // (Σ op times of a host segment, the unit's compute, Σ of its transfers);
  // measured ones are wall time (a transfer's includes the emulated link's
  // hold; with overlap, a unit's compute is its span from submission to the
  // return of the wait on it, less its transfers, so it includes host work
  // done meanwhile). Empty entries (a unit without uploads) are left out.
  struct StepTime {
    enum class Device : std::uint8_t { host, accelerator, link };
    std::string name;
    Device device = Device::host;
    double predicted_us = 0;
    double measured_us = 0;
    std::int64_t bytes = 0;  // transfers: bytes moved; otherwise 0
  };
  const std::vector<StepTime>& step_times() const { return step_times_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Segment {
    bool on_accelerator = false;
    std::string name;
    int unit = -1;     // on the accelerator: the device executor's unit
    int segment = -1;  // on the host: the host executor's segment
    std::vector<graph::ValueId> inputs, outputs;  // ids in the whole graph: what it reads and what leaves it
    int first_step = 0;  // its first entry in step_times_
    bool has_upload = false, has_download = false;
    std::int64_t upload_bytes = 0, download_bytes = 0;
    // The current run. Host thread: started, uploaded; device thread (read
    // by the host thread once done): submitted, computed, downloaded, error.
    Clock::time_point started, uploaded, submitted, computed, downloaded;
    bool done = false;
    std::exception_ptr error;
  };

  void device_loop();
  void run_unit(Segment& s);  // on the device thread
  Clock::time_point book_link(TransferDirection d, std::int64_t bytes, double measured_us);

  const graph::Graph& graph_;
  planner::Plan plan_;
  ExecutorOptions options_;
  std::vector<Segment> segments_;
  // All the plan's accelerator ops, unit after unit: their inputs and
  // outputs as ids of the whole graph, and their executor, over a program
  // shared with the model's other executors (RunResources::device_parts).
  std::shared_ptr<const DevicePart> device_part_;
  std::vector<graph::ValueId> device_inputs_, device_outputs_;
  std::unique_ptr<vulkan::VulkanExecutor> device_;
  // The same for the host: all the plan's host ops, segment after segment,
  // in one HostExecutor with one arena, over a program shared with the
  // model's other executors (RunResources::host_parts).
  std::shared_ptr<const HostPart> host_part_;
  std::vector<graph::ValueId> host_inputs_, host_outputs_;
  std::unique_ptr<HostExecutor> host_;
  std::vector<std::vector<float>> buffers_;  // per value id: host storage of values crossing segments
  ExecutorStats stats_;
  std::vector<StepTime> step_times_;
  bool overlap_ = true;
  std::vector<float*> device_out_;  // the current run's device outputs (host storage)

  // The device thread and the queue of units handed to it.
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::size_t> jobs_;  // segment indices
  bool stop_ = false;
  std::thread device_thread_;
  std::shared_ptr<RunResources> shared_;
  // When the transfers of the unit being uploaded (host thread) or
  // downloaded (device thread) are over.
  Clock::time_point upload_done_, download_done_, download_first_;
};

}  // namespace vkfuse::runtime
