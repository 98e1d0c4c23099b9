#include "codegen/spirv/compiler.h"

#include <glslang/Public/ResourceLimits.h>
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

bool read_words(const std::filesystem::path& p, std::vector<std::uint32_t>& out) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  if (!f) return false;
  const auto size = static_cast<std::size_t>(f.tellg());
  if (size == 0 || size % 4 != 0) return false;
  out.resize(size / 4);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(size));
  return static_cast<bool>(f) && out[0] == 0x07230203u;
}

void write_words(const std::filesystem::path& p, const std::vector<std::uint32_t>& words) {
  std::error_code ec;
  std::filesystem::create_directories(p.parent_path(), ec);
  const auto tmp = p.string() + ".tmp" + std::to_string(reinterpret_cast<std::uintptr_t>(&words));
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) return;  // a read-only cache is not an error
    f.write(reinterpret_cast<const char*>(words.data()), static_cast<std::streamsize>(words.size() * 4));
    if (!f) return;
  }
  std::filesystem::rename(tmp, p, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

}  // namespace

std::string source_hash(const std::string& text) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::vector<std::uint32_t> compile_compute(const std::string& glsl, const CompileOptions& options) {
  const std::string key = source_hash(glsl) + (options.optimize ? "o" : "u");
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) {
      ++g_stats.memory_hits;
      return it->second;
    }
  }
  std::filesystem::path disk;
  if (!options.cache_dir.empty()) {
    disk = std::filesystem::path(options.cache_dir) / "spirv" / (key + ".spv");
    std::vector<std::uint32_t> words;
    if (read_words(disk, words)) {
      std::lock_guard<std::mutex> lock(g_mutex);
      ++g_stats.disk_hits;
      g_cache.emplace(key, words);
      return words;
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

CompileStats compile_stats() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_stats;
}

}  // namespace vkfuse::codegen::spirv
