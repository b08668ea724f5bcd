// File helpers: whole-file reads, atomic writes and read-only mmaps, all failing with a HINT.
#include "core/fileio.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace mm {

namespace {
std::string errno_text() { return std::strerror(errno); }

void check_readable(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    fail(fmt::format("{}: no such file", path), "check the path (relative paths start at the current folder)");
  if (std::filesystem::is_directory(path, ec))
    fail(fmt::format("{}: is a folder, not a file", path), "name a file inside it");
}
}  // namespace

std::string read_text_file(const std::string& path) {
  check_readable(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(fmt::format("{}: cannot open: {}", path, errno_text()), "check the file's permissions");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return std::move(buffer).str();
}

std::vector<uint8_t> read_binary_file(const std::string& path) {
  std::string text = read_text_file(path);
  return std::vector<uint8_t>(text.begin(), text.end());
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) fail(fmt::format("{}: cannot create folder: {}", path, ec.message()), "check permissions and free disk space");
}

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), temp_path_(path_ + fmt::format(".{}.tmp", ::getpid())) {}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicFile::commit() {
  int fd = ::open(temp_path_.c_str(), O_RDONLY);
  if (fd < 0) fail(fmt::format("{}: cannot reopen for fsync: {}", temp_path_, errno_text()), "check free disk space");
  ::fsync(fd);
  ::close(fd);
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0)
    fail(fmt::format("{}: cannot rename into place: {}", path_, errno_text()), "check permissions of the output folder");
  committed_ = true;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
    if (!out) fail(fmt::format("{}: cannot write: {}", file.temp_path(), errno_text()), "check that the folder exists and is writable");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) fail(fmt::format("{}: write failed", file.temp_path()), "check free disk space");
  }
  file.commit();
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  check_readable(path);
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(fmt::format("{}: cannot open: {}", path, errno_text()), "check the file's permissions");
  struct stat st {};
  ::fstat(fd, &st);
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) {
      ::close(fd);
      fail(fmt::format("{}: mmap failed: {}", path, errno_text()), "check free memory");
    }
    data_ = static_cast<const uint8_t*>(mapped);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace mm
