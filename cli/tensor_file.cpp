#include "cli/tensor_file.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "vkfuse/error.h"

namespace vkfuse::cli {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

[[noreturn]] void bad_npy(const std::string& path, const std::string& what) {
  throw Error(ErrorKind::InvalidInput, path + ": not a float32 .npy file we can read: " + what);
}

// Finds `'key': value` in a .npy header dict and returns the value text.
std::string header_field(const std::string& header, const std::string& key, const std::string& path) {
  auto k = header.find("'" + key + "'");
  if (k == std::string::npos) bad_npy(path, "header has no '" + key + "'");
  auto colon = header.find(':', k);
  if (colon == std::string::npos) bad_npy(path, "malformed header");
  auto start = header.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) bad_npy(path, "malformed header");
  std::size_t end;
  if (header[start] == '(') end = header.find(')', start) + 1;
  else if (header[start] == '\'') end = header.find('\'', start + 1) + 1;
  else end = header.find_first_of(",}", start);
  if (end == std::string::npos || end == 0 || end <= start) bad_npy(path, "malformed header");
  return header.substr(start, end - start);
}

TensorFile parse_npy(const std::string& path, const std::string& bytes) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) bad_npy(path, "missing the \\x93NUMPY magic");
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) bad_npy(path, "truncated header");
    std::uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    offset = 12;
  } else {
    bad_npy(path, "unknown format version " + std::to_string(major));
  }
  if (bytes.size() < offset + header_len) bad_npy(path, "truncated header");
  const std::string header = bytes.substr(offset, header_len);
  const std::string descr = header_field(header, "descr", path);
  if (descr != "'<f4'" && descr != "'|f4'")
    bad_npy(path, "dtype is " + descr + "; save it as float32 (x.astype(numpy.float32))");
  if (header_field(header, "fortran_order", path) != "False") bad_npy(path, "Fortran order is not supported");
  TensorFile t;
  t.has_shape = true;
  std::string dims = header_field(header, "shape", path);
  std::istringstream ds(dims.substr(1, dims.size() - 2));
  std::string item;
  while (std::getline(ds, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    try {
      t.shape.push_back(std::stoll(item));
    } catch (const std::exception&) {
      bad_npy(path, "malformed shape " + dims);
    }
  }
  std::int64_t n = 1;
  for (auto d : t.shape) n *= d;
  const std::size_t data_bytes = bytes.size() - offset - header_len;
  if (n < 0 || data_bytes != static_cast<std::size_t>(n) * 4)
    throw Error(ErrorKind::InvalidInput, path + ": .npy header promises " + std::to_string(n) + " floats but the file holds " +
                                             std::to_string(data_bytes) + " bytes of data (truncated?)");
  t.data.resize(static_cast<std::size_t>(n));
  if (n) std::memcpy(t.data.data(), bytes.data() + offset + header_len, data_bytes);
  return t;
}

}  // namespace

TensorFile read_tensor_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::Io, "cannot open input file '" + path + "'");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (ends_with(path, ".npy")) return parse_npy(path, bytes);
  if (bytes.size() % 4 != 0)
    throw Error(ErrorKind::InvalidInput, path + ": " + std::to_string(bytes.size()) +
                                             " bytes is not a whole number of float32 values");
  TensorFile t;
  t.data.resize(bytes.size() / 4);
  if (!bytes.empty()) std::memcpy(t.data.data(), bytes.data(), bytes.size());
  return t;
}

void write_tensor_file(const std::string& path, const std::vector<std::int64_t>& shape, const std::vector<float>& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error(ErrorKind::Io, "cannot write output file '" + path + "'");
  if (ends_with(path, ".npy")) {
    std::string dims;
    for (std::size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
    if (shape.size() == 1) dims += ',';  // a 1-tuple is "(5,)"
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
    // Pad so that the data starts on a 64-byte boundary, ending in '\n'.
    const std::size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    const auto len = static_cast<std::uint16_t>(header.size());
    f.write("\x93NUMPY\x01\x00", 8);
    const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
    f.write(len_bytes, 2);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
  }
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(float)));
  if (!f) throw Error(ErrorKind::Io, "failed writing output file '" + path + "' (disk full?)");
}

}  // namespace vkfuse::cli
