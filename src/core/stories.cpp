// Story readers for plain text, JSONL and JSON-array inputs.
#include "core/stories.h"

#include <algorithm>

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"

namespace mm {

StoryFormat parse_story_format(const std::string& name) {
  if (name == "auto") return StoryFormat::Auto;
  if (name == "text") return StoryFormat::Text;
  if (name == "jsonl") return StoryFormat::Jsonl;
  if (name == "json") return StoryFormat::JsonArray;
  throw UsageError(fmt::format("unknown input format '{}'", name), "use --format auto, text, jsonl or json");
}

size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) { ++i; continue; }
    int extra;
    uint32_t code;
    if ((c & 0xE0) == 0xC0) { extra = 1; code = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { extra = 2; code = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { extra = 3; code = c & 0x07; }
    else return i;
    if (i + extra >= n) return i;
    for (int k = 1; k <= extra; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      code = (code << 6) | (s[i + k] & 0x3F);
    }
    static const uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (code < kMin[extra] || code > 0x10FFFF || (code >= 0xD800 && code < 0xE000)) return i;
    i += extra + 1;
  }
  return std::string_view::npos;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

size_t line_of(std::string_view text, size_t offset) {
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<long>(offset), '\n'));
}

Story story_from_object(const Json& object, const std::string& where) {
  if (!object.is_object()) fail(fmt::format("{}: expected a JSON object", where), "each record must look like {\"story\": \"...\"}");
  const Json* text = object.find("story");
  if (!text) text = object.find("text");
  if (!text || !text->is_string())
    fail(fmt::format("{}: no \"story\" or \"text\" string field", where), "each record needs a \"story\" (or \"text\") field");
  Story story{std::string(trim(text->str())), {}};
  if (const Json* summary = object.find("summary"); summary && summary->is_string()) story.summary = summary->str();
  return story;
}

}  // namespace

std::vector<Story> read_stories(const std::string& path, StoryFormat format) {
  std::string content = read_text_file(path);
  if (trim(content).empty()) fail(fmt::format("{}: file is empty", path), "give a file with at least one story");
  if (size_t bad = find_invalid_utf8(content); bad != std::string_view::npos)
    fail(fmt::format("{}: invalid UTF-8 at byte {} (line {})", path, bad, line_of(content, bad)),
         "convert the file to UTF-8 (e.g. iconv -f cp1252 -t utf-8)");
  if (format == StoryFormat::Auto) {
    std::string_view head = trim(content);
    if (path.ends_with(".jsonl")) format = StoryFormat::Jsonl;
    else if (head.front() == '[') format = StoryFormat::JsonArray;
    else if (head.front() == '{') format = StoryFormat::Jsonl;
    else format = StoryFormat::Text;
  }

  std::vector<Story> stories;
  if (format == StoryFormat::Text) {
    constexpr std::string_view kSeparator = "<|endoftext|>";
    std::string_view rest = content;
    while (!rest.empty()) {
      size_t at = rest.find(kSeparator);
      std::string_view piece = trim(rest.substr(0, at));
      if (!piece.empty()) stories.push_back({std::string(piece), {}});
      if (at == std::string_view::npos) break;
      rest.remove_prefix(at + kSeparator.size());
    }
  } else if (format == StoryFormat::Jsonl) {
    for (const JsonLine& line : parse_json_lines(content, path, "each line must be one JSON object; fix or delete that line"))
      stories.push_back(story_from_object(line.value, line.where));
  } else {
    Json document;
    try {
      document = parse_json(content);
    } catch (const std::exception& e) {
      fail(fmt::format("{}: malformed JSON: {}", path, e.what()), "the file must be one JSON array of objects with a \"story\" field");
    }
    if (!document.is_array()) fail(fmt::format("{}: expected a JSON array", path), "TinyStories_all_data files are arrays of {\"story\": ...} objects");
    for (size_t i = 0; i < document.arr().size(); ++i)
      stories.push_back(story_from_object(document.arr()[i], fmt::format("{}: element {}", path, i)));
  }
  stories.erase(std::remove_if(stories.begin(), stories.end(), [](const Story& s) { return s.text.empty(); }), stories.end());
  if (stories.empty()) fail(fmt::format("{}: no stories found", path), "stories are separated by <|endoftext|> lines, or given as JSON/JSONL");
  return stories;
}

}  // namespace mm
