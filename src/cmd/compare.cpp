// `maskmix compare RUN_DIR...`: paper-style tables from runs' train.csv/.meta: validation loss at equal
// steps, tokens, wall-clock and FLOPs (linear interpolation between evaluations), bits per byte, size,
// throughput and memory. Markdown on stdout, CSV with --out.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "cmd/cli.h"
#include "cmd/commands.h"
#include "cmd/compare.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"

namespace mm {

namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(field);
      field.clear();
    } else if (c != '\r') {
      field += c;
    }
  }
  out.push_back(field);
  return out;
}

std::string fmt_or_dash(double x, const char* spec = "{:.4f}") { return std::isnan(x) ? "-" : fmt::format(fmt::runtime(spec), x); }

}  // namespace

RunCurve load_run(const std::string& dir) {
  RunCurve run;
  run.dir = dir;
  const std::string csv = dir + "/train.csv", meta = dir + "/train.meta";
  const std::string text = read_text_file(csv);
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  const std::vector<std::string> header = split_csv_line(line);
  auto col = [&](const std::string& name) {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail(fmt::format("{}: no column '{}'", csv, name), "compare reads train.csv files written by `maskmix train`");
    return static_cast<size_t>(it - header.begin());
  };
  const size_t c_step = col("step"), c_tokens = col("tokens"), c_train = col("train_loss"), c_val = col("val_loss"), c_tps = col("tokens_per_s"),
               c_mem = col("mem_gb"), c_time = col("elapsed_s");
  size_t row_number = 1;
  while (std::getline(lines, line)) {
    ++row_number;
    if (line.empty()) continue;
    const auto f = split_csv_line(line);
    if (f.size() != header.size()) fail(fmt::format("{}:{}: {} fields, header has {}", csv, row_number, f.size(), header.size()), "the file is damaged");
    try {
      CurvePoint p;
      p.step = std::stod(f[c_step]);
      p.tokens = std::stod(f[c_tokens]);
      p.seconds = f[c_time].empty() ? NAN : std::stod(f[c_time]);
      p.train_loss = std::stod(f[c_train]);
      p.val_loss = f[c_val].empty() ? NAN : std::stod(f[c_val]);
      run.points.push_back(p);
      if (!f[c_tps].empty()) run.tokens_per_s_sum += std::stod(f[c_tps]), ++run.tokens_per_s_count;
      if (!f[c_mem].empty()) run.peak_mem_gb = std::max(run.peak_mem_gb, std::stod(f[c_mem]));
    } catch (const std::exception&) {
      fail(fmt::format("{}:{}: not a number", csv, row_number), "the file is damaged");
    }
  }
  if (run.points.empty()) fail(fmt::format("{}: no rows", csv), "the run logged nothing yet");
  std::istringstream metas(read_text_file(meta));
  while (std::getline(metas, line)) {
    const size_t colon = line.find(": ");
    if (colon != std::string::npos) run.meta[line.substr(0, colon)] = line.substr(colon + 2);
  }
  run.flops_per_token = run.meta.count("flops_per_token") ? std::stod(run.meta["flops_per_token"]) : NAN;
  // bytes per token of the validation text, from the data folder's manifest (when it is still there)
  if (run.meta.count("data") && file_exists(run.meta["data"] + "/manifest.json")) {
    try {
      const Json manifest = parse_json(read_text_file(run.meta["data"] + "/manifest.json"));
      const Json& valid = manifest.obj().at("valid");
      if (const Json* bytes = valid.find("bytes")) run.bytes_per_token = bytes->num() / valid.obj().at("tokens").num();
    } catch (const std::exception&) {
    }
  }
  return run;
}

double interpolate_val(const RunCurve& run, double x, CompareAxis axis) {
  std::vector<std::pair<double, double>> pts;
  for (const CurvePoint& p : run.points) {
    if (std::isnan(p.val_loss)) continue;
    double key = axis == CompareAxis::Step ? p.step : axis == CompareAxis::Tokens ? p.tokens : axis == CompareAxis::Seconds ? p.seconds : p.tokens * run.flops_per_token;
    if (!std::isnan(key)) pts.emplace_back(key, p.val_loss);
  }
  if (pts.empty() || x < pts.front().first - 1e-9 || x > pts.back().first + 1e-9) return NAN;
  for (size_t i = 1; i < pts.size(); ++i)
    if (x <= pts[i].first) {
      const double t = (x - pts[i - 1].first) / std::max(pts[i].first - pts[i - 1].first, 1e-300);
      return pts[i - 1].second + t * (pts[i].second - pts[i - 1].second);
    }
  return pts.back().second;
}

double last_key(const RunCurve& run, CompareAxis axis) {
  double best = NAN;
  for (const CurvePoint& p : run.points) {
    if (std::isnan(p.val_loss)) continue;
    best = axis == CompareAxis::Step ? p.step : axis == CompareAxis::Tokens ? p.tokens : axis == CompareAxis::Seconds ? p.seconds : p.tokens * run.flops_per_token;
  }
  return best;
}

int cmd_compare(int argc, char** argv) {
  cxxopts::Options options("maskmix compare", "Compare runs: validation loss at equal steps, tokens, wall-clock and FLOPs; bits per byte; size and speed.\n"
                                              "usage: maskmix compare RUN_DIR RUN_DIR... [options]");
  options.add_options()
      ("runs", "run folders", cxxopts::value<std::vector<std::string>>())
      ("at-step", "compare at this step (default: the last step every run evaluated)", cxxopts::value<double>()->default_value("0"))
      ("at-tokens", "compare at this many training tokens", cxxopts::value<double>()->default_value("0"))
      ("at-seconds", "compare at this training wall-clock", cxxopts::value<double>()->default_value("0"))
      ("at-flops", "compare at this many training FLOPs", cxxopts::value<double>()->default_value("0"))
      ("out", "also write the table as CSV here", cxxopts::value<std::string>()->default_value(""))
      ("force", "compare runs on different data or tokenizers anyway");
  options.parse_positional({"runs"});
  options.positional_help("RUN_DIR...");
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;
  if (!args.count("runs")) throw UsageError("give at least one run folder", "e.g. maskmix compare runs/mixer runs/llama");
  std::vector<RunCurve> runs;
  for (const std::string& dir : args["runs"].as<std::vector<std::string>>()) runs.push_back(load_run(dir));
  for (const RunCurve& r : runs) {
    const std::string a = runs[0].meta.count("tokenizer_hash") ? runs[0].meta.at("tokenizer_hash") : "", b = r.meta.count("tokenizer_hash") ? r.meta.at("tokenizer_hash") : "";
    const std::string da = runs[0].meta.count("data") ? runs[0].meta.at("data") : "", db = r.meta.count("data") ? r.meta.at("data") : "";
    if ((a != b || da != db) && !args.count("force"))
      fail(fmt::format("{} and {} were trained on different data or tokenizers ({} / {})", runs[0].dir, r.dir, da, db),
           "losses are only comparable on the same data; pass --force to compare anyway (bits per byte still apply)");
  }
  // Comparison points: given, or the largest value every run reached.
  std::map<CompareAxis, double> at;
  const std::pair<CompareAxis, const char*> axes[] = {{CompareAxis::Step, "at-step"}, {CompareAxis::Tokens, "at-tokens"}, {CompareAxis::Seconds, "at-seconds"},
                                                       {CompareAxis::Flops, "at-flops"}};
  for (auto [axis, name] : axes) {
    double x = args[name].as<double>();
    if (x <= 0) {
      x = INFINITY;
      for (const RunCurve& r : runs) x = std::min(x, last_key(r, axis));
    }
    at[axis] = x;
  }
  std::vector<std::string> columns = {"run", "model", "parameters", "steps", "tokens", "train_s", "tokens_per_s", "peak_mem_gb", "val_loss_end",
                                      "bpb_end", fmt::format("val@step={:.0f}", at[CompareAxis::Step]), fmt::format("val@tokens={:.3g}", at[CompareAxis::Tokens]),
                                      fmt::format("val@seconds={:.1f}", at[CompareAxis::Seconds]), fmt::format("val@flops={:.3g}", at[CompareAxis::Flops])};
  std::vector<std::vector<std::string>> rows;
  for (const RunCurve& r : runs) {
    const CurvePoint& last = r.points.back();
    double end_val = NAN;
    for (const CurvePoint& p : r.points)
      if (!std::isnan(p.val_loss)) end_val = p.val_loss;
    const double bpb = std::isnan(r.bytes_per_token) ? NAN : end_val / std::log(2.0) / r.bytes_per_token;
    rows.push_back({r.dir, r.meta.count("model") ? r.meta.at("model") : "?", r.meta.count("parameters") ? r.meta.at("parameters") : "?",
                    fmt::format("{:.0f}", last.step), fmt::format("{:.0f}", last.tokens), fmt_or_dash(last.seconds, "{:.1f}"),
                    r.tokens_per_s_count ? fmt::format("{:.0f}", r.tokens_per_s_sum / r.tokens_per_s_count) : "-", fmt::format("{:.3f}", r.peak_mem_gb),
                    fmt_or_dash(end_val), fmt_or_dash(bpb), fmt_or_dash(interpolate_val(r, at[CompareAxis::Step], CompareAxis::Step)),
                    fmt_or_dash(interpolate_val(r, at[CompareAxis::Tokens], CompareAxis::Tokens)),
                    fmt_or_dash(interpolate_val(r, at[CompareAxis::Seconds], CompareAxis::Seconds)),
                    fmt_or_dash(interpolate_val(r, at[CompareAxis::Flops], CompareAxis::Flops))});
  }
  std::string md = "|";
  for (const auto& c : columns) md += " " + c + " |";
  md += "\n|";
  for (size_t i = 0; i < columns.size(); ++i) md += "---|";
  md += "\n";
  for (const auto& r : rows) {
    md += "|";
    for (const auto& v : r) md += " " + v + " |";
    md += "\n";
  }
  std::cout << md;
  if (const std::string out = args["out"].as<std::string>(); !out.empty()) {
    CsvWriter csv(out, columns);
    for (const auto& r : rows) csv.row(r);
    write_meta(out, RunMeta{joined_command_line(argc, argv), {}}, "n/a (reads CSV)");
  }
  return 0;
}

}  // namespace mm
