// safetensors reader/writer with full validation of untrusted headers.
#include "core/safetensors.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"

namespace mm {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: case DType::I32: return 4;
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::BF16: case DType::U16: return 2;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::U16: return "U16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U64: return "U64";
  }
  return "?";
}

namespace {
bool parse_dtype(const std::string& name, DType& out) {
  for (DType d : {DType::F32, DType::F64, DType::BF16, DType::U16, DType::I32, DType::I64, DType::U64}) {
    if (name == dtype_name(d)) {
      out = d;
      return true;
    }
  }
  return false;
}
constexpr const char* kCorruptHint = "the file is damaged or not a safetensors file; re-create it (checkpoints are rewritten every --ckpt-every steps)";
}  // namespace

int64_t TensorEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  for (const TensorEntry& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorEntry& SafetensorsFile::at(const std::string& name, const std::string& path_for_errors) const {
  const TensorEntry* t = find(name);
  if (!t) fail(fmt::format("{}: tensor '{}' is missing", path_for_errors, name), "the checkpoint was written for another model; check --model against the run's .meta");
  return *t;
}

TensorEntry make_tensor(std::string name, DType dtype, std::vector<int64_t> shape, const void* data) {
  TensorEntry t{std::move(name), dtype, std::move(shape), {}};
  t.bytes.resize(static_cast<size_t>(t.numel()) * dtype_size(dtype));
  if (!t.bytes.empty()) std::memcpy(t.bytes.data(), data, t.bytes.size());
  return t;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  Json::Object header;
  if (!file.metadata.empty()) {
    Json::Object meta;
    for (const auto& [k, v] : file.metadata) meta[k] = Json(v);
    header["__metadata__"] = Json(std::move(meta));
  }
  uint64_t offset = 0;
  for (const TensorEntry& t : file.tensors) {
    Json::Array shape;
    for (int64_t d : t.shape) shape.emplace_back(d);
    Json::Object entry;
    entry["dtype"] = Json(dtype_name(t.dtype));
    entry["shape"] = Json(std::move(shape));
    entry["data_offsets"] = Json(Json::Array{Json(static_cast<int64_t>(offset)), Json(static_cast<int64_t>(offset + t.bytes.size()))});
    header[t.name] = Json(std::move(entry));
    offset += t.bytes.size();
  }
  std::string header_text = Json(std::move(header)).dump();
  while ((header_text.size() + 8) % 8 != 0) header_text += ' ';
  std::string out;
  out.reserve(8 + header_text.size() + offset);
  uint64_t header_len = header_text.size();
  out.append(reinterpret_cast<const char*>(&header_len), 8);
  out += header_text;
  for (const TensorEntry& t : file.tensors) out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  write_file_atomic(path, out);
}

SafetensorsFile read_safetensors(const std::string& path) {
  MappedFile mapped(path);
  const size_t size = mapped.size();
  if (size < 8) fail(fmt::format("{}: truncated safetensors file ({} bytes)", path, size), kCorruptHint);
  uint64_t header_len = 0;
  std::memcpy(&header_len, mapped.data(), 8);
  if (header_len > size - 8 || header_len > (100u << 20))
    fail(fmt::format("{}: header length {} does not fit the file size {}", path, header_len, size), kCorruptHint);
  std::string_view header_text(reinterpret_cast<const char*>(mapped.data()) + 8, header_len);
  Json header;
  try {
    header = parse_json(header_text);
  } catch (const std::exception& e) {
    fail(fmt::format("{}: bad safetensors header: {}", path, e.what()), kCorruptHint);
  }
  if (!header.is_object()) fail(fmt::format("{}: safetensors header is not a JSON object", path), kCorruptHint);
  const size_t data_start = 8 + header_len;
  const size_t data_size = size - data_start;

  SafetensorsFile file;
  struct Placed { uint64_t begin; TensorEntry entry; };
  std::vector<Placed> placed;
  try {
    for (const auto& [name, value] : header.obj()) {
      if (name == "__metadata__") {
        for (const auto& [k, v] : value.obj()) file.metadata[k] = v.str();
        continue;
      }
      TensorEntry t;
      t.name = name;
      if (!parse_dtype(value.obj().at("dtype").str(), t.dtype))
        fail(fmt::format("{}: tensor '{}' has unsupported dtype {}", path, name, value.obj().at("dtype").str()), kCorruptHint);
      for (const Json& d : value.obj().at("shape").arr()) {
        if (d.num() < 0 || d.num() > 1e12) fail(fmt::format("{}: tensor '{}' has a bad shape", path, name), kCorruptHint);
        t.shape.push_back(static_cast<int64_t>(d.num()));
      }
      const Json::Array& offsets = value.obj().at("data_offsets").arr();
      if (offsets.size() != 2) fail(fmt::format("{}: tensor '{}' needs two data_offsets", path, name), kCorruptHint);
      uint64_t begin = static_cast<uint64_t>(offsets[0].num()), end = static_cast<uint64_t>(offsets[1].num());
      uint64_t expected = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype);
      if (end < begin || end - begin != expected)
        fail(fmt::format("{}: tensor '{}' spans {} bytes but its shape needs {}", path, name, end - begin, expected), kCorruptHint);
      if (end > data_size)
        fail(fmt::format("{}: tensor '{}' ends at byte {} past the data size {} (truncated file?)", path, name, end, data_size), kCorruptHint);
      t.bytes.assign(mapped.data() + data_start + begin, mapped.data() + data_start + end);
      placed.push_back({begin, std::move(t)});
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(fmt::format("{}: malformed safetensors header entry: {}", path, e.what()), kCorruptHint);
  }
  std::sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) { return a.begin < b.begin; });
  for (Placed& p : placed) file.tensors.push_back(std::move(p.entry));
  return file;
}

}  // namespace mm
