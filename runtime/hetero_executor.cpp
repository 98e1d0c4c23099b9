#include "runtime/hetero_executor.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "graph/passes.h"
#include "runtime/host_executor.h"
#include "runtime/vulkan/vulkan_executor.h"

namespace vkfuse::runtime {

// A plan's host ops as one program: their subgraph (null: the whole graph)
// with its inputs and outputs as ids of the whole graph.
struct HostPart {
  std::unique_ptr<graph::Graph> graph;
  std::vector<graph::ValueId> inputs, outputs;
  std::optional<HostProgram> program;
};

// Its accelerator ops, loaded on the device (the subgraph they were lowered
// from is not kept).
struct DevicePart {
  std::vector<graph::ValueId> inputs, outputs;
  std::shared_ptr<const vulkan::DeviceProgram> program;
};

namespace {

// Whether `nodes` is every node of `g`, in order (then the graph itself is
// the part, with no subgraph extracted).
bool covers_whole_graph(const graph::Graph& g, const std::vector<std::int32_t>& nodes) {
  if (nodes.size() != g.nodes.size()) return false;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i] != static_cast<std::int32_t>(i)) return false;
  return true;
}

// A part's key: the graph (a RunResources serves one model, but nothing else
// says so), `tag`, and each node with its segment or unit.
std::string part_key(const graph::Graph& g, const std::string& tag, const std::vector<std::int32_t>& nodes,
                     const std::vector<int>& group) {
  std::string key = std::to_string(reinterpret_cast<std::uintptr_t>(&g)) + "|" + tag;
  for (std::size_t i = 0; i < nodes.size(); ++i) key += std::to_string(nodes[i]) + ":" + std::to_string(group[i]) + ",";
  return key;
}

// The part under `key` that another executor of the model built and still
// holds, if `usable`; else one from `build`, stored for the others.
template <class Part, class Usable, class Build>
std::shared_ptr<const Part> shared_part(std::mutex& mutex, std::map<std::string, std::weak_ptr<const Part>>& parts,
                                        const std::string& key, Usable usable, Build build) {
  std::lock_guard<std::mutex> lock(mutex);
  std::shared_ptr<const Part> part = parts[key].lock();
  if (part && usable(*part)) return part;
  part = build();
  parts[key] = part;
  return part;
}

// Rewires a plan's device subgraph `dg` (extracted from `whole`) for a plan
// with isolated units (`naive`); `inputs` and `outputs` are its ids in `whole`.
void isolate_units(const graph::Graph& whole_graph, graph::Graph& dg, const std::vector<int>& unit_of,
                   std::vector<graph::ValueId>& inputs, std::vector<graph::ValueId>& outputs) {
  // A value one unit produces and another reads goes down from the first
  // (a device output) and up again into the second (a device input of its
  // own, one per reading unit), both through the value's host buffer.
  std::map<std::string, graph::ValueId> whole_id;
  for (std::size_t v = 0; v < whole_graph.values.size(); ++v)
    whole_id.emplace(whole_graph.values[v].name, static_cast<graph::ValueId>(v));
  const std::vector<std::int32_t> producer = dg.producers();
  std::map<std::pair<graph::ValueId, int>, graph::ValueId> copy_of;  // (value, reading unit) → its upload
  for (std::size_t i = 0; i < dg.nodes.size(); ++i) {
    for (auto& in : dg.nodes[i].inputs) {
      if (in == graph::kNoValue) continue;
      const std::int32_t pr = producer[static_cast<std::size_t>(in)];
      if (pr < 0 || unit_of[static_cast<std::size_t>(pr)] == unit_of[i]) continue;
      const graph::ValueId whole = whole_id.at(dg.value(in).name);
      auto [it, fresh] = copy_of.emplace(std::make_pair(in, unit_of[i]), graph::kNoValue);
      if (fresh) {
        const graph::Value& v = dg.value(in);
        it->second = dg.add_value(v.name + "@unit" + std::to_string(unit_of[i]), v.dtype, v.shape, v.shape_known);
        dg.inputs.push_back(it->second);
        inputs.push_back(whole);
        if (std::find(dg.outputs.begin(), dg.outputs.end(), in) == dg.outputs.end()) {
          dg.outputs.push_back(in);
          outputs.push_back(whole);
        }
      }
      in = it->second;
    }
  }
}

}  // namespace

HeteroExecutor::HeteroExecutor(const graph::Graph& graph, planner::Plan plan, ExecutorOptions options,
                               std::shared_ptr<RunResources> shared)
    : graph_(graph),
      plan_(std::move(plan)),
      options_(std::move(options)),
      buffers_(graph.values.size()),
      shared_(shared ? std::move(shared) : std::make_shared<RunResources>()) {
  if (const char* e = std::getenv("VKFUSE_OVERLAP"); e && *e) overlap_ = std::string(e) != "0";
  // Every copy to or from the device passes through here: it is booked on
  // the link (the caller's hook, e.g. calibration's, still sees it).
  options_.on_transfer = [this, inner = options_.on_transfer](TransferDirection d, std::int64_t bytes,
                                                                double measured_us) {
    const Clock::time_point done = book_link(d, bytes, measured_us);
    if (d == TransferDirection::upload) {
      upload_done_ = std::max(upload_done_, done);
    } else {
      download_first_ = std::min(download_first_, Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                                                    std::chrono::duration<double, std::micro>(measured_us)));
      download_done_ = std::max(download_done_, done);
    }
    if (inner) inner(d, bytes, measured_us);
  };

  // Segments in plan order: consecutive host steps form one host segment
  // (contiguous in a topological order, so its inputs are produced before
  // it); each unit is one segment, and one unit of the device executor.
  std::vector<std::int32_t> device_nodes;
  std::vector<int> device_unit;  // per entry of device_nodes
  std::vector<std::vector<std::int32_t>> host_groups;
  std::vector<const planner::DispatchUnit*> plan_unit;  // per segment (null: host)
  int units = 0;
  // Host segments as the planner defines them (a host op that reads a
  // unit's download begins one of its own, so that the host ops before it
  // run while that unit is in flight); ops fuse only within one.
  const std::vector<int> host_segment_of = planner::host_segments(graph_, plan_);
  for (const auto& step : plan_.steps) {
    if (step.kind == planner::Step::Kind::host_op) {
      if (host_groups.size() != static_cast<std::size_t>(host_segment_of.at(static_cast<std::size_t>(step.index)) + 1)) {
        Segment s;
        s.name = "host segment " + std::to_string(host_groups.size() + 1);
        segments_.push_back(std::move(s));
        plan_unit.push_back(nullptr);
        host_groups.emplace_back();
      }
      host_groups.back().push_back(step.index);
      continue;
    }
    auto unit = std::find_if(plan_.units.begin(), plan_.units.end(), [&](auto& u) { return u.id == step.index; });
    if (unit == plan_.units.end()) throw Error(ErrorKind::Internal, "plan step names a missing dispatch unit");
    Segment s;
    s.on_accelerator = true;
    s.name = "unit " + std::to_string(unit->id);
    s.unit = units++;
    s.has_upload = !unit->uploads.empty();
    s.has_download = !unit->downloads.empty();
    for (const auto& t : unit->uploads) s.upload_bytes += t.bytes;
    for (const auto& t : unit->downloads) s.download_bytes += t.bytes;
    for (int n : unit->nodes) {
      device_nodes.push_back(n);
      device_unit.push_back(s.unit);
    }
    segments_.push_back(std::move(s));
    plan_unit.push_back(&*unit);
  }

  // Predicted against measured, one entry per host segment and up to three per unit.
  std::size_t h = 0;
  for (std::size_t k = 0; k < segments_.size(); ++k) {
    Segment& s = segments_[k];
    s.first_step = static_cast<int>(step_times_.size());
    if (!s.on_accelerator) {
      double us = 0;
      for (auto n : host_groups[h++]) us += plan_.nodes.at(static_cast<std::size_t>(n)).host_us;
      step_times_.push_back({s.name, StepTime::Device::host, us, 0, 0});
      continue;
    }
    const planner::DispatchUnit& u = *plan_unit[k];
    auto transfers = [&](const std::vector<planner::Transfer>& ts, const char* what) {
      StepTime t{s.name + " " + what, StepTime::Device::link, 0, 0, 0};
      for (const auto& x : ts) {
        t.predicted_us += x.predicted_us;
        t.bytes += x.bytes;
      }
      return t;
    };
    if (s.has_upload) step_times_.push_back(transfers(u.uploads, "upload"));
    step_times_.push_back({s.name, StepTime::Device::accelerator, u.compute_us, 0, 0});
    if (s.has_download) step_times_.push_back(transfers(u.downloads, "download"));
  }

  // The device side: one executor over all the accelerator ops, unit after
  // unit (the whole graph itself when that is every op, in order: `gpu`).
  if (!device_nodes.empty()) {
    const bool whole = covers_whole_graph(graph_, device_nodes) && !plan_.isolated_units;
    const std::string key = part_key(graph_, options_.device + (options_.fp16 ? "|fp16|" : "|") +
                                                 (plan_.isolated_units ? "isolated|" : "|"),
                                     device_nodes, device_unit);
    device_part_ = shared_part<DevicePart>(
        shared_->parts_mutex, shared_->device_parts, key,
        [](const DevicePart& p) { return vulkan::VulkanExecutor::usable(*p.program); },  // its device may be retired
        [&] {
          auto fresh = std::make_shared<DevicePart>();
          if (whole) {
            fresh->inputs = graph_.inputs;
            fresh->outputs = graph_.outputs;
            fresh->program = vulkan::VulkanExecutor::load(graph_, options_, device_unit);
          } else {
            // Not kept: the program keeps what it needs.
            graph::Graph dg = graph::extract_subgraph(graph_, device_nodes, &fresh->inputs, &fresh->outputs);
            if (plan_.isolated_units) isolate_units(graph_, dg, device_unit, fresh->inputs, fresh->outputs);
            fresh->program = vulkan::VulkanExecutor::load(dg, options_, device_unit);
          }
          return fresh;
        });
    device_inputs_ = device_part_->inputs;
    device_outputs_ = device_part_->outputs;
    device_ = std::make_unique<vulkan::VulkanExecutor>(device_part_->program, options_);
    stats_ = device_->stats();
  }
  // Each unit's uploads (the device inputs it reads first) and downloads
  // (the device outputs it produces), as whole-graph ids.
  {
    std::vector<char> uploaded(graph_.values.size(), 0);
    std::vector<char> is_device_input(graph_.values.size(), 0), is_device_output(graph_.values.size(), 0);
    for (auto v : device_inputs_) is_device_input[static_cast<std::size_t>(v)] = 1;
    for (auto v : device_outputs_) is_device_output[static_cast<std::size_t>(v)] = 1;
    std::vector<int> producer_unit(graph_.values.size(), -1);
    for (std::size_t i = 0; i < device_nodes.size(); ++i)
      for (auto v : graph_.nodes[static_cast<std::size_t>(device_nodes[i])].outputs)
        if (v != graph::kNoValue) producer_unit[static_cast<std::size_t>(v)] = device_unit[i];
    std::size_t next = 0;
    for (Segment& s : segments_) {
      if (!s.on_accelerator) continue;
      if (plan_.isolated_units) std::fill(uploaded.begin(), uploaded.end(), 0);  // each unit its own
      for (; next < device_nodes.size() && device_unit[next] == s.unit; ++next) {
        const graph::Node& n = graph_.nodes[static_cast<std::size_t>(device_nodes[next])];
        for (auto v : n.inputs)
          if (v != graph::kNoValue && is_device_input[static_cast<std::size_t>(v)] &&
              producer_unit[static_cast<std::size_t>(v)] != s.unit && !uploaded[static_cast<std::size_t>(v)]) {
            uploaded[static_cast<std::size_t>(v)] = 1;
            s.inputs.push_back(v);
          }
        for (auto v : n.outputs)
          if (v != graph::kNoValue && is_device_output[static_cast<std::size_t>(v)]) s.outputs.push_back(v);
      }
    }
  }
  // The host side: one executor over all the host ops, segment after
  // segment (the whole graph itself for an all-host plan).
  if (!host_groups.empty()) {
    std::vector<std::int32_t> host_nodes;
    std::vector<int> host_segment;  // per entry of host_nodes
    for (std::size_t k = 0; k < host_groups.size(); ++k)
      for (auto n : host_groups[k]) {
        host_nodes.push_back(n);
        host_segment.push_back(static_cast<int>(k));
      }
    host_part_ = shared_part<HostPart>(
        shared_->parts_mutex, shared_->host_parts, part_key(graph_, "", host_nodes, host_segment),
        [](const HostPart&) { return true; },
        [&] {
          auto part = std::make_shared<HostPart>();
          const bool whole = covers_whole_graph(graph_, host_nodes);
          if (whole) {
            part->inputs = graph_.inputs;
            part->outputs = graph_.outputs;
          } else {
            part->graph = std::make_unique<graph::Graph>(
                graph::extract_subgraph(graph_, host_nodes, &part->inputs, &part->outputs));
          }
          part->program.emplace(whole ? graph_ : *part->graph, host_segment, options_.threads);
          return part;
        });
    host_inputs_ = host_part_->inputs;
    host_outputs_ = host_part_->outputs;
    host_ = std::make_unique<HostExecutor>(std::shared_ptr<const HostProgram>(host_part_, &*host_part_->program),
                                           options_);
    stats_.host_kernels = host_part_->program->kernel_nodes();
    stats_.host_copies = host_part_->program->copy_steps();
    // Per segment, the values it reads from outside the host ops (which it
    // may have to wait for) and those it produces for outside.
    std::vector<char> is_host_input(graph_.values.size(), 0), is_host_output(graph_.values.size(), 0);
    for (auto v : host_inputs_) is_host_input[static_cast<std::size_t>(v)] = 1;
    for (auto v : host_outputs_) is_host_output[static_cast<std::size_t>(v)] = 1;
    h = 0;
    for (Segment& s : segments_) {
      if (s.on_accelerator) continue;
      s.segment = static_cast<int>(h);
      for (auto n : host_groups[h]) {
        for (auto v : graph_.nodes[static_cast<std::size_t>(n)].inputs)
          if (v != graph::kNoValue && is_host_input[static_cast<std::size_t>(v)] &&
              std::find(s.inputs.begin(), s.inputs.end(), v) == s.inputs.end())
            s.inputs.push_back(v);
        for (auto v : graph_.nodes[static_cast<std::size_t>(n)].outputs)
          if (v != graph::kNoValue && is_host_output[static_cast<std::size_t>(v)]) s.outputs.push_back(v);
      }
      ++h;
    }
  }
  // Host storage for values that cross segments and are not graph inputs or outputs.
  std::vector<bool> external(graph_.values.size(), false);
  for (auto v : graph_.inputs) external[static_cast<std::size_t>(v)] = true;
  for (auto v : graph_.outputs) external[static_cast<std::size_t>(v)] = true;
  auto keep = [&](graph::ValueId v) {
    auto& b = buffers_[static_cast<std::size_t>(v)];
    if (!external[static_cast<std::size_t>(v)] && b.empty())
      b.resize(static_cast<std::size_t>(std::max<std::int64_t>(1, graph::element_count(graph_.value(v).shape))));
  };
  for (const auto& s : segments_)
    for (auto v : s.outputs) keep(v);
  for (auto v : device_inputs_) keep(v);
  for (auto v : device_outputs_) keep(v);
  // Last: a constructor that throws must not leave a thread running.
  if (device_) device_thread_ = std::thread([this] { device_loop(); });
}

HeteroExecutor::~HeteroExecutor() {
  if (!device_thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  device_thread_.join();
}

HeteroExecutor::Clock::time_point HeteroExecutor::book_link(TransferDirection d, std::int64_t bytes,
                                                            double measured_us) {
  const Clock::time_point now = Clock::now();
  if (!plan_.link.emulated) return now;
  // The copy itself took measured_us of the link's time; it ends when the
  // emulated link would have carried it, after whatever it carries already.
  const auto measured = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::micro>(measured_us));
  const double emulated_us = plan_.link.transfer_us(
      d == TransferDirection::upload ? planner::Direction::host_to_device : planner::Direction::device_to_host,
      static_cast<double>(bytes));
  const auto occupied = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::micro>(std::max(emulated_us, measured_us)));
  std::lock_guard<std::mutex> lock(shared_->link_mutex);
  const Clock::time_point start = std::max(shared_->link_free, now - measured);
  shared_->link_free = start + occupied;
  return shared_->link_free;
}

void HeteroExecutor::device_loop() {
  for (;;) {
    std::size_t k;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping
      k = jobs_.front();
      jobs_.pop_front();
    }
    Segment& s = segments_[k];
    try {
      run_unit(s);
    } catch (...) {
      s.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      s.done = true;
    }
    changed_.notify_all();
  }
}

void HeteroExecutor::run_unit(Segment& s) {
  // Compute begins once the link has carried the uploads.
  std::this_thread::sleep_until(s.uploaded);
  download_done_ = Clock::time_point::min();
  download_first_ = Clock::time_point::max();
  {
    std::unique_lock<std::mutex> cores(shared_->host_cores, std::defer_lock);
    if (plan_.shares_host_cores) cores.lock();
    s.submitted = Clock::now();
    device_->submit_unit(s.unit);
    device_->finish_unit(s.unit, device_out_);
  }
  const Clock::time_point now = Clock::now();
  s.computed = std::min(now, download_first_);
  // The downloads are the host's once the link has carried them.
  std::this_thread::sleep_until(download_done_);
  s.downloaded = std::max(now, download_done_);
}

void HeteroExecutor::run(std::span<const float* const> inputs, std::span<float* const> outputs) {
  // Where each value lives on the host during this run.
  std::vector<float*> where(graph_.values.size(), nullptr);
  for (std::size_t i = 0; i < graph_.inputs.size(); ++i)
    where[static_cast<std::size_t>(graph_.inputs[i])] = const_cast<float*>(inputs[i]);
  for (std::size_t i = 0; i < graph_.outputs.size(); ++i) where[static_cast<std::size_t>(graph_.outputs[i])] = outputs[i];
  for (std::size_t v = 0; v < buffers_.size(); ++v)
    if (!buffers_[v].empty() && !where[v]) where[v] = buffers_[v].data();
  std::vector<const float*> device_in, host_in;
  std::vector<float*> host_out;
  for (auto v : device_inputs_) device_in.push_back(where[static_cast<std::size_t>(v)]);
  for (auto v : host_inputs_) host_in.push_back(where[static_cast<std::size_t>(v)]);
  for (auto v : host_outputs_) host_out.push_back(where[static_cast<std::size_t>(v)]);
  device_out_.clear();
  for (auto v : device_outputs_) device_out_.push_back(where[static_cast<std::size_t>(v)]);

  // Values a handed-over, unfinished unit will download: by the segment's index.
  std::vector<int> pending_of(graph_.values.size(), -1);
  std::vector<std::size_t> in_flight;  // in start order
  Trace* trace = options_.trace;
  auto us = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); };

  auto account_unit = [&](Segment& s) {
    auto* step = &step_times_[static_cast<std::size_t>(s.first_step)];
    if (s.has_upload) (step++)->measured_us = us(s.started, s.uploaded);
    (step++)->measured_us = us(s.submitted, s.computed);
    if (s.has_download) step->measured_us = us(s.computed, s.downloaded);
    if (!trace) return;
    if (s.has_upload)
      trace->add({s.name + " upload", "transfer", Trace::Track::link, trace->us_at(s.started), us(s.started, s.uploaded),
                  s.upload_bytes});
    trace->add({s.name, "dispatch-unit", Trace::Track::accelerator, trace->us_at(s.submitted),
                us(s.submitted, s.computed), -1});
    if (s.has_download)
      trace->add({s.name + " download", "transfer", Trace::Track::link, trace->us_at(s.computed),
                  us(s.computed, s.downloaded), s.download_bytes});
  };
  auto wait_for = [&](std::size_t k) {
    Segment& s = segments_[k];
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return s.done; });
    }
    in_flight.erase(std::find(in_flight.begin(), in_flight.end(), k));
    for (auto v : s.outputs) pending_of[static_cast<std::size_t>(v)] = -1;
    // The executor lets go of the error it throws: another thread may
    // destroy the executor (rebuilding the slot) while the caller still
    // reads the exception.
    if (s.error) std::rethrow_exception(std::exchange(s.error, nullptr));
    account_unit(s);
  };

  try {
    for (std::size_t k = 0; k < segments_.size(); ++k) {
      Segment& s = segments_[k];
      // Wait for the units whose downloads this segment reads, and only those
      // (a unit reads downloads only in a plan with isolated units).
      for (auto v : s.inputs)
        if (const int p = pending_of[static_cast<std::size_t>(v)]; p >= 0) wait_for(static_cast<std::size_t>(p));
      s.started = Clock::now();
      if (s.on_accelerator) {
        // Copy the inputs out of the host's buffers now (the link carries
        // them from here on), then hand the unit to the device thread.
        upload_done_ = s.started;
        device_->upload_unit(s.unit, device_in);
        s.uploaded = upload_done_;
        s.done = false;
        s.error = nullptr;
        for (auto v : s.outputs) pending_of[static_cast<std::size_t>(v)] = static_cast<int>(k);
        {
          std::lock_guard<std::mutex> lock(mutex_);
          jobs_.push_back(k);
        }
        changed_.notify_all();
        in_flight.push_back(k);
        if (!overlap_) wait_for(k);
        continue;
      }
      {
        // The host's cores: one host segment at a time across the runs in
        // flight, taking turns with unit compute where the two share them.
        std::lock_guard<std::mutex> cores(shared_->host_cores);
        s.started = Clock::now();
        host_->run_segment(s.segment, host_in, host_out);
      }
      const Clock::time_point end = Clock::now();
      step_times_[static_cast<std::size_t>(s.first_step)].measured_us = us(s.started, end);
      if (trace) trace->add({s.name, "host", Trace::Track::host, trace->us_at(s.started), us(s.started, end), -1});
    }
    while (!in_flight.empty()) wait_for(in_flight.front());
  } catch (...) {
    // Leave no unit in flight: the next run hands them over again.
    while (!in_flight.empty()) {
      try {
        wait_for(in_flight.front());
      } catch (...) {
      }
    }
    throw;
  }
  // Graph outputs that are constants (folded at load) are produced by no segment.
  for (std::size_t i = 0; i < graph_.outputs.size(); ++i) {
    const auto& v = graph_.value(graph_.outputs[i]);
    if (v.constant && v.constant->byte_size()) std::memcpy(outputs[i], v.constant->f32(), v.constant->byte_size());
  }
}

MemoryUse HeteroExecutor::memory() const {
  MemoryUse m;
  if (host_) m += host_->memory();
  if (device_) m += device_->memory();
  return m;
}

std::string HeteroExecutor::description() const {
  int units = 0, host = 0;
  for (const auto& s : segments_) (s.on_accelerator ? units : host)++;
  std::string d = "plan '" + plan_.strategy + "': " + std::to_string(host) + " host segment" + (host == 1 ? "" : "s") +
                  ", " + std::to_string(units) + " dispatch unit" + (units == 1 ? "" : "s");
  if (device_) d += " on " + device_->description();
  if (host > 0) d += "; Halide kernels " + HostExecutor::kernel_target();
  // Ops without a host kernel run on the (slow, naive) reference kernels: say which.
  if (host_ && !host_->fallback_ops().empty()) {
    d += "; on the host's reference kernels:";
    for (const auto& op : host_->fallback_ops()) d += " " + op;
  }
  d += "; link " + plan_.link.describe();
  return d;
}

}  // namespace vkfuse::runtime
