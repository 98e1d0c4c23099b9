// Files written whole or not at all, for vkfuse's caches and profiles.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>

#include "graph/passes.h"

namespace vkfuse::graph {

std::uint64_t fnv1a(const void* data, std::size_t bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= static_cast<const unsigned char*>(data)[i];
    h *= 1099511628211ull;
  }
  return h;
}

bool write_file_atomically(const std::string& path, std::span<const std::span<const char>> parts) {
  static std::atomic<unsigned> counter{0};
  // A name of its own per process and call: two processes (or threads)
  // writing the same file never share a temporary file.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return false;
    for (const auto& p : parts) out.write(p.data(), static_cast<std::streamsize>(p.size()));
    out.close();  // a full disk shows here, not after the rename
    if (!out) {
      std::remove(tmp.c_str());
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace vkfuse::graph
