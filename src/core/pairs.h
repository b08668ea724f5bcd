// Summary-story pairs for retrieval: JSONL lines {"id": ..., "summary": ..., "story": ...}.
#pragma once
#include <string>
#include <vector>

namespace mm {

struct Pair {
  std::string id, summary, story;
};

// Throws mm::Error naming the file and line for bad JSON, a missing field, or a duplicate id.
std::vector<Pair> read_pairs(const std::string& path);

}  // namespace mm
