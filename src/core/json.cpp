// A small recursive-descent JSON parser and writer (RFC 8259, \u escapes with surrogate pairs).
#include "core/json.h"

#include "core/error.h"

#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include <fmt/core.h>

namespace mm {

const std::string& Json::str() const {
  if (!is_string()) throw std::runtime_error("expected a string");
  return std::get<std::string>(value_);
}
bool Json::boolean() const {
  if (!std::holds_alternative<bool>(value_)) throw std::runtime_error("expected true or false");
  return std::get<bool>(value_);
}
double Json::num() const {
  if (!is_number()) throw std::runtime_error("expected a number");
  return std::get<double>(value_);
}
const Json::Array& Json::arr() const {
  if (!is_array()) throw std::runtime_error("expected an array");
  return *std::get<std::shared_ptr<Array>>(value_);
}
const Json::Object& Json::obj() const {
  if (!is_object()) throw std::runtime_error("expected an object");
  return *std::get<std::shared_ptr<Object>>(value_);
}
const Json* Json::find(const std::string& key) const {
  if (!is_object()) return nullptr;
  const Object& object = obj();
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Json document() {
    Json value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) error("trailing characters after the JSON value");
    return value;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;

  [[noreturn]] void error(const std::string& what) const {
    throw std::runtime_error(fmt::format("{} at byte {}", what, pos_));
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) ++pos_;
  }
  char peek() {
    skip_space();
    if (pos_ >= text_.size()) error("unexpected end of input");
    return text_[pos_];
  }
  void expect(char c) {
    if (peek() != c) error(fmt::format("expected '{}'", c));
    ++pos_;
  }
  bool consume_literal(std::string_view literal) {
    if (text_.substr(pos_, literal.size()) == literal) {
      pos_ += literal.size();
      return true;
    }
    return false;
  }

  Json parse_value(int depth) {
    if (depth > 256) error("nesting too deep");
    char c = peek();
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') return Json(parse_string());
    if (consume_literal("true")) return Json(true);
    if (consume_literal("false")) return Json(false);
    if (consume_literal("null")) return Json(nullptr);
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
    error(fmt::format("unexpected character '{}'", c));
  }

  Json parse_object(int depth) {
    expect('{');
    Json::Object object;
    if (peek() == '}') {
      ++pos_;
      return Json(std::move(object));
    }
    while (true) {
      if (peek() != '"') error("expected a string key");
      std::string key = parse_string();
      expect(':');
      object[key] = parse_value(depth + 1);
      char c = peek();
      ++pos_;
      if (c == '}') break;
      if (c != ',') error("expected ',' or '}'");
    }
    return Json(std::move(object));
  }

  Json parse_array(int depth) {
    expect('[');
    Json::Array array;
    if (peek() == ']') {
      ++pos_;
      return Json(std::move(array));
    }
    while (true) {
      array.push_back(parse_value(depth + 1));
      char c = peek();
      ++pos_;
      if (c == ']') break;
      if (c != ',') error("expected ',' or ']'");
    }
    return Json(std::move(array));
  }

  Json parse_number() {
    size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    while (pos_ < text_.size() && std::string_view("0123456789.eE+-").find(text_[pos_]) != std::string_view::npos) ++pos_;
    std::string token(text_.substr(start, pos_ - start));
    char* end = nullptr;
    double value = std::strtod(token.c_str(), &end);
    if (end != token.c_str() + token.size() || token == "-") error("malformed number");
    return Json(value);
  }

  unsigned parse_hex4() {
    if (pos_ + 4 > text_.size()) error("truncated \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_++];
      code <<= 4;
      if (h >= '0' && h <= '9') code |= h - '0';
      else if (h >= 'a' && h <= 'f') code |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') code |= h - 'A' + 10;
      else error("bad hex digit in \\u escape");
    }
    return code;
  }

  static void append_utf8(std::string& out, unsigned code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  std::string parse_string() {
    expect('"');
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) error("unterminated string");
      char c = text_[pos_++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) error("control character inside a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) error("unterminated escape");
      char e = text_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned code = parse_hex4();
          if (code >= 0xD800 && code < 0xDC00) {
            if (!consume_literal("\\u")) error("lone high surrogate");
            unsigned low = parse_hex4();
            if (low < 0xDC00 || low >= 0xE000) error("bad low surrogate");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          } else if (code >= 0xDC00 && code < 0xE000) {
            error("lone low surrogate");
          }
          append_utf8(out, code);
          break;
        }
        default: error(fmt::format("bad escape '\\{}'", e));
      }
    }
    return out;
  }
};

}  // namespace

Json parse_json(std::string_view text) { return Parser(text).document(); }

std::vector<JsonLine> parse_json_lines(std::string_view content, const std::string& path, const std::string& hint) {
  std::vector<JsonLine> lines;
  size_t start = 0, number = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string_view::npos) end = content.size();
    ++number;
    const std::string_view line = content.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    JsonLine parsed{{}, fmt::format("{}:{}", path, number)};
    try {
      parsed.value = parse_json(line);
    } catch (const std::exception& e) {
      fail(fmt::format("{}: malformed JSON line: {}", parsed.where, e.what()), hint);
    }
    lines.push_back(std::move(parsed));
  }
  return lines;
}

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        else out += c;
    }
  }
  return out + "\"";
}

std::string Json::dump() const {
  if (is_null()) return "null";
  if (std::holds_alternative<bool>(value_)) return std::get<bool>(value_) ? "true" : "false";
  if (is_number()) {
    double d = num();
    if (std::floor(d) == d && std::fabs(d) < 9e15) return fmt::format("{}", static_cast<int64_t>(d));
    return fmt::format("{}", d);
  }
  if (is_string()) return json_quote(str());
  std::string out;
  if (is_array()) {
    out = "[";
    for (size_t i = 0; i < arr().size(); ++i) out += (i ? "," : "") + arr()[i].dump();
    return out + "]";
  }
  out = "{";
  bool first = true;
  for (const auto& [key, value] : obj()) {
    out += (first ? "" : ",") + json_quote(key) + ":" + value.dump();
    first = false;
  }
  return out + "}";
}

}  // namespace mm
