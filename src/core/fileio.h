// File helpers: whole-file reads, atomic writes (temp + fsync + rename) and a read-only mmap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

std::string read_text_file(const std::string& path);
std::vector<uint8_t> read_binary_file(const std::string& path);
bool file_exists(const std::string& path);
void make_dirs(const std::string& path);

// Writes `bytes` to `path` so that readers see either the old file or the complete new one.
void write_file_atomic(const std::string& path, std::string_view bytes);

// A temp path next to `path` that is renamed over it by commit(); removed if never committed.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  const std::string& temp_path() const { return temp_path_; }
  void commit();  // fsync + rename

 private:
  std::string path_, temp_path_;
  bool committed_ = false;
};

// Read-only memory map of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

uint64_t fnv1a64(std::string_view bytes);

}  // namespace mm
