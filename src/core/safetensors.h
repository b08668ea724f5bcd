// safetensors checkpoints: 8-byte little-endian header length, JSON header, raw little-endian data.
// PyTorch's safetensors package and our scripts/torch_twin.py read the same files.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mm {

enum class DType { F32, F64, BF16, U16, I32, I64, U64 };
size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // prod(shape) * dtype_size(dtype) bytes

  int64_t numel() const;
  template <class T>
  const T* as() const { return reinterpret_cast<const T*>(bytes.data()); }
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // the "__metadata__" object (string values only)
  std::vector<TensorEntry> tensors;             // in file order

  const TensorEntry* find(const std::string& name) const;
  const TensorEntry& at(const std::string& name, const std::string& path_for_errors) const;
};

TensorEntry make_tensor(std::string name, DType dtype, std::vector<int64_t> shape, const void* data);

// Atomic write (temp + fsync + rename).
void write_safetensors(const std::string& path, const SafetensorsFile& file);
// Validates the header length, the JSON, every dtype, shape and offset against the file size.
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace mm
