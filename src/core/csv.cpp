// CSV writer and run metadata.
#include "core/csv.h"

#include <chrono>
#include <ctime>
#include <fstream>

#include "core/error.h"
#include "core/fileio.h"

#ifndef MASKMIX_COMMIT
#define MASKMIX_COMMIT "unknown"
#endif

namespace mm {

std::string csv_quote(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

CsvWriter::CsvWriter(const std::string& path, std::vector<std::string> columns, bool append) : path_(path), columns_(std::move(columns)) {
  bool write_header = !append || !file_exists(path);
  out_ = std::fopen(path.c_str(), append ? "ab" : "wb");
  if (!out_) fail(fmt::format("{}: cannot write", path), "check that the output folder exists and is writable");
  if (append && std::ftell(out_) == 0) write_header = true;
  if (write_header) row(columns_);
}

CsvWriter::~CsvWriter() {
  if (out_) std::fclose(out_);
}

void CsvWriter::row(const std::vector<std::string>& values) {
  if (values.size() != columns_.size())
    fail(fmt::format("{}: row has {} fields, header has {}", path_, values.size(), columns_.size()), "this is a bug in maskmix; please report it");
  std::string line;
  for (size_t i = 0; i < values.size(); ++i) line += (i ? "," : "") + csv_quote(values[i]);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

std::string git_commit() { return MASKMIX_COMMIT; }

std::string utc_now() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buffer;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown cpu";
}

void write_meta(const std::string& csv_path, const RunMeta& meta, const std::string& card) {
  std::string path = csv_path.substr(0, csv_path.rfind('.')) + ".meta";
  std::string text = fmt::format("command: {}\ncommit: {}\ncard: {}\ndate: {}\n", meta.command_line, git_commit(), card, utc_now());
  for (const auto& [key, value] : meta.extra) text += fmt::format("{}: {}\n", key, value);
  write_file_atomic(path, text);
}

}  // namespace mm
