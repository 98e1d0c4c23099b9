#include "codegen/spirv/compiler.h"

#include <glslang/Public/ResourceLimits.h>
#include <glslang/build_info.h>
#include <glslang/Public/ShaderLang.h>
#include <glslang/SPIRV/GlslangToSpv.h>
#include <spirv-tools/libspirv.hpp>
#include <spirv-tools/optimizer.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "graph/passes.h"
#include "vkfuse/error.h"

namespace vkfuse::codegen::spirv {

namespace {

std::mutex g_mutex;
std::map<std::string, std::vector<std::uint32_t>> g_cache;  // source hash → SPIR-V
CompileStats g_stats;

void init_glslang() {
  static std::once_flag once;
  std::call_once(once, [] {
    glslang::InitializeProcess();
    std::atexit([] { glslang::FinalizeProcess(); });
  });
}

// The first line of a multi-line compiler log, for one-line errors.
std::string first_error_line(const std::string& log) {
  std::size_t start = log.find("ERROR:");
  if (start == std::string::npos) start = 0;
  std::size_t end = log.find('\n', start);
  return log.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::vector<std::uint32_t> glsl_to_spirv(const std::string& glsl) {
  init_glslang();
  glslang::TShader shader(EShLangCompute);
  const char* text = glsl.c_str();
  shader.setStrings(&text, 1);
  shader.setEnvInput(glslang::EShSourceGlsl, EShLangCompute, glslang::EShClientVulkan, 100);
  shader.setEnvClient(glslang::EShClientVulkan, glslang::EShTargetVulkan_1_1);
  shader.setEnvTarget(glslang::EShTargetSpv, glslang::EShTargetSpv_1_3);
  const auto messages = static_cast<EShMessages>(EShMsgSpvRules | EShMsgVulkanRules);
  if (!shader.parse(GetDefaultResources(), 450, false, messages))
    throw Error(ErrorKind::Internal, "GLSL compile failed: " + first_error_line(shader.getInfoLog()));
  glslang::TProgram program;
  program.addShader(&shader);
  if (!program.link(messages))
    throw Error(ErrorKind::Internal, "GLSL link failed: " + first_error_line(program.getInfoLog()));
  std::vector<std::uint32_t> words;
  glslang::SpvOptions opts;
  opts.disableOptimizer = true;  // spirv-opt below
  opts.validate = false;
  glslang::GlslangToSpv(*program.getIntermediate(EShLangCompute), words, &opts);
  return words;
}

std::vector<std::uint32_t> optimize_and_validate(std::vector<std::uint32_t> words, bool optimize) {
  std::string message;
  auto consumer = [&message](spv_message_level_t level, const char*, const spv_position_t&, const char* m) {
    if (level <= SPV_MSG_ERROR && message.empty()) message = m;
  };
  if (optimize) {
    spvtools::Optimizer opt(SPV_ENV_VULKAN_1_1);
    opt.SetMessageConsumer(consumer);
    opt.RegisterPerformancePasses();
    std::vector<std::uint32_t> out;
    if (!opt.Run(words.data(), words.size(), &out))
      throw Error(ErrorKind::Internal, "spirv-opt failed: " + message);
    words = std::move(out);
  }
  spvtools::SpirvTools tools(SPV_ENV_VULKAN_1_1);
  tools.SetMessageConsumer(consumer);
  if (!tools.Validate(words)) throw Error(ErrorKind::Internal, "spirv-val rejected a generated shader: " + message);
  return words;
}

// What shapes a cached module besides its source: the compilers' versions and
// the SPIR-V and Vulkan versions targeted (part of every cache key).
const std::string& compiler_identity() {
  static const std::string id = "glslang " + std::to_string(GLSLANG_VERSION_MAJOR) + "." +
                                std::to_string(GLSLANG_VERSION_MINOR) + "." + std::to_string(GLSLANG_VERSION_PATCH) +
                                "|" + spvSoftwareVersionString() + "|spv1.3|vk1.1|vkfuse " VKFUSE_VERSION;
  return id;
}

// The cache's keys (source_hash) and its files' checksums.
using graph::fnv1a;

std::uint64_t checksum(const std::uint32_t* words, std::size_t n) { return fnv1a(words, n * sizeof *words); }

// A cache file is the module followed by two words of its checksum. A file
// that is missing reads as a miss; one that is truncated, altered or no
// longer valid SPIR-V is removed (and counted) so that it is rebuilt.
bool read_words(const std::filesystem::path& p, std::vector<std::uint32_t>& out, bool& corrupt) {
  corrupt = false;
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  if (!f) return false;
  const auto size = static_cast<std::size_t>(f.tellg());
  std::vector<std::uint32_t> words(size / 4);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(words.data()), static_cast<std::streamsize>(words.size() * 4));
  corrupt = !f || size % 4 != 0 || words.size() < 8 || words[0] != 0x07230203u;
  if (!corrupt) {
    const std::size_t n = words.size() - 2;
    const std::uint64_t h = checksum(words.data(), n);
    corrupt = words[n] != static_cast<std::uint32_t>(h) || words[n + 1] != static_cast<std::uint32_t>(h >> 32);
    words.resize(n);
  }
  if (!corrupt) {
    spvtools::SpirvTools tools(SPV_ENV_VULKAN_1_1);
    tools.SetMessageConsumer([](spv_message_level_t, const char*, const spv_position_t&, const char*) {});
    corrupt = !tools.Validate(words);
  }
  if (corrupt) {
    std::error_code ec;
    std::filesystem::remove(p, ec);
    return false;
  }
  out = std::move(words);
  return true;
}

void write_words(const std::filesystem::path& p, const std::vector<std::uint32_t>& words) {
  std::error_code ec;
  std::filesystem::create_directories(p.parent_path(), ec);
  const std::uint64_t h = checksum(words.data(), words.size());
  const std::uint32_t trailer[2] = {static_cast<std::uint32_t>(h), static_cast<std::uint32_t>(h >> 32)};
  const std::span<const char> parts[] = {{reinterpret_cast<const char*>(words.data()), words.size() * 4},
                                         {reinterpret_cast<const char*>(trailer), sizeof trailer}};
  graph::write_file_atomically(p.string(), parts);  // a read-only cache is not an error
}

std::string cache_key(const std::string& glsl, const CompileOptions& options) {
  return source_hash(compiler_identity() + "\n" + glsl) + (options.optimize ? "o" : "u");
}

}  // namespace

std::string source_hash(const std::string& text) {
  const std::uint64_t h = fnv1a(text.data(), text.size());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::vector<std::uint32_t> compile_compute(const std::string& glsl, const CompileOptions& options) {
  const std::string key = cache_key(glsl, options);
  if (options.memory_cache) {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) {
      ++g_stats.memory_hits;
      return it->second;
    }
  }
  std::filesystem::path disk;
  if (!options.cache_dir.empty()) {
    disk = cache_file(glsl, options);
    std::vector<std::uint32_t> words;
    bool corrupt = false;
    if (read_words(disk, words, corrupt)) {
      std::lock_guard<std::mutex> lock(g_mutex);
      ++g_stats.disk_hits;
      g_cache.emplace(key, words);
      return words;
    }
    if (corrupt) {
      std::lock_guard<std::mutex> lock(g_mutex);
      ++g_stats.disk_discarded;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::uint32_t> words;
  {
    // glslang's front end is not safe to run concurrently in one process.
    static std::mutex glslang_mutex;
    std::lock_guard<std::mutex> lock(glslang_mutex);
    words = glsl_to_spirv(glsl);
  }
  words = optimize_and_validate(std::move(words), options.optimize);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!disk.empty()) write_words(disk, words);
  std::lock_guard<std::mutex> lock(g_mutex);
  ++g_stats.compiled;
  g_stats.compile_ms += ms;
  g_cache.emplace(key, words);
  return words;
}

std::string cache_file(const std::string& glsl, const CompileOptions& options) {
  return (std::filesystem::path(options.cache_dir) / "spirv" / (cache_key(glsl, options) + ".spv")).string();
}

CompileStats compile_stats() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_stats;
}

}  // namespace vkfuse::codegen::spirv
