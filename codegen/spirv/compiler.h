// codegen/spirv/compiler.h — GLSL 450 compute source → validated SPIR-V
// (glslang's C++ API, spirv-val), optionally through spirv-opt's
// performance passes.
//
// Each distinct source is compiled once per process (cached by a hash of the
// source and of the compilers' versions); with a cache folder, the SPIR-V is
// also kept on disk and reused across processes: written atomically, with a
// checksum, and revalidated when read (a corrupt file is removed and rebuilt).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vkfuse::codegen::spirv {

struct CompileOptions {
  bool optimize = false;  // spirv-opt's performance passes (VKFUSE_SPIRV_OPT=1 for the executor)
  std::string cache_dir;  // "" = no disk cache
  bool memory_cache = true;  // false: always read the disk cache or compile (tests of the disk cache)
};

// Throws Error(Internal) with glslang's or spirv-val's message on failure.
std::vector<std::uint32_t> compile_compute(const std::string& glsl, const CompileOptions& options = {});

// FNV-1a 64-bit of the text, as 16 hex digits.
std::string source_hash(const std::string& text);

// The file of `glsl` in the disk cache under `cache_dir` (for tests).
std::string cache_file(const std::string& glsl, const CompileOptions& options);

struct CompileStats {
  std::int64_t compiled = 0;     // sources compiled by glslang in this process
  std::int64_t memory_hits = 0;  // served from the in-process cache
  std::int64_t disk_hits = 0;    // served from the disk cache
  std::int64_t disk_discarded = 0;  // disk cache files found corrupt (truncated, altered, invalid) and rebuilt
  double compile_ms = 0;         // time spent in glslang + spirv-opt + spirv-val
};
CompileStats compile_stats();

}  // namespace vkfuse::codegen::spirv
