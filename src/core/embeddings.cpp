// Embedding files.
#include "core/embeddings.h"

#include "core/error.h"
#include "core/json.h"
#include "core/safetensors.h"

namespace mm {

void write_embeddings(const std::string& path, const EmbeddingSet& set) {
  SafetensorsFile file;
  file.metadata = set.metadata;
  file.metadata["format"] = "maskmix-embeddings";
  Json::Array ids;
  for (const auto& id : set.ids) ids.emplace_back(id);
  file.metadata["ids"] = Json(std::move(ids)).dump();
  file.tensors.push_back(make_tensor("embeddings", DType::F32, {set.count, set.dim}, set.values.data()));
  write_safetensors(path, file);
}

EmbeddingSet read_embeddings(const std::string& path) {
  SafetensorsFile file = read_safetensors(path);
  auto it = file.metadata.find("format");
  if (it == file.metadata.end() || it->second != "maskmix-embeddings")
    fail(fmt::format("{}: not an embeddings file", path), "create it with `maskmix embed`");
  const TensorEntry& t = file.at("embeddings", path);
  if (t.dtype != DType::F32 || t.shape.size() != 2) fail(fmt::format("{}: embeddings must be F32 [N, D]", path), "re-create it with `maskmix embed`");
  EmbeddingSet set;
  set.count = static_cast<int>(t.shape[0]);
  set.dim = static_cast<int>(t.shape[1]);
  set.values.assign(t.as<float>(), t.as<float>() + t.numel());
  try {
    const Json ids = parse_json(file.metadata.at("ids"));  // keep alive: arr() refers into it
    for (const Json& id : ids.arr()) set.ids.push_back(id.str());
  } catch (const std::exception&) {
    fail(fmt::format("{}: bad ids metadata", path), "re-create it with `maskmix embed`");
  }
  if (static_cast<int>(set.ids.size()) != set.count) fail(fmt::format("{}: {} ids for {} rows", path, set.ids.size(), set.count), "re-create it with `maskmix embed`");
  set.metadata = file.metadata;
  return set;
}

}  // namespace mm
