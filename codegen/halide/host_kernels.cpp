// codegen/halide/host_kernels.cpp — see host_kernels.h.
#include "codegen/halide/host_kernels.h"

#include "codegen/halide/kernel_activations.h"

#include <HalideRuntime.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <initializer_list>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <span>
#include <string>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "vkf_avgpool.h"
#include "vkf_avgpool_w.h"
#include "vkf_binary.h"
#include "vkf_channel_affine.h"
#include "vkf_conv.h"
#include "vkf_conv_res.h"
#include "vkf_convm.h"
#include "vkf_convm_res.h"
#include "vkf_convm7.h"
#include "vkf_convm7_res.h"
#include "vkf_convm16.h"
#include "vkf_convk.h"
#include "vkf_convk_res.h"
#include "vkf_dwconv.h"
#include "vkf_dwconv_w.h"
#include "vkf_dwconv_flat.h"
#include "vkf_dwb.h"
#include "vkf_dwb_s2k3.h"
#include "vkf_dwb_s2k5.h"
#include "vkf_dwconvm.h"
#include "vkf_gemm.h"
#include "vkf_gemm_r12.h"
#include "vkf_gemv.h"
#include "vkf_global_avgpool.h"
#include "vkf_maxpool.h"
#include "vkf_maxpool_w.h"
#include "vkf_pad.h"
#include "vkf_pwb.h"
#include "vkf_pwb_co.h"
#include "vkf_pwb_co_res.h"
#include "vkf_pwb_planar.h"
#include "vkf_pwb_res.h"
#include "vkf_pw.h"
#include "vkf_pw_res.h"
#include "vkf_pw32.h"
#include "vkf_pw32_res.h"
#include "vkf_softmax.h"
#include "vkf_softmax_rows.h"
#include "vkf_layer_norm.h"
#include "vkf_wino.h"
#include "vkf_wino_res.h"
#include "vkf_wino_s.h"
#include "vkf_wino_s_res.h"
#include "graph/ir.h"
#include "vkfuse/error.h"

// Halide's heap allocations (whole-buffer stages such as the padded input of
// a convolution, the Winograd transforms, per-task scratch) come back every
// inference with the same sizes. glibc would mmap and unmap each of them,
// paying page faults and zeroing every time, so the runtime's weak
// halide_malloc/halide_free are replaced by a cache of freed blocks. The
// cache is per thread: a task allocates and frees its scratch on one thread,
// and a block that stays with its thread is still in that core's cache. One
// shared cache handed blocks to whichever thread asked next, so a core wrote
// scratch the other core's cache held (on this VM the two vCPUs at times sit
// on different L3s, where taking a line over costs ~0.4 us).
namespace {

// A spin-wait hint: x86's pause, AArch64's yield, nothing elsewhere.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield");
#endif
}

// Every block starts with this header, kHeader bytes before the pointer
// Halide gets (which stays 128-byte aligned).
struct BlockHeader {
  std::size_t size;  // usable bytes
  std::uint64_t magic;
};
constexpr std::size_t kHeader = 128;
constexpr std::uint64_t kBlockMagic = 0x766b667573650001ULL;  // "vkfuse" 1

class ThreadBlockCache {
 public:
  ~ThreadBlockCache() {
    for (auto& [size, p] : free_blocks_) std::free(static_cast<char*>(p) - kHeader);
  }
  // A cached block of at least `size` bytes (and not wastefully larger), or null.
  void* take(std::size_t size) {
    auto it = free_blocks_.lower_bound(size);
    if (it == free_blocks_.end() || it->first > 2 * size) return nullptr;
    void* p = it->second;
    cached_bytes_ -= it->first;
    free_blocks_.erase(it);
    return p;
  }
  // Keeps the block for reuse; false if the cache is full.
  bool keep(void* p, std::size_t size) {
    if (cached_bytes_ + size > kMaxCached) return false;
    cached_bytes_ += size;
    free_blocks_.emplace(size, p);
    return true;
  }

 private:
  static constexpr std::size_t kMaxCached = std::size_t{256} << 20;
  std::multimap<std::size_t, void*> free_blocks_;  // size → block
  std::size_t cached_bytes_ = 0;
};
thread_local ThreadBlockCache t_block_cache;
}  // namespace

extern "C" void* halide_malloc(void*, std::size_t size) {
  const std::size_t rounded = (size + 4095) / 4096 * 4096;
  if (void* p = t_block_cache.take(rounded)) return p;
  char* base = nullptr;
  if (rounded >= vkfuse::codegen::halide::kLargePageMin) {
    try {
      base = static_cast<char*>(vkfuse::codegen::halide::allocate_large(rounded + kHeader));
    } catch (const std::bad_alloc&) {
      return nullptr;  // Halide reports the failed allocation
    }
  } else {
    base = static_cast<char*>(std::aligned_alloc(128, rounded + kHeader));
  }
  if (!base) return nullptr;
  *reinterpret_cast<BlockHeader*>(base) = BlockHeader{rounded, kBlockMagic};
  return base + kHeader;
}

extern "C" void halide_free(void*, void* ptr) {
  if (!ptr) return;
  char* base = static_cast<char*>(ptr) - kHeader;
  const BlockHeader h = *reinterpret_cast<const BlockHeader*>(base);
  // Every pointer Halide frees came from halide_malloc above; a wrong magic
  // means the header was overwritten, and such a block is leaked rather than
  // handed out again.
  if (h.magic != kBlockMagic) return;
  if (!t_block_cache.keep(ptr, h.size)) std::free(base);
}

// Parallel loops. Halide 14's default thread pool left the second core idle
// here (the worker never picked up tasks: 1.0 CPUs used with 2 threads), so
// the runtime's weak halide_do_par_for is replaced by a small pool: the
// iterations of a loop are cut into one contiguous chunk per thread (the
// calling thread and threads - 1 workers); each walks its own chunk from the
// front and, when done, steals from the back of the others'. Consecutive
// layers then find more of their input in the same core's caches than with
// one shared counter, where the threads interleave. One parallel loop runs at
// a time; a loop started from inside a task runs serially. Both sides spin
// briefly before sleeping.
namespace {
class ParallelPool {
 public:
  static constexpr int kMaxParts = 64;  // threads working on one loop, at most

  static ParallelPool& get() {
    static ParallelPool* pool = new ParallelPool;  // never destroyed: workers live until exit
    return *pool;
  }
  // Threads for the loops the calling thread starts: each model's executor
  // sets its own (LoadOptions::threads) before its kernels run, so two
  // models keep their own sizes while sharing the one pool, whose loops run
  // one at a time: together they never use more threads than the larger asks.
  void set_threads(int n) { t_threads_ = std::max(1, n); }
  // Threads of the loops the calling thread starts.
  static int threads() { return t_threads_; }

  int run(void* user_context, halide_task_t f, int min, int size, std::uint8_t* closure) {
    const int want = t_threads_;
    if (size <= 0) return 0;
    if (want <= 1 || size == 1 || in_task_) {
      for (int i = 0; i < size; ++i)
        if (int r = f(user_context, min + i, closure)) return r;
      return 0;
    }
    std::lock_guard<std::mutex> one_at_a_time(call_mu_);
    Job job(f, user_context, closure, min, size);
    job.parts = std::min({want, size, kMaxParts});
    for (int k = 0; k < job.parts; ++k) {
      const auto lo = static_cast<std::uint64_t>(static_cast<std::int64_t>(size) * k / job.parts);
      const auto hi = static_cast<std::uint64_t>(static_cast<std::int64_t>(size) * (k + 1) / job.parts);
      job.chunks[static_cast<std::size_t>(k)].range.store(lo << 32 | hi, std::memory_order_relaxed);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (static_cast<int>(workers_.size()) < want - 1)
        workers_.emplace_back([this] {
          const vkfuse::codegen::halide::DenormalsAreZero flush;  // vkfuse's own threads, for good
          worker();
        });
      current_ = &job;
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    wake_.notify_all();
    work(job, 0);
    {
      std::lock_guard<std::mutex> lock(mu_);
      current_ = nullptr;  // no new helpers
    }
    // The helpers finish their last iterations within microseconds of this
    // thread: spin for them before sleeping, since a futex wake-up costs tens
    // of microseconds in a VM and a ResNet runs ~60 parallel loops.
    for (int spin = 0; spin < kSpins && job.helpers.load(std::memory_order_acquire) != 0; ++spin)
      cpu_relax();
    if (job.helpers.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [&] { return job.helpers.load(std::memory_order_acquire) == 0; });
    }
    return job.error.load();
  }

 private:
  struct Job {
    Job(halide_task_t f_, void* user_context_, std::uint8_t* closure_, int min_, int size_)
        : f(f_), user_context(user_context_), closure(closure_), min(min_), size(size_) {}
    halide_task_t f;
    void* user_context;
    std::uint8_t* closure;
    int min, size;
    int joined = 0;               // helpers that ever joined, under mu_: their part numbers
    std::atomic<int> helpers{0};  // workers inside work(); joined under mu_
    int parts = 1;
    // Unclaimed iterations [front, back) of each part, packed front << 32 | back,
    // a cache line each: the threads claim from their own parts at once.
    struct alignas(64) Chunk {
      std::atomic<std::uint64_t> range;
    };
    std::array<Chunk, kMaxParts> chunks;
    std::atomic<int> error{0};
  };

  // The next iteration from the front (or back) of part k, or -1.
  static int claim(Job& job, int k, bool from_back) {
    std::atomic<std::uint64_t>& chunk = job.chunks[static_cast<std::size_t>(k)].range;
    std::uint64_t r = chunk.load(std::memory_order_relaxed);
    for (;;) {
      const auto front = static_cast<std::uint32_t>(r >> 32), back = static_cast<std::uint32_t>(r);
      if (front >= back) return -1;
      const std::uint64_t next = from_back ? (r - 1) : (r + (std::uint64_t{1} << 32));
      if (chunk.compare_exchange_weak(r, next, std::memory_order_relaxed))
        return static_cast<int>(from_back ? back - 1 : front);
    }
  }

  // Part `own` from its front, then the others' from their backs.
  static void work(Job& job, int own) {
    in_task_ = true;
    for (int j = 0; j < job.parts; ++j) {
      const int k = (own + j) % job.parts;
      for (int i = claim(job, k, j > 0); i >= 0; i = claim(job, k, j > 0))
        if (int r = job.f(job.user_context, job.min + i, job.closure)) job.error.store(r);
    }
    in_task_ = false;
  }

  void worker() {
    std::uint64_t seen = 0;
    for (;;) {
      // Spin briefly for the next loop (kernels follow each other within
      // microseconds during an inference), then sleep.
      for (int spin = 0; spin < kSpins && published_.load(std::memory_order_acquire) == seen; ++spin)
        cpu_relax();
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return current_ != nullptr && generation_ != seen; });
      seen = generation_;
      Job* job = current_;
      if (job->joined >= job->parts - 1) continue;  // every part has its thread
      const int part = ++job->joined;
      job->helpers.fetch_add(1, std::memory_order_relaxed);
      lock.unlock();
      work(*job, part);
      // The job lives on the caller's stack: once helpers reaches 0 it may be
      // gone, so only the pool's own members are touched after this.
      if (job->helpers.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> join(mu_);  // the caller waits on done_ under mu_: no lost wake-up
        done_.notify_all();
      }
    }
  }

  static constexpr int kSpins = 4000;  // pause instructions: ~50-250 us by CPU
  std::atomic<std::uint64_t> published_{0};  // generation_, readable without mu_

  std::mutex call_mu_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Job* current_ = nullptr;
  std::uint64_t generation_ = 0;
  static thread_local bool in_task_;
  static thread_local int t_threads_;
};
thread_local bool ParallelPool::in_task_ = false;
thread_local int ParallelPool::t_threads_ = 1;
}  // namespace

extern "C" int halide_do_par_for(void* user_context, halide_task_t f, int min, int size, std::uint8_t* closure) {
  return ParallelPool::get().run(user_context, f, min, size, closure);
}

namespace vkfuse::codegen::halide {

void* allocate_large(std::size_t bytes) {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  const bool large = bytes >= kLargePageMin;
  const std::size_t align = large ? kHuge : 64;
  // Large blocks in whole 4 KiB pages: a tail short of a huge page stays in
  // small pages rather than taking a whole one.
  const std::size_t unit = large ? 4096 : 64;
  const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + unit - 1) / unit * unit;
  // posix_memalign: aligned_alloc wants the size a multiple of the alignment.
  void* p = nullptr;
  if (posix_memalign(&p, align, rounded) != 0) throw std::bad_alloc();
  if (large) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: 4 KiB pages if refused
  return p;
}

void free_large(void* p) noexcept { std::free(p); }

namespace {

// The last error message of a Halide pipeline on this thread.
thread_local std::string g_halide_error;

void on_halide_error(void*, const char* msg) { g_halide_error = msg ? msg : "(no message)"; }

void install_error_handler() {
  static std::once_flag once;
  std::call_once(once, [] { halide_set_error_handler(on_halide_error); });
}

void check(int rc, const char* kernel) {
  if (rc != 0) {
    std::string msg = g_halide_error;
    g_halide_error.clear();
    throw Error(ErrorKind::Internal, std::string("Halide kernel ") + kernel + " failed (" + std::to_string(rc) +
                                         "): " + msg);
  }
}

// A halide_buffer_t over a View (or a 1-D/2-D span), without owning memory.
class Buf {
 public:
  explicit Buf(const View& v) {
    init(v.data, v.rank);
    for (int i = 0; i < v.rank; ++i)
      dims_[i] = halide_dimension_t{0, static_cast<std::int32_t>(v.extent[i]), static_cast<std::int32_t>(v.stride[i]),
                                    0};
  }
  Buf(const float* data, std::int64_t n) {
    init(const_cast<float*>(data), 1);
    dims_[0] = halide_dimension_t{0, static_cast<std::int32_t>(n), 1, 0};
  }
  // A dense array of the given extents, innermost first (packed weights).
  Buf(const float* data, std::initializer_list<std::int64_t> extents) {
    init(const_cast<float*>(data), static_cast<int>(extents.size()));
    std::int64_t stride = 1;
    int i = 0;
    for (std::int64_t e : extents) {
      dims_[i++] = halide_dimension_t{0, static_cast<std::int32_t>(e), static_cast<std::int32_t>(stride), 0};
      stride *= e;
    }
  }
  // Row-major [outer, inner] with the given row stride.
  Buf(const float* data, std::int64_t inner, std::int64_t outer, std::int64_t row_stride) {
    init(const_cast<float*>(data), 2);
    dims_[0] = halide_dimension_t{0, static_cast<std::int32_t>(inner), 1, 0};
    dims_[1] = halide_dimension_t{0, static_cast<std::int32_t>(outer), static_cast<std::int32_t>(row_stride), 0};
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  halide_buffer_t* get() { return &buf_; }

 private:
  void init(float* data, int rank) {
    buf_ = halide_buffer_t{};
    buf_.host = reinterpret_cast<std::uint8_t*>(data);
    buf_.type = halide_type_t(halide_type_float, 32, 1);
    buf_.dimensions = rank;
    buf_.dim = dims_;
  }
  halide_dimension_t dims_[5] = {};
  halide_buffer_t buf_{};
};

}  // namespace

View View::dense(float* data, const std::vector<std::int64_t>& shape, int rank) {
  if (static_cast<int>(shape.size()) > rank || rank > 4)
    throw Error(ErrorKind::Internal, "View::dense: a rank-" + std::to_string(shape.size()) + " shape in rank " +
                                         std::to_string(rank));
  View v;
  v.data = data;
  v.rank = rank;
  std::int64_t stride = 1;
  const int r = static_cast<int>(shape.size());
  for (int i = 0; i < rank; ++i) {
    const std::int64_t e = i < r ? shape[static_cast<std::size_t>(r - 1 - i)] : 1;
    v.extent[i] = e;
    v.stride[i] = stride;
    stride *= e;
  }
  return v;
}

PackedConv PackedConv::pack(const float* w, const float* bias, int m, int in_channels, int kh, int kw, int tile_m,
                            int groups) {
  if (groups < 1 || m % groups != 0 || in_channels % groups != 0)
    throw Error(ErrorKind::Internal, "PackedConv: " + std::to_string(groups) + " groups do not divide " +
                                         std::to_string(m) + " output and " + std::to_string(in_channels) +
                                         " input channels");
  PackedConv p;
  p.m = m;
  p.kh = kh;
  p.kw = kw;
  p.tile_m = tile_m;
  p.in_channels = in_channels;
  p.m_padded = (m + tile_m - 1) / tile_m * tile_m;
  const int mg = m / groups, cg = in_channels / groups;
  if (groups > 1) {
    p.group_out = mg;
    p.group_in = cg;
  }
  p.c = block_input_channels(m, in_channels, groups, tile_m);
  const std::size_t mp = static_cast<std::size_t>(p.m_padded);
  p.weights.assign(mp * static_cast<std::size_t>(p.c * kh * kw), 0.f);
  p.bias.assign(mp, 0.f);
  // Packed index: (((mo / T * kh + ky) * kw + kx) * c + ci) * T + mo % T, T = tile_m.
  const std::size_t T = static_cast<std::size_t>(tile_m), C = static_cast<std::size_t>(p.c),
                    KH = static_cast<std::size_t>(kh), KW = static_cast<std::size_t>(kw),
                    CG = static_cast<std::size_t>(cg);
  // Walked in packed order: sequential writes, T interleaved read streams.
  const std::size_t M = static_cast<std::size_t>(m), MG = static_cast<std::size_t>(mg);
  float* dst = p.weights.data();
  for (std::size_t mb = 0; mb < M; mb += T) {
    const std::size_t c0 = static_cast<std::size_t>(p.block_channel(static_cast<int>(mb / T)));
    for (std::size_t ky = 0; ky < KH; ++ky)
      for (std::size_t kx = 0; kx < KW; ++kx)
        for (std::size_t ci = 0; ci < C; ++ci, dst += T)
          for (std::size_t mi = 0; mi < T && mb + mi < M; ++mi) {
            // Input channel c0 + ci, within output channel mb + mi's group?
            const std::size_t first = (mb + mi) / MG * CG;
            if (c0 + ci >= first && c0 + ci < first + CG)
              dst[mi] = w[(((mb + mi) * CG + (c0 + ci - first)) * KH + ky) * KW + kx];
          }
  }
  if (bias) std::copy(bias, bias + m, p.bias.begin());
  return p;
}

int PackedConv::block_input_channels(int m, int in_channels, int groups, int tile_m) {
  if (groups <= 1) return in_channels;
  // The most groups one block's output channels span.
  const int mg = m / groups;
  int span = 1;
  for (int mb = 0; mb < m; mb += tile_m) span = std::max(span, (std::min(mb + tile_m, m) - 1) / mg - mb / mg + 1);
  return std::min(in_channels, span * (in_channels / groups));
}

int PackedConv::block_channel(int mo) const {
  return std::clamp(mo * tile_m / group_out * group_in, 0, in_channels - c);
}

namespace {
// An activation that a kernel has no code of its own for (each one costs
// seconds to minutes of code generation over the kernel's variants) would
// run the whole select chain, exp and erf included, for every output
// vector: more than a 3-channel stem's taps, or a 3x3 depthwise layer's.
// Such an activation runs as a second pass over the output instead, in
// cache, on channel_affine (scale 1, shift 0), which specializes them.
// `specialized` lists the kernel's own; returns the epilogue it runs.
Epilogue epilogue_in_kernel(Epilogue act, std::span<const int> specialized) {
  return std::find(specialized.begin(), specialized.end(), act.act) != specialized.end() ? act : Epilogue{};
}
void activation_pass(const View& out, Epilogue act) {
  // Per calling thread (models run on several threads at once), grown once
  // to the widest layer.
  thread_local std::vector<float> ones, zeros;
  const auto channels = static_cast<std::size_t>(out.extent[2]);
  if (ones.size() < channels) {
    ones.assign(channels, 1.f);
    zeros.assign(channels, 0.f);
  }
  // A dense plane as one row: rows of 56 would leave 8 pixels of every row
  // to a scalar tail, each with its own exp and division (SiLU).
  View v = out;
  if (v.stride[0] == 1 && v.stride[1] == v.extent[0]) {
    v.extent[0] *= v.extent[1];
    v.extent[1] = 1;
    v.stride[1] = v.extent[0];
  }
  channel_affine(v, ones.data(), zeros.data(), act, v);
}
}  // namespace

void conv2d(const View& in, const PackedConv& w, const Window2D& g, const View* residual, Epilogue act,
            const View& out, const float* filters) {
  install_error_handler();
  if (in.extent[2] != w.in_channels) throw Error(ErrorKind::Internal, "conv2d: input channels other than the filters'");
  Buf bin(in), bout(out);
  Buf bw(filters ? filters : w.weights.data(), {w.tile_m, w.c, w.kw, w.kh, w.m_padded / w.tile_m});
  Buf bb(w.bias.data(), w.m_padded);
  // Rows outermost when the filters are small and the input plane large (see
  // the generator's schedule_register_tiled).
  const std::int64_t filter_bytes = static_cast<std::int64_t>(w.weights.size()) * 4;
  const std::int64_t input_bytes = in.extent[0] * in.extent[1] * in.extent[2] * 4;
  const bool rows_outer = filter_bytes <= (256 << 10) && input_bytes > (512 << 10);
  // conv_tiled's own activations: none and ReLU, and in the nest that
  // mobile stems run, theirs (kConvTiledStem); any other runs as a pass.
  const bool stem_nest = !residual && kernel_activations::in_stem_nest(g.stride_x, rows_outer);
  Epilogue e = epilogue_in_kernel(act, kernel_activations::kConvTiled);
  if (stem_nest && e.act != act.act) e = epilogue_in_kernel(act, kernel_activations::kConvTiledStem);
  if (residual) {
    Buf bres(*residual);
    check(vkf_conv_res(bin.get(), bw.get(), bb.get(), bres.get(), g.stride_x, g.stride_y, g.pad_x, g.pad_y, g.dil_x,
                       g.dil_y, w.group_out, w.group_in, rows_outer, e.act, e.alpha, e.beta, bout.get()),
          "vkf_conv_res");
  } else {
    Buf bres(out);
    check(vkf_conv(bin.get(), bw.get(), bb.get(), bres.get(), g.stride_x, g.stride_y, g.pad_x, g.pad_y, g.dil_x, g.dil_y,
                   w.group_out, w.group_in, rows_outer, e.act, e.alpha, e.beta, bout.get()),
          "vkf_conv");
  }
  if (e.act != act.act) activation_pass(out, act);
}

namespace {
// A (w, h, c, n) view with a dense plane as (w * h, c, n).
View flat_plane(const View& v) {
  if (v.stride[0] != 1 || v.stride[1] != v.extent[0])
    throw Error(ErrorKind::Internal, "host kernel: the image plane of a flattened view is not dense");
  View f;
  f.data = v.data;
  f.rank = 3;
  f.extent[0] = v.extent[0] * v.extent[1];
  f.stride[0] = 1;
  for (int i = 1; i < 3; ++i) {
    f.extent[i] = v.extent[i + 1];
    f.stride[i] = v.stride[i + 1];
  }
  return f;
}
}  // namespace

void conv2d_channel_vector(const View& in, const PackedConv& w, const Window2D& g, const View* residual, Epilogue e,
                           const View& out, const float* filters) {
  install_error_handler();
  const bool narrow = w.tile_m == kConvNarrowVectorTileM;
  if ((w.tile_m != kConvChannelVectorTileM && !(narrow && !residual)) ||
      out.extent[0] * out.extent[1] < kConvChannelVectorTileP || in.extent[2] != w.in_channels)
    throw Error(ErrorKind::Internal, "conv2d_channel_vector: not a convolution it can run");
  Buf bin(in), bout(flat_plane(out));
  Buf bw(filters ? filters : w.weights.data(), {w.tile_m, w.c, w.kw, w.kh, w.m_padded / w.tile_m});
  Buf bb(w.bias.data(), w.m_padded);
  const int out_w = static_cast<int>(out.extent[0]);
  // Channel blocks innermost (no false sharing between threads) unless the
  // filters would then come from beyond L2 for every task.
  const bool channels_inner = w.weights.size() * sizeof(float) <= (std::size_t{1} << 20);
  const bool seven = channel_vector_tile(out.extent[0] * out.extent[1]) == 7;
  if (residual) {
    Buf bres(flat_plane(*residual));
    check((seven ? vkf_convm7_res : vkf_convm_res)(bin.get(), bw.get(), bb.get(), bres.get(), out_w, g.stride_x,
                                                    g.stride_y, g.pad_x, g.pad_y, g.dil_x, g.dil_y, w.group_out,
                                                    w.group_in, channels_inner, e.act, e.alpha, e.beta, bout.get()),
          "vkf_convm_res");
  } else {
    Buf bres(flat_plane(out));
    check((narrow ? vkf_convm16 : seven ? vkf_convm7 : vkf_convm)(
              bin.get(), bw.get(), bb.get(), bres.get(), out_w, g.stride_x, g.stride_y, g.pad_x, g.pad_y, g.dil_x,
              g.dil_y, w.group_out, w.group_in, channels_inner, e.act, e.alpha, e.beta, bout.get()),
          "vkf_convm");
  }
}

void conv2d_channel_chunks(const View& in, const PackedConv& w, const Window2D& g, const View* residual, Epilogue e,
                           const View& out, const float* filters) {
  install_error_handler();
  if (w.tile_m != kConvChannelVectorTileM || w.group_in != 0 || w.c % kConvChunkC != 0 ||
      out.extent[0] * out.extent[1] < kConvChunkTileP)
    throw Error(ErrorKind::Internal, "conv2d_channel_chunks: not a convolution it can run");
  Buf bin(in), bout(flat_plane(out));
  Buf bw(filters ? filters : w.weights.data(), {w.tile_m, w.c, w.kw, w.kh, w.m_padded / w.tile_m});
  Buf bb(w.bias.data(), w.m_padded);
  Buf bres(residual ? flat_plane(*residual) : flat_plane(out));
  // A task per output block and run of tiles: as few runs as make the tasks
  // a multiple of the threads or at least 4 per thread, so that layers of few
  // blocks (5 for 160 channels) or many threads still share out evenly
  // (more runs read each block's filters more often: ResNet-18's 256-channel
  // layers ~2% slower on two threads with 2 runs); a block's runs are
  // consecutive tasks, so the same thread reads its filters again from L2.
  const std::int64_t tiles = (out.extent[0] * out.extent[1] + kConvChunkTileP - 1) / kConvChunkTileP;
  const std::int64_t blocks = w.m_padded / w.tile_m * out.extent[3];
  const std::int64_t threads = ParallelPool::threads();
  std::int64_t runs = 1;
  while (runs < tiles && (blocks * runs) % threads != 0 && blocks * runs < 4 * threads) ++runs;
  const int run_p = static_cast<int>((tiles + runs - 1) / runs * kConvChunkTileP);
  check((residual ? vkf_convk_res : vkf_convk)(bin.get(), bw.get(), bb.get(), bres.get(),
                                                 static_cast<int>(out.extent[0]), g.stride_x, g.stride_y, g.pad_x,
                                                 g.pad_y, g.dil_x, g.dil_y, run_p, e.act, e.alpha, e.beta, bout.get()),
        "vkf_convk");
}

void pointwise_conv2d(const View& in, const PackedConv& w, const View* residual, Epilogue e, const View& out,
                      int tile_p, const float* filters) {
  install_error_handler();
  if (w.kh != 1 || w.kw != 1 || w.tile_m != kPointwiseTileM || w.group_in != 0 ||
      out.extent[0] * out.extent[1] < tile_p ||
      (tile_p != kPointwiseTileP && tile_p != kPointwiseSmallTileP))
    throw Error(ErrorKind::Internal, "pointwise_conv2d: not a pointwise convolution it can run");
  Buf bin(flat_plane(in)), bout(flat_plane(out));
  Buf bw(filters ? filters : w.weights.data(), {w.tile_m, w.c, w.m_padded / w.tile_m});
  Buf bb(w.bias.data(), w.m_padded);
  const bool small = tile_p == kPointwiseSmallTileP;
  // Channel blocks innermost where all the filters fit in half of L2 (see
  // the generator's schedule) — but not for an expansion (M >= 2C) on a
  // plane of 28x28 or more: there a task order that keeps the output planes'
  // writes sequential beats reading the input only once (MobileNet v2's
  // 16->96 on 112x112 0.53 -> 0.36 ms, 24->144 on 56x56 0.19 -> 0.155, Intel
  // Xeon, 2 threads; projections, M < C, ran up to 2x slower that way).
  const bool expansion = w.m >= 2 * w.c && out.extent[0] * out.extent[1] >= 28 * 28;
  const bool channels_inner = w.weights.size() * sizeof(float) <= (std::size_t{512} << 10) && !expansion;
  if (residual) {
    Buf bres(flat_plane(*residual));
    auto* f = small ? vkf_pw32_res : vkf_pw_res;
    check(f(bin.get(), bw.get(), bb.get(), bres.get(), channels_inner, e.act, e.alpha, e.beta, bout.get()),
          "vkf_pw_res");
  } else {
    Buf bres(flat_plane(out));
    auto* f = small ? vkf_pw32 : vkf_pw;
    check(f(bin.get(), bw.get(), bb.get(), bres.get(), channels_inner, e.act, e.alpha, e.beta, bout.get()), "vkf_pw");
  }
}

namespace {
// y = G x for the filter transform of F(4x4, 3x3) (Lavin and Gray), on n
// lanes at once: x0..x2 are the rows of x, y[0..5] the rows of y. The shared
// sums use the rows' symmetry: (x0 + x2) +- x1, x0/24 + x2/6 +- x1/12.
void winograd_filter_rows(const float* x0, const float* x1, const float* x2, float* const y[6], std::size_t n) {
  for (std::size_t t = 0; t < n; ++t) {
    const float a = x0[t] + x2[t], b = x1[t];
    const float c = x0[t] * (1.f / 24) + x2[t] * (1.f / 6), d = x1[t] * (1.f / 12);
    y[0][t] = x0[t] * 0.25f;
    y[1][t] = (a + b) * (-1.f / 6);
    y[2][t] = (a - b) * (-1.f / 6);
    y[3][t] = c + d;
    y[4][t] = c - d;
    y[5][t] = x2[t];
  }
}
}  // namespace

PackedWinograd PackedWinograd::pack(const float* w, const float* bias, int m, int c) {
  PackedWinograd p;
  p.m = m;
  p.c = c;
  p.m_padded = (m + kWinogradTileM - 1) / kWinogradTileM * kWinogradTileM;
  constexpr std::size_t T = kWinogradTileM;
  const std::size_t C = static_cast<std::size_t>(c), M = static_cast<std::size_t>(m);
  p.weights.assign(static_cast<std::size_t>(p.m_padded) * 36 * C, 0.f);
  p.bias.assign(static_cast<std::size_t>(p.m_padded), 0.f);
  // U = G g G^T for a block of T filters at once (one lane each, missing
  // filters zero), per input channel: U's 36 entries are 36 runs of T floats
  // in the packed layout. Filter by filter in double precision this was a
  // quarter of ResNet-18's host load (about ten times as long as this).
  float g[9][T], rows[6][3][T], u[36][T];
  for (std::size_t mb = 0; mb < M; mb += T) {
    const std::size_t lanes = std::min(T, M - mb);
    for (std::size_t ci = 0; ci < C; ++ci) {
      for (std::size_t k = 0; k < 9; ++k)
        for (std::size_t t = 0; t < T; ++t) g[k][t] = t < lanes ? w[((mb + t) * C + ci) * 9 + k] : 0.f;
      for (std::size_t kx = 0; kx < 3; ++kx) {  // G g: column kx of g into column kx of rows
        float* const y[6] = {rows[0][kx], rows[1][kx], rows[2][kx], rows[3][kx], rows[4][kx], rows[5][kx]};
        winograd_filter_rows(g[kx], g[3 + kx], g[6 + kx], y, T);
      }
      for (std::size_t j = 0; j < 6; ++j) {  // (G g) G^T: row j into U's entries 6j..6j+5
        float* const y[6] = {u[6 * j], u[6 * j + 1], u[6 * j + 2], u[6 * j + 3], u[6 * j + 4], u[6 * j + 5]};
        winograd_filter_rows(rows[j][0], rows[j][1], rows[j][2], y, T);
      }
      float* dst = p.weights.data() + (mb / T * 36 * C + ci) * T;
      for (std::size_t pp = 0; pp < 36; ++pp) std::copy(u[pp], u[pp] + T, dst + pp * C * T);
    }
  }
  if (bias) std::copy(bias, bias + m, p.bias.begin());
  return p;
}

void winograd_conv2d(const View& in, const PackedWinograd& w, const Window2D& g, const View* residual, Epilogue e,
                     const View& out, WinogradSchedule schedule) {
  install_error_handler();
  Buf bin(in), bout(out);
  Buf bw(w.weights.data(), {kWinogradTileM, w.c, 36, w.m_padded / kWinogradTileM});
  Buf bb(w.bias.data(), w.m_padded);
  const int tiles_x = static_cast<int>((out.extent[0] + 3) / 4);
  const bool staged = schedule == WinogradSchedule::Staged;
  if (residual) {
    Buf bres(*residual);
    auto* f = staged ? vkf_wino_s_res : vkf_wino_res;
    check(f(bin.get(), bw.get(), bb.get(), bres.get(), g.pad_x, g.pad_y, tiles_x, e.act, e.alpha, e.beta, bout.get()),
          staged ? "vkf_wino_s_res" : "vkf_wino_res");
  } else {
    Buf bres(out);
    auto* f = staged ? vkf_wino_s : vkf_wino;
    check(f(bin.get(), bw.get(), bb.get(), bres.get(), g.pad_x, g.pad_y, tiles_x, e.act, e.alpha, e.beta, bout.get()),
          staged ? "vkf_wino_s" : "vkf_wino");
  }
}

namespace {
// f(i) for i in [0, count) on the kernels' thread pool (one task per block
// of channels of one image: the blocked layout's copies and reductions, subsample).
template <class F>
void parallel_tasks(std::int64_t count, F f) {
  auto task = [](void*, int i, std::uint8_t* closure) -> int {
    (*reinterpret_cast<F*>(closure))(i);
    return 0;
  };
  halide_do_par_for(nullptr, task, 0, static_cast<int>(count), reinterpret_cast<std::uint8_t*>(&f));
}
}  // namespace

void subsample(const View& in, int stride_x, int stride_y, const View& out) {
  parallel_tasks(out.extent[2] * out.extent[3], [&](std::int64_t i) {
    const std::int64_t c = i % out.extent[2], n = i / out.extent[2];
    const float* src = in.data + c * in.stride[2] + n * in.stride[3];
    float* dst = out.data + c * out.stride[2] + n * out.stride[3];
    for (std::int64_t y = 0; y < out.extent[1]; ++y) {
      const float* row = src + y * stride_y * in.stride[1];
      float* o = dst + y * out.stride[1];
      for (std::int64_t x = 0; x < out.extent[0]; ++x) o[x] = row[x * stride_x * in.stride[0]];
    }
  });
}

namespace {
// The epilogue over n floats in place, for the kernels written in plain C++.
void apply_epilogue(Epilogue e, float* p, std::int64_t n) {
  if (e.act == 0) return;
  const graph::Activation act{static_cast<graph::Activation::Kind>(e.act), e.alpha, e.beta};
  for (std::int64_t i = 0; i < n; ++i) p[i] = act.apply(p[i]);
}
}  // namespace

void transpose(std::int64_t batch, std::int64_t rows, std::int64_t cols, const float* in, float* out) {
  // Tiles of 32 x 32 (8 KB of both sides in L1); a task is a band of 32 rows.
  constexpr std::int64_t kTile = 32;
  const std::int64_t bands = (rows + kTile - 1) / kTile;
  parallel_tasks(batch * bands, [&](std::int64_t task) {
    const std::int64_t b = task / bands, i0 = task % bands * kTile, i1 = std::min(rows, i0 + kTile);
    const float* src = in + b * rows * cols;
    float* dst = out + b * rows * cols;
    for (std::int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const std::int64_t j1 = std::min(cols, j0 + kTile);
      for (std::int64_t i = i0; i < i1; ++i)
        for (std::int64_t j = j0; j < j1; ++j) dst[i * cols + j] = src[j * rows + i];
    }
  });
}

void channel_layer_norm(const float* in, const float* scale, const float* bias, std::int64_t images,
                        std::int64_t channels, std::int64_t plane, float eps, Epilogue e, float* out) {
  // A task is a block of 64 pixels of one image: three passes over its
  // channels (mean, variance of the centred values, output), each row of 64
  // a vector loop, the block (channels x 256 bytes) in L1 or L2.
  constexpr std::int64_t kBlock = 64;
  const std::int64_t blocks = (plane + kBlock - 1) / kBlock;
  const float inv_c = 1.f / static_cast<float>(channels);
  parallel_tasks(images * blocks, [&](std::int64_t task) {
    const std::int64_t image = task / blocks, p0 = task % blocks * kBlock, w = std::min(kBlock, plane - p0);
    const float* x = in + image * channels * plane + p0;
    float* y = out + image * channels * plane + p0;
    float mean[kBlock] = {}, inv[kBlock] = {};
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t i = 0; i < w; ++i) mean[i] += x[c * plane + i];
    for (std::int64_t i = 0; i < w; ++i) mean[i] *= inv_c;
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t i = 0; i < w; ++i) {
        const float d = x[c * plane + i] - mean[i];
        inv[i] += d * d;
      }
    for (std::int64_t i = 0; i < w; ++i) inv[i] = 1.f / std::sqrt(inv[i] * inv_c + eps);
    for (std::int64_t c = 0; c < channels; ++c) {
      const float s = scale[c], b = bias[c];
      for (std::int64_t i = 0; i < w; ++i) y[c * plane + i] = (x[c * plane + i] - mean[i]) * inv[i] * s + b;
      apply_epilogue(e, y + c * plane, w);
    }
  });
}

void resize(const Resize2D& r, const float* in, const float* residual, Epilogue e, float* out) {
  // Tasks of whole output rows, about 4096 outputs each.
  const std::int64_t rows_per_task = std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(1, r.ow));
  const std::int64_t chunks = (r.oh + rows_per_task - 1) / rows_per_task;
  parallel_tasks(r.planes * chunks, [&](std::int64_t task) {
    const std::int64_t p = task / chunks, y0 = task % chunks * rows_per_task;
    const float* plane = in + p * r.ih * r.iw;
    for (std::int64_t oy = y0; oy < std::min(r.oh, y0 + rows_per_task); ++oy) {
      float* o = out + (p * r.oh + oy) * r.ow;
      const std::int64_t t0 = r.rows.start[static_cast<std::size_t>(oy)];
      const std::int64_t t1 = r.rows.start[static_cast<std::size_t>(oy + 1)];
      if (t0 == t1) std::fill(o, o + r.ow, r.extrapolation);
      for (std::int64_t t = t0; t < t1; ++t) {
        const float* src = plane + r.rows.index[static_cast<std::size_t>(t)] * r.iw;
        const float wy = r.rows.weight[static_cast<std::size_t>(t)];
        const bool first = t == t0;
        if (r.cols.nearest) {
          const std::int64_t* ix = r.cols.index.data();
          if (first && wy == 1.f)
            for (std::int64_t x = 0; x < r.ow; ++x) o[x] = src[ix[x]];
          else
            for (std::int64_t x = 0; x < r.ow; ++x) o[x] = (first ? 0.f : o[x]) + wy * src[ix[x]];
          continue;
        }
        for (std::int64_t x = 0; x < r.ow; ++x) {
          const std::int64_t c0 = r.cols.start[static_cast<std::size_t>(x)];
          const std::int64_t c1 = r.cols.start[static_cast<std::size_t>(x + 1)];
          float v = 0.f;
          for (std::int64_t c = c0; c < c1; ++c)
            v += r.cols.weight[static_cast<std::size_t>(c)] * src[r.cols.index[static_cast<std::size_t>(c)]];
          if (c0 == c1) {
            if (first) o[x] = r.extrapolation;  // a column outside the image
          } else {
            o[x] = (first ? 0.f : o[x]) + wy * v;
          }
        }
      }
      if (residual) {
        const float* res = residual + (p * r.oh + oy) * r.ow;
        for (std::int64_t x = 0; x < r.ow; ++x) o[x] += res[x];
      }
      apply_epilogue(e, o, r.ow);
    }
  });
}

namespace {
// The window ops' schedule by input row width (schedule_plane_rows in
// generators.cpp): rows of 64 and more take the row-sliding variant (at 48,
// MobileNet v2's 56-wide depthwise layers ran 1.12x slower with it), which
// runs row strides 1 and 2 without dilation (window_row, window_col), eight
// output rows at a time, 16 output columns at a time (a window of 34+
// columns can leave fewer).
bool wide_rows(const View& in, const Window2D& g, const View& out) {
  return in.extent[0] >= 64 && (g.stride_y == 1 || g.stride_y == 2) && g.dil_y == 1 && g.dil_x == 1 &&
         out.extent[1] >= 8 && out.extent[0] >= 16;
}
}  // namespace

void depthwise_conv2d(const View& in, const float* w, const float* bias, int kh, int kw, const Window2D& g,
                      Epilogue e, const View& out) {
  install_error_handler();
  const std::int64_t c = in.extent[2];
  Buf bin(in), bout(out), bb(bias, c);
  Buf bw(w, {kw, kh, c});
  auto* f = wide_rows(in, g, out) ? vkf_dwconv_w : vkf_dwconv;
  const Epilogue k = epilogue_in_kernel(e, kernel_activations::kPlanarDepthwise);
  check(f(bin.get(), bw.get(), bb.get(), g.stride_x, g.stride_y, g.pad_x, g.pad_y, g.dil_x, g.dil_y, k.act, k.alpha,
          k.beta, bout.get()),
        "vkf_dwconv");
  if (k.act != e.act) activation_pass(out, e);
}

void depthwise_conv2d_flat(const View& in, const float* w, const float* bias, int kh, int kw, const Window2D& g,
                           Epilogue e, const View& out) {
  install_error_handler();
  if (g.stride_x != 1 || g.stride_y != 1 || in.extent[0] != out.extent[0] || in.extent[1] != out.extent[1] ||
      in.extent[0] * in.extent[1] < kDepthwiseFlatMinPixels)
    throw Error(ErrorKind::Internal, "depthwise_conv2d_flat: not a depthwise convolution it can run");
  const std::int64_t c = in.extent[2];
  Buf bin(flat_plane(in)), bout(flat_plane(out)), bb(bias, c);
  Buf bw(w, {kw, kh, c});
  check(vkf_dwconv_flat(bin.get(), bw.get(), bb.get(), static_cast<int>(in.extent[0]), g.pad_x, g.pad_y, g.dil_x,
                        g.dil_y, e.act, e.alpha, e.beta, bout.get()),
        "vkf_dwconv_flat");
}

PackedDepthwise PackedDepthwise::pack(const float* w, const float* bias, int c, int kh, int kw) {
  constexpr std::size_t B = kDepthwiseChannelBlock;
  PackedDepthwise p;
  p.c = c;
  p.kh = kh;
  p.kw = kw;
  p.c_padded = (c + kDepthwiseChannelBlock - 1) / kDepthwiseChannelBlock * kDepthwiseChannelBlock;
  const std::size_t C = static_cast<std::size_t>(c), taps = static_cast<std::size_t>(kh) * static_cast<std::size_t>(kw);
  p.weights.assign(static_cast<std::size_t>(p.c_padded) * taps, 0.f);
  p.bias.assign(static_cast<std::size_t>(p.c_padded), 0.f);
  // Packed index: (cb * taps + ky * kw + kx) * B + ci; ONNX's tap order is (ky, kx) too.
  for (std::size_t ch = 0; ch < C; ++ch)
    for (std::size_t t = 0; t < taps; ++t) p.weights[((ch / B) * taps + t) * B + ch % B] = w[ch * taps + t];
  if (bias) std::copy(bias, bias + c, p.bias.begin());
  return p;
}

void depthwise_conv2d_channel_vector(const View& in, const PackedDepthwise& w, const Window2D& g, Epilogue e,
                                     const View& out) {
  install_error_handler();
  if (out.extent[0] * out.extent[1] < kDepthwiseChannelVectorTileP || in.extent[2] != w.c)
    throw Error(ErrorKind::Internal, "depthwise_conv2d_channel_vector: not a depthwise convolution it can run");
  Buf bin(in), bout(flat_plane(out));
  Buf bw(w.weights.data(), {kDepthwiseChannelBlock, w.kw, w.kh, w.c_padded / kDepthwiseChannelBlock});
  Buf bb(w.bias.data(), w.c_padded);
  check(vkf_dwconvm(bin.get(), bw.get(), bb.get(), static_cast<int>(out.extent[0]), g.stride_x, g.stride_y, g.pad_x,
                    g.pad_y, g.dil_x, g.dil_y, e.act, e.alpha, e.beta, bout.get()),
        "vkf_dwconvm");
}

namespace {
// A blocked tensor as the kernels' (ci, p, cb, n) over the flattened plane.
struct BlockedFlat {
  Buf buf;
  explicit BlockedFlat(const Blocked& b) : buf(b.data, {kChannelBlock, b.h * b.w, b.blocks(), b.n}) {}
};
// Tasks per layer of the blocked kernels: one per pixel tile (pointwise) or
// row (depthwise) spent more time handing out tasks than computing on 14x14
// maps.
constexpr std::int64_t kBlockedTasks = 16;
int tiles_per_task(const Blocked& out) {
  const std::int64_t tiles = (out.h * out.w + kBlockedTile - 1) / kBlockedTile;
  return static_cast<int>(std::max<std::int64_t>(1, (tiles * out.n + kBlockedTasks - 1) / kBlockedTasks));
}
// Channel groups outermost up to 28x28 maps: on 14x14 and 28x28 layers 0.6-0.9x
// the time of pixel runs over every block (two threads); on 56x56 even.
constexpr std::int64_t kChannelsOuterP = 784;
// Output blocks per group of vkf_pwb_co* on AVX-512 (generators.cpp,
// PointwiseBlocked): its last group shifts inwards, so the output needs as many.
constexpr std::int64_t kChannelsOuterGroup = 3;
// The shifted last group computes some blocks twice: 4 blocks cost 6, 10 cost
// 12. Pixel runs over every block win there (MobileNet v2's 14x14 384->64 and
// 7x7 960->160 layers 0.68x and 0.83x the time, one thread); up to 1 block in
// 8 recomputed, the groups still win. Narrower targets group single blocks.
bool channels_outer_waste_ok(std::int64_t blocks) {
  const std::int64_t group = wide_register_kernels() ? kChannelsOuterGroup : 1;
  const std::int64_t computed = (blocks + group - 1) / group * group;
  return computed * 8 <= blocks * 9;
}
void check_pointwise_blocked(const PackedConv& w, std::int64_t c, const Blocked& out) {
  if (w.kh != 1 || w.kw != 1 || w.tile_m != kConvChannelVectorTileM || w.group_in != 0 || w.c != c || w.m != out.c ||
      out.h * out.w < kBlockedTile)
    throw Error(ErrorKind::Internal, "pointwise_conv2d_blocked: not a pointwise convolution it can run");
}
}  // namespace

void pointwise_conv2d_blocked(const Blocked& in, const PackedConv& w, const Blocked* residual, Epilogue e,
                              const Blocked& out, const float* filters) {
  install_error_handler();
  check_pointwise_blocked(w, in.c, out);
  if (in.h * in.w != out.h * out.w || in.n != out.n || (residual && residual->floats() != out.floats()))
    throw Error(ErrorKind::Internal, "pointwise_conv2d_blocked: mismatched planes");
  BlockedFlat bin(in), bout(out);
  Buf bw(filters ? filters : w.weights.data(), {w.tile_m, w.c, w.m_padded / w.tile_m});
  Buf bb(w.bias.data(), w.m_padded);
  // Maps of at most kChannelsOuterP pixels and outputs of at least 3 blocks
  // (that the shifted last group recomputes little of): tasks of one group of output blocks (vkf_pwb_co*: 3 blocks on AVX-512) over
  // runs of the plane's tiles, as few runs as give kBlockedTasks tasks; else
  // runs of pixel tiles over every block.
  const std::int64_t tiles = (out.h * out.w + kBlockedTile - 1) / kBlockedTile;
  const bool channels_outer = out.h * out.w <= kChannelsOuterP && out.blocks() >= kChannelsOuterGroup &&
                              channels_outer_waste_ok(out.blocks());
  const std::int64_t groups = (out.blocks() + kChannelsOuterGroup - 1) / kChannelsOuterGroup * out.n;
  const std::int64_t runs = std::clamp<std::int64_t>((kBlockedTasks + groups - 1) / groups, 1, tiles);
  const int k = channels_outer ? static_cast<int>((tiles + runs - 1) / runs) : tiles_per_task(out);
  const auto plain = channels_outer ? vkf_pwb_co : vkf_pwb;
  const auto with_residual = channels_outer ? vkf_pwb_co_res : vkf_pwb_res;
  if (residual) {
    BlockedFlat bres(*residual);
    check(with_residual(bin.buf.get(), bw.get(), bb.get(), bres.buf.get(), k, e.act, e.alpha, e.beta, bout.buf.get()),
          "vkf_pwb_res");
  } else {
    check(plain(bin.buf.get(), bw.get(), bb.get(), bout.buf.get(), k, e.act, e.alpha, e.beta, bout.buf.get()),
          "vkf_pwb");
  }
}

void pointwise_conv2d_blocked(const View& in, const PackedConv& w, Epilogue e, const Blocked& out,
                              const float* filters) {
  install_error_handler();
  check_pointwise_blocked(w, in.extent[2], out);
  if (in.extent[0] * in.extent[1] != out.h * out.w || in.extent[3] != out.n)
    throw Error(ErrorKind::Internal, "pointwise_conv2d_blocked: mismatched planes");
  View flat = flat_plane(in);
  flat.rank = 4;  // (p, c, n, 1)
  flat.extent[3] = 1;
  flat.stride[3] = 0;
  Buf bin(flat);
  BlockedFlat bout(out);
  Buf bw(filters ? filters : w.weights.data(), {w.tile_m, w.c, w.m_padded / w.tile_m});
  Buf bb(w.bias.data(), w.m_padded);
  check(vkf_pwb_planar(bin.get(), bw.get(), bb.get(), bout.buf.get(), tiles_per_task(out), e.act, e.alpha, e.beta,
                       bout.buf.get()),
        "vkf_pwb_planar");
}

void depthwise_conv2d_blocked(const Blocked& in, const PackedDepthwise& w, const Window2D& g, Epilogue e,
                              const Blocked& out) {
  install_error_handler();
  if (w.c != in.c || out.c != in.c || out.w < kBlockedTile || in.n != out.n)
    throw Error(ErrorKind::Internal, "depthwise_conv2d_blocked: not a depthwise convolution it can run");
  Buf bin(in.data, {kChannelBlock, in.w, in.h, in.blocks(), in.n});
  Buf bout(out.data, {kChannelBlock, out.w, out.h, out.blocks(), out.n});
  Buf bw(w.weights.data(), {kChannelBlock, w.kw, w.kh, w.c_padded / kChannelBlock});
  Buf bb(w.bias.data(), w.c_padded);
  // Tasks are row groups of every block, rows outermost, so that each
  // thread's contiguous part of the tasks is a band of rows, as the pointwise
  // layers around it split the plane: a thread reads what it wrote. Row
  // groups a multiple of the threads, about kBlockedTasks tasks.
  const std::int64_t threads = ParallelPool::threads();
  const std::int64_t per_band = (kBlockedTasks + threads * out.blocks() * out.n - 1) / (threads * out.blocks() * out.n);
  const std::int64_t groups = std::min(out.h, threads * std::max<std::int64_t>(1, per_band));
  const int rows_per_task = static_cast<int>((out.h + groups - 1) / groups);
  // 3x3 and 5x5 at stride 2 (MobileNets' and EfficientNets' downsampling
  // layers) have code of their own with the strided taps at known offsets.
  const bool stride2 = g.stride_x == 2 && g.stride_y == 2 && g.dil_x == 1 && g.dil_y == 1 && w.kw == w.kh;
  const auto kernel = stride2 && w.kw == 3 ? vkf_dwb_s2k3 : stride2 && w.kw == 5 ? vkf_dwb_s2k5 : vkf_dwb;
  check(kernel(bin.get(), bw.get(), bb.get(), g.stride_x, g.stride_y, g.pad_x, g.pad_y, g.dil_x, g.dil_y,
               rows_per_task, e.act, e.alpha, e.beta, bout.get()),
        "vkf_dwb");
}

void blocked_to_planar(const Blocked& in, const View& out) {
  const std::int64_t plane = in.h * in.w, nb = in.blocks();
  if (out.extent[0] * out.extent[1] != plane || out.extent[2] != in.c || out.extent[3] != in.n ||
      out.stride[0] != 1 || out.stride[1] != out.extent[0])
    throw Error(ErrorKind::Internal, "blocked_to_planar: mismatched tensors");
  parallel_tasks(in.n * nb, [&](std::int64_t i) {
    const std::int64_t n = i / nb, cb = i % nb;
    const float* src = in.data + i * plane * kChannelBlock;
    const int lanes = static_cast<int>(std::min<std::int64_t>(kChannelBlock, in.c - cb * kChannelBlock));
    // Runs of pixels whose 16-channel lines stay in L1 while each channel is copied out of them.
    constexpr std::int64_t kRun = 256;
    for (std::int64_t p0 = 0; p0 < plane; p0 += kRun) {
      const std::int64_t p1 = std::min(plane, p0 + kRun);
      for (int ci = 0; ci < lanes; ++ci) {
        float* dst = out.data + (cb * kChannelBlock + ci) * out.stride[2] + n * out.stride[3];
        for (std::int64_t p = p0; p < p1; ++p) dst[p] = src[p * kChannelBlock + ci];
      }
    }
  });
}

void channel_scale_blocked(const Blocked& in, const float* scale, std::int64_t image_stride, const Blocked& out) {
  if (in.floats() != out.floats() || in.c != out.c)
    throw Error(ErrorKind::Internal, "channel_scale_blocked: mismatched tensors");
  const std::int64_t plane = in.h * in.w, nb = in.blocks();
  parallel_tasks(in.n * nb, [&](std::int64_t i) {
    const std::int64_t n = i / nb, cb = i % nb;
    float s[kChannelBlock] = {};
    for (int ci = 0; ci < kChannelBlock && cb * kChannelBlock + ci < in.c; ++ci)
      s[ci] = scale[n * image_stride + cb * kChannelBlock + ci];
    const float* src = in.data + i * plane * kChannelBlock;
    float* dst = out.data + i * plane * kChannelBlock;
    for (std::int64_t p = 0; p < plane; ++p)
      for (int ci = 0; ci < kChannelBlock; ++ci) dst[p * kChannelBlock + ci] = src[p * kChannelBlock + ci] * s[ci];
  });
}

namespace {
// The filters' entries [begin, end): entry e is the tile_m filters of input
// channel e % C, at e * tile_m (T: tile_m, known when compiled).
template <int T>
void scale_filter_entries(const float* src, const float* scale, std::int64_t c, std::int64_t begin, std::int64_t end,
                          float* dst) {
  for (std::int64_t e = begin; e < end; ++e) {
    const float s = scale[e % c];
    for (int mi = 0; mi < T; ++mi) dst[e * T + mi] = src[e * T + mi] * s;
  }
}
}  // namespace

void scale_filter_inputs(const PackedConv& w, const float* scale, float* out) {
  // Packed as rows of (ci, mi) pairs, one row per (block of tile_m output
  // channels, tap): every entry of tile_m filters of channel ci is scaled by
  // scale[ci]. In tasks of about 8K floats on the kernels' pool.
  const std::int64_t T = w.tile_m, entries = static_cast<std::int64_t>(w.weights.size()) / T;
  if (T != 8 && T != 32) throw Error(ErrorKind::Internal, "scale_filter_inputs: filters in tiles of an unknown size");
  if (w.group_in != 0) throw Error(ErrorKind::Internal, "scale_filter_inputs: the filters of a grouped convolution");
  const std::int64_t per_task = std::max<std::int64_t>(1, 8192 / T);
  const std::int64_t tasks = (entries + per_task - 1) / per_task;
  auto run = [&](std::int64_t task) {
    const std::int64_t begin = task * per_task, end = std::min(entries, begin + per_task);
    (T == 32 ? scale_filter_entries<32> : scale_filter_entries<8>)(w.weights.data(), scale, w.c, begin, end, out);
  };
  if (tasks == 1) return run(0);
  parallel_tasks(tasks, run);
}

void global_avg_pool_blocked(const Blocked& in, const View& out) {
  const std::int64_t plane = in.h * in.w, nb = in.blocks();
  parallel_tasks(in.n * nb, [&](std::int64_t i) {
    const std::int64_t n = i / nb, cb = i % nb;
    const float* src = in.data + i * plane * kChannelBlock;
    float acc[kChannelBlock] = {};
    for (std::int64_t p = 0; p < plane; ++p)
      for (int ci = 0; ci < kChannelBlock; ++ci) acc[ci] += src[p * kChannelBlock + ci];
    const float scale = 1.f / static_cast<float>(plane);
    for (int ci = 0; ci < kChannelBlock && cb * kChannelBlock + ci < in.c; ++ci)
      out.data[(cb * kChannelBlock + ci) * out.stride[0] + n * out.stride[1]] = acc[ci] * scale;
  });
}

void max_pool2d(const View& in, const Window2D& g, Epilogue e, const View& out) {
  install_error_handler();
  Buf bin(in), bout(out);
  auto* f = wide_rows(in, g, out) ? vkf_maxpool_w : vkf_maxpool;
  check(f(bin.get(), g.kernel_x, g.kernel_y, g.stride_x, g.stride_y, g.pad_x, g.pad_y, g.pad_x_end,
                    g.pad_y_end, g.dil_x, g.dil_y, false, e.act, e.alpha, e.beta, bout.get()),
        "vkf_maxpool");
}

void avg_pool2d(const View& in, const Window2D& g, bool count_include_pad, Epilogue e, const View& out) {
  install_error_handler();
  Buf bin(in), bout(out);
  auto* f = wide_rows(in, g, out) ? vkf_avgpool_w : vkf_avgpool;
  check(f(bin.get(), g.kernel_x, g.kernel_y, g.stride_x, g.stride_y, g.pad_x, g.pad_y, g.pad_x_end,
                    g.pad_y_end, g.dil_x, g.dil_y, count_include_pad, e.act, e.alpha, e.beta, bout.get()),
        "vkf_avgpool");
}

void global_avg_pool(const View& in, const View& out) {
  install_error_handler();
  Buf bin(in), bout(out);
  check(vkf_global_avgpool(bin.get(), bout.get()), "vkf_global_avgpool");
}

PackedGemm PackedGemm::pack(const float* b, bool trans_b, int k, int m, int n, float alpha, const float* c,
                            const std::vector<std::int64_t>& c_shape, float beta) {
  PackedGemm p;
  p.k = k;
  p.m = m;
  p.n = n;
  p.m_padded = (m + 31) / 32 * 32;
  const std::size_t mp = static_cast<std::size_t>(p.m_padded);
  p.b.assign(static_cast<std::size_t>(k) * mp, 0.f);
  for (int kk = 0; kk < k; ++kk)
    for (int j = 0; j < m; ++j)
      p.b[(static_cast<std::size_t>(j / 32) * static_cast<std::size_t>(k) + static_cast<std::size_t>(kk)) * 32 +
          static_cast<std::size_t>(j % 32)] =
          alpha * (trans_b ? b[static_cast<std::size_t>(j) * static_cast<std::size_t>(k) + static_cast<std::size_t>(kk)]
                           : b[static_cast<std::size_t>(kk) * static_cast<std::size_t>(m) + static_cast<std::size_t>(j)]);
  // Broadcast C (rank <= 2) against [n, m]; one row unless C has n rows
  // (a [tokens, K] MatMul's zero bias would otherwise be tokens x m floats).
  const std::int64_t c_rows = c && c_shape.size() >= 2 ? c_shape[c_shape.size() - 2] : 1;
  p.bias_rows = c_rows == 1 ? 1 : n;
  p.bias.assign(static_cast<std::size_t>(p.bias_rows) * mp, 0.f);
  if (c) {
    const std::int64_t c_cols = c_shape.empty() ? 1 : c_shape.back();
    for (int i = 0; i < p.bias_rows; ++i)
      for (int j = 0; j < m; ++j) {
        const std::int64_t ci = c_rows == 1 ? 0 : i, cj = c_cols == 1 ? 0 : j;
        p.bias[static_cast<std::size_t>(i) * mp + static_cast<std::size_t>(j)] = beta * c[ci * c_cols + cj];
      }
  }
  return p;
}

namespace {

// The GEMM variant for `rows` rows of A: 12-row tiles once there are enough
// rows to fill them, 4-row tiles otherwise.
void run_gemm(Buf& a, Buf& panels, Buf& bias, Epilogue e, Buf& out, std::int64_t rows) {
  if (rows >= kGemmTallRows)
    check(vkf_gemm_r12(a.get(), panels.get(), bias.get(), e.act, e.alpha, e.beta, out.get()), "vkf_gemm_r12");
  else if (rows == 1)
    check(vkf_gemv(a.get(), panels.get(), bias.get(), e.act, e.alpha, e.beta, out.get()), "vkf_gemv");
  else
    check(vkf_gemm(a.get(), panels.get(), bias.get(), e.act, e.alpha, e.beta, out.get()), "vkf_gemm");
}

}  // namespace

void gemm(const View& a, const PackedGemm& b, Epilogue e, const View& out) {
  install_error_handler();
  Buf ba(a), bout(out);
  Buf bb(b.b.data(), {32, b.k, b.m_padded / 32});
  Buf bbias(b.bias.data(), b.m_padded, b.n, b.bias_rows == 1 ? 0 : b.m_padded);
  run_gemm(ba, bb, bbias, e, bout, a.extent[1]);
}

void matmul(const View& a, const View& b, Epilogue e, const View& out) {
  install_error_handler();
  const std::int64_t k = a.extent[0], n = a.extent[1], m = b.extent[0], mp = (m + 31) / 32 * 32;
  // Per calling thread: a model may run on several threads at once.
  thread_local LargeFloats panels;
  thread_local std::vector<float> zero_bias;
  panels.resize(static_cast<std::size_t>(k * mp));
  zero_bias.assign(static_cast<std::size_t>(mp), 0.f);
  for (std::int64_t jp = 0; jp < mp / 32; ++jp)
    for (std::int64_t kk = 0; kk < k; ++kk) {
      float* dst = panels.data() + (jp * k + kk) * 32;
      const float* src = b.data + kk * b.stride[1] + jp * 32 * b.stride[0];
      const std::int64_t cols = std::min<std::int64_t>(32, m - jp * 32);
      for (std::int64_t jc = 0; jc < cols; ++jc) dst[jc] = src[jc * b.stride[0]];
      std::fill(dst + cols, dst + 32, 0.f);
    }
  Buf ba(a), bout(out);
  Buf bb(panels.data(), {32, k, mp / 32});
  Buf bbias(zero_bias.data(), mp, n, 0);
  run_gemm(ba, bb, bbias, e, bout, n);
}

void binary(BinaryOp op, const View& a, const View& b, Epilogue e, const View& out) {
  install_error_handler();
  Buf ba(a), bb(b), bout(out);
  check(vkf_binary(ba.get(), bb.get(), static_cast<int>(op), e.act, e.alpha, e.beta, bout.get()), "vkf_binary");
}

void channel_affine(const View& in, const float* scale, const float* shift, Epilogue e, const View& out) {
  install_error_handler();
  Buf bin(in), bout(out), bs(scale, in.extent[2]), bt(shift, in.extent[2]);
  check(vkf_channel_affine(bin.get(), bs.get(), bt.get(), e.act, e.alpha, e.beta, bout.get()), "vkf_channel_affine");
}

void softmax(const View& in, const View& out) {
  install_error_handler();
  Buf bin(in), bout(out);
  if (in.extent[0] == 1)
    check(vkf_softmax_rows(bin.get(), bout.get()), "vkf_softmax_rows");
  else
    check(vkf_softmax(bin.get(), bout.get()), "vkf_softmax");
}

void layer_norm(const float* in, const float* scale, const float* bias, std::int64_t rows, std::int64_t len,
                float eps, float* out) {
  install_error_handler();
  Buf bin(in, len, rows, len), bout(out, len, rows, len), bs(scale, len), bb(bias, len);
  check(vkf_layer_norm(bin.get(), bs.get(), bb.get(), eps, bout.get()), "vkf_layer_norm");
}

void pad(const View& in, const std::int64_t begin[4], int mode, float value, const View& out) {
  install_error_handler();
  Buf bin(in), bout(out);
  check(vkf_pad(bin.get(), static_cast<int>(begin[0]), static_cast<int>(begin[1]), static_cast<int>(begin[2]),
                static_cast<int>(begin[3]), mode, value, bout.get()),
        "vkf_pad");
}

#if defined(__x86_64__) || defined(__i386__)
DenormalsAreZero::DenormalsAreZero() : saved_(_mm_getcsr()) { _mm_setcsr(_mm_getcsr() | 0x8040u); }  // FTZ | DAZ
DenormalsAreZero::~DenormalsAreZero() { _mm_setcsr(static_cast<unsigned>(saved_)); }
#elif defined(__aarch64__)
DenormalsAreZero::DenormalsAreZero() {
  std::uint64_t fpcr;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
  saved_ = fpcr;
  fpcr |= std::uint64_t{1} << 24;  // FZ
  __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
}
DenormalsAreZero::~DenormalsAreZero() { __asm__ __volatile__("msr fpcr, %0" : : "r"(saved_)); }
#else
DenormalsAreZero::DenormalsAreZero() = default;
DenormalsAreZero::~DenormalsAreZero() = default;
#endif

void set_num_threads(int threads) {
  halide_set_num_threads(std::max(1, threads));
  ParallelPool::get().set_threads(threads);
}

// Run-time target selection (see sources.cmake). The wrapper Halide emits for
// a multi-target kernel asks halide_can_use_target_features about each
// target's feature bits in turn and takes the last one unconditionally;
// target_description() replays that question to report the outcome, and
// VKFUSE_HOST_TARGET installs a stricter answer.
#ifndef VKFUSE_HALIDE_TARGETS
#define VKFUSE_HALIDE_TARGETS "host"
#endif

namespace {

constexpr int kFeatureWords = (halide_target_feature_end + 63) / 64;
using FeatureMask = std::array<std::uint64_t, kFeatureWords>;

// Feature levels, lowest first; a target's level is that of its best feature.
constexpr const char* kLevelNames[] = {"x86-64", "sse41", "avx2", "avx512"};

struct X86Feature {
  const char* name;
  halide_target_feature_t feature;
  int level;
};
constexpr X86Feature kX86Features[] = {
    {"sse41", halide_target_feature_sse41, 1},
    {"avx", halide_target_feature_avx, 2},
    {"avx2", halide_target_feature_avx2, 2},
    {"fma", halide_target_feature_fma, 2},
    {"f16c", halide_target_feature_f16c, 2},
    {"avx512", halide_target_feature_avx512, 3},
    {"avx512_knl", halide_target_feature_avx512_knl, 3},
    {"avx512_skylake", halide_target_feature_avx512_skylake, 3},
    {"avx512_cannonlake", halide_target_feature_avx512_cannonlake, 3},
    {"avx512_sapphirerapids", halide_target_feature_avx512_sapphirerapids, 3},
};

bool has_feature(int count, const std::uint64_t* bits, halide_target_feature_t f) {
  const int word = static_cast<int>(f) / 64;
  return word < count && (bits[word] >> (static_cast<int>(f) % 64) & 1) != 0;
}

int level_of(int count, const std::uint64_t* bits) {
  int level = 0;
  for (const auto& f : kX86Features)
    if (has_feature(count, bits, f.feature)) level = std::max(level, f.level);
  return level;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

// The feature bits of a Halide target string such as "x86-64-linux-avx-avx2".
FeatureMask mask_of(const std::string& target) {
  FeatureMask mask{};
  for (const auto& token : split(target, '-'))
    for (const auto& f : kX86Features)
      if (token == f.name) mask[static_cast<std::size_t>(f.feature) / 64] |= std::uint64_t{1} << (f.feature % 64);
  return mask;
}

// VKFUSE_HOST_TARGET's cap on the level (3: none).
int g_level_cap = 3;

int capped_can_use_target_features(int count, const std::uint64_t* features) {
  if (level_of(count, features) > g_level_cap) return 0;
  return halide_default_can_use_target_features(count, features);
}

// Installed before main, so before any kernel's wrapper asks.
const bool g_level_cap_installed = [] {
  const char* env = std::getenv("VKFUSE_HOST_TARGET");
  if (!env || !*env) return false;
  const std::string want = env;
  for (int level = 1; level < 4; ++level)
    if (want == kLevelNames[level]) {
      g_level_cap = level;
      halide_set_custom_can_use_target_features(capped_can_use_target_features);
      return true;
    }
  std::fprintf(stderr, "vkfuse: ignoring VKFUSE_HOST_TARGET=%s (expected avx512, avx2 or sse41)\n", env);
  return false;
}();

struct TargetChoice {
  std::vector<std::string> targets;  // as built, best first
  std::size_t chosen = 0;
  bool multi = false;
};

const TargetChoice& target_choice() {
  static const TargetChoice choice = [] {
    TargetChoice c;
    c.targets = split(VKFUSE_HALIDE_TARGETS, ',');
    c.multi = c.targets.size() > 1;
    c.chosen = c.targets.size() - 1;  // the baseline, unconditionally
    if (c.multi)
      for (std::size_t i = 0; i + 1 < c.targets.size(); ++i) {
        const FeatureMask mask = mask_of(c.targets[i]);
        if (halide_can_use_target_features(kFeatureWords, mask.data())) {
          c.chosen = i;
          break;
        }
      }
    return c;
  }();
  return choice;
}

const char* level_name(const std::string& target) {
  const FeatureMask mask = mask_of(target);
  return kLevelNames[level_of(kFeatureWords, mask.data())];
}

}  // namespace

std::string selected_target_level() {
  const TargetChoice& c = target_choice();
  return c.multi ? level_name(c.targets[c.chosen]) : "";
}

bool wide_register_kernels() {
  static const bool wide = [] {
    const TargetChoice& c = target_choice();
    const std::string& target = c.targets[c.chosen];
    // "host": the build machine's features, which the kernels need anyway.
    if (target == "host") return __builtin_cpu_supports("avx512f") != 0;
    return std::string(level_name(target)) == "avx512";
  }();
  return wide;
}

std::string target_description() {
  const TargetChoice& c = target_choice();
  if (!c.multi) {
    std::string s = c.targets[0] == "host" ? "host (the build machine's features, single target)"
                                           : c.targets[0] + " (single target)";
    if (g_level_cap_installed) s += "; VKFUSE_HOST_TARGET has no effect";
    return s;
  }
  std::string s = std::string("x86-64-") + level_name(c.targets[c.chosen]) + " (multi-target:";
  for (std::size_t i = 0; i < c.targets.size(); ++i) s += std::string(i ? ", " : " ") + level_name(c.targets[i]);
  s += ")";
  if (g_level_cap_installed) s += std::string(", capped by VKFUSE_HOST_TARGET=") + kLevelNames[g_level_cap];
  return s;
}

}  // namespace vkfuse::codegen::halide
