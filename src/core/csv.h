// CSV output with a `.meta` sidecar (command line, git commit, config, card, date) for every result file.
#pragma once
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace mm {

// Appends rows to a CSV file; writes the header once (when the file is new or empty), so resumed runs
// continue the same file.
class CsvWriter {
 public:
  CsvWriter(const std::string& path, std::vector<std::string> columns, bool append = false);
  ~CsvWriter();
  CsvWriter(const CsvWriter&) = delete;
  CsvWriter& operator=(const CsvWriter&) = delete;
  void row(const std::vector<std::string>& values);  // flushed at once: nothing lost on a crash

 private:
  std::string path_;
  std::vector<std::string> columns_;
  std::FILE* out_ = nullptr;
};

std::string csv_quote(const std::string& field);

// What every .meta records; `extra` holds command-specific keys (model config, init, padding, ...).
struct RunMeta {
  std::string command_line;
  std::map<std::string, std::string> extra;
};
void write_meta(const std::string& csv_path, const RunMeta& meta, const std::string& card);

std::string git_commit();  // embedded at build time
std::string utc_now();     // ISO-8601
std::string cpu_name();    // from /proc/cpuinfo

}  // namespace mm
