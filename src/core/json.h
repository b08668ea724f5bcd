// A small JSON reader/writer: enough for JSONL stories, TinyStories JSON arrays and safetensors headers.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mm {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;

  Json() : value_(nullptr) {}
  Json(std::nullptr_t) : value_(nullptr) {}
  Json(bool b) : value_(b) {}
  Json(double d) : value_(d) {}
  Json(int64_t i) : value_(static_cast<double>(i)) {}
  Json(std::string s) : value_(std::move(s)) {}
  Json(const char* s) : value_(std::string(s)) {}
  Json(Array a) : value_(std::make_shared<Array>(std::move(a))) {}
  Json(Object o) : value_(std::make_shared<Object>(std::move(o))) {}

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(value_); }
  bool is_string() const { return std::holds_alternative<std::string>(value_); }
  bool is_number() const { return std::holds_alternative<double>(value_); }
  bool is_array() const { return std::holds_alternative<std::shared_ptr<Array>>(value_); }
  bool is_object() const { return std::holds_alternative<std::shared_ptr<Object>>(value_); }

  // Accessors throw std::runtime_error on a type mismatch; callers turn it into an mm::Error with context.
  const std::string& str() const;
  double num() const;
  bool boolean() const;
  const Array& arr() const;
  const Object& obj() const;
  const Json* find(const std::string& key) const;  // nullptr if absent or not an object

  std::string dump() const;

 private:
  std::variant<std::nullptr_t, bool, double, std::string, std::shared_ptr<Array>, std::shared_ptr<Object>> value_;
};

// Parses one JSON document; throws std::runtime_error with a byte offset on malformed input.
Json parse_json(std::string_view text);

// JSON Lines: one value per non-blank line, each with its location "path:line". A malformed line throws
// mm::Error naming it, with `hint` (what a line must look like) as the HINT.
struct JsonLine {
  Json value;
  std::string where;
};
std::vector<JsonLine> parse_json_lines(std::string_view content, const std::string& path, const std::string& hint);

// JSON string literal with escapes (for writers).
std::string json_quote(std::string_view text);

}  // namespace mm
