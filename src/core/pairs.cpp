// Pairs reader with line-numbered errors.
#include "core/pairs.h"

#include <unordered_set>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/stories.h"

namespace mm {

std::vector<Pair> read_pairs(const std::string& path) {
  const std::string content = read_text_file(path);
  if (size_t bad = find_invalid_utf8(content); bad != std::string::npos)
    fail(fmt::format("{}: invalid UTF-8 at byte {}", path, bad), "convert the file to UTF-8");
  std::vector<Pair> pairs;
  std::unordered_set<std::string> seen;
  for (const JsonLine& line : parse_json_lines(content, path, "each line must be {\"id\": ..., \"summary\": ..., \"story\": ...}")) {
    const Json& record = line.value;
    const std::string& where = line.where;
    Pair p;
    for (auto [field, target] : {std::pair{"id", &p.id}, std::pair{"summary", &p.summary}, std::pair{"story", &p.story}}) {
      const Json* value = record.find(field);
      if (!value || !value->is_string()) fail(fmt::format("{}: missing string field \"{}\"", where, field), "each line needs id, summary and story strings");
      *target = value->str();
    }
    if (!seen.insert(p.id).second) fail(fmt::format("{}: duplicate id \"{}\"", where, p.id), "ids must be unique within a pairs file");
    pairs.push_back(std::move(p));
  }
  if (pairs.empty()) fail(fmt::format("{}: no pairs", path), "give a JSONL file with one pair per line");
  return pairs;
}

}  // namespace mm
