// Embedding files written by `maskmix embed`: safetensors with "embeddings" [N, D] (F32) and the ids and
// provenance (model, field, index, pooling) in __metadata__.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace mm {

struct EmbeddingSet {
  int count = 0, dim = 0;
  std::vector<float> values;  // [count, dim]
  std::vector<std::string> ids;
  std::map<std::string, std::string> metadata;
  const float* row(int i) const { return values.data() + static_cast<size_t>(i) * dim; }
};

void write_embeddings(const std::string& path, const EmbeddingSet& set);
EmbeddingSet read_embeddings(const std::string& path);

}  // namespace mm
