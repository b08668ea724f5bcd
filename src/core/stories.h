// Reads stories from the forms TinyStories users have: text with <|endoftext|> separators, JSONL with
// "text"/"story" (+ optional "summary"), and the TinyStories_all_data JSON arrays.
#pragma once
#include <string>
#include <vector>

namespace mm {

struct Story {
  std::string text;
  std::string summary;  // empty when the source has none
};

enum class StoryFormat { Auto, Text, Jsonl, JsonArray };
StoryFormat parse_story_format(const std::string& name);

// Throws mm::Error naming the file and line for invalid UTF-8 or malformed JSON.
std::vector<Story> read_stories(const std::string& path, StoryFormat format = StoryFormat::Auto);

// Offset of the first invalid UTF-8 byte, or npos when the text is valid.
size_t find_invalid_utf8(std::string_view text);

}  // namespace mm
