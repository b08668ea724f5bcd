// `maskmix bench`: times full training steps (forward, backward, clip norm, AdamW) of named configs on
// synthetic tokens after warm-up; median over steps; CSV with tokens/s, TFLOP/s, MFU and peak memory.
// step_ms is the host's wall clock around a whole step (token uploads, loss read, clipping and AdamW
// included); device_ms is the device's own clock around the model's forward and backward (Model::
// time_steps_with; idle gaps inside included), where the device has one.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <sstream>

#include "cmd/cli.h"
#include "cmd/commands.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/flops.h"
#include "model/model.h"
#include "ops/backend.h"
#include "ops/profiled_ops.h"

namespace mm {

namespace {
// Prints the ops that take the most time per step and writes every row to the profile CSV.
void print_profile(const std::vector<OpTiming>& timings, int steps, double step_seconds, const std::string& config, int batch, const std::string& card,
                   CsvWriter& csv) {
  double total = 0;
  for (const OpTiming& t : timings) total += t.seconds;
  std::cout << fmt::format("  profile of {} ({} steps, each op synchronized): {:.2f} ms per step in ops, {:.2f} ms unprofiled\n", config, steps,
                           1e3 * total / steps, 1e3 * step_seconds);
  std::cout << fmt::format("  {:<20} {:<26} {:>6} {:>9} {:>7}\n", "op", "shape", "calls", "ms/step", "share");
  double shown = 0;
  for (const OpTiming& t : timings) {
    const double share = total > 0 ? t.seconds / total : 0;
    csv.row({config, std::to_string(batch), t.op, t.shape, fmt::format("{:.2f}", static_cast<double>(t.calls) / steps),
             fmt::format("{:.4f}", 1e3 * t.seconds / steps), fmt::format("{:.4f}", share), card});
    if (shown < 0.95) {
      std::cout << fmt::format("  {:<20} {:<26} {:>6.1f} {:>9.3f} {:>6.1f}%\n", t.op, t.shape, static_cast<double>(t.calls) / steps,
                               1e3 * t.seconds / steps, 100 * share);
      shown += share;
    }
  }
}
}  // namespace

int cmd_bench(int argc, char** argv) {
  cxxopts::Options options("maskmix bench", "Time training steps of model configs on synthetic tokens (median after warm-up).");
  options.add_options()
      ("configs", "comma-separated model descriptors",
       cxxopts::value<std::string>()->default_value("mixer:d512:l8:c512,mixer:d1024:l8:c512,llama:d512:l8:h4:c512,llama:d1024:l8:h8:c512"))
      ("batch", "sequences per step", cxxopts::value<int>()->default_value("32"))
      ("steps", "timed steps per config", cxxopts::value<int>()->default_value("20"))
      ("warmup-steps", "untimed steps first", cxxopts::value<int>()->default_value("3"))
      ("device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cuda"))
      ("precision", "CUDA matmuls: bf16, tf32 or fp32", cxxopts::value<std::string>()->default_value("bf16"))
      ("vocab", "vocabulary size", cxxopts::value<int>()->default_value("4096"))
      ("peak-tflops", "dense peak for MFU (H100 SXM bf16: 989)", cxxopts::value<double>()->default_value("989"))
      ("recompute", "recompute feed-forward activations (and an unfused attention's probabilities) in backward instead of storing them (less memory)",
       cxxopts::value<bool>()->default_value("false"))
      ("profile", "after timing, profile this many more steps per op (each op synchronized; 0 = off)",
       cxxopts::value<int>()->default_value("0"))
      ("profile-out", "CSV for the per-op profile", cxxopts::value<std::string>()->default_value("results/profile.csv"))
      ("out", "CSV file to write", cxxopts::value<std::string>()->default_value("results/bench.csv"));
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;
  const int batch = args["batch"].as<int>(), steps = args["steps"].as<int>(), warmup = args["warmup-steps"].as<int>();
  const int profile_steps = args["profile"].as<int>();
  if (batch <= 0 || steps <= 0 || warmup < 0 || profile_steps < 0)
    throw UsageError("--batch and --steps must be positive, --warmup-steps and --profile not negative", "e.g. --batch 32 --steps 20");
  std::vector<std::string> configs;
  std::stringstream list(args["configs"].as<std::string>());
  for (std::string c; std::getline(list, c, ',');)
    if (!c.empty()) configs.push_back(c);

  const Device device = parse_device(args["device"].as<std::string>());
  const Precision precision = parse_precision(args["precision"].as<std::string>());
  const bool recompute = args["recompute"].as<bool>();
  const std::string out_path = args["out"].as<std::string>(), profile_path = args["profile-out"].as<std::string>();
  // The second MFU column divides by what a large dense GEMM reaches on this card at this precision.
  const double gemm_tflops = make_backend(device, precision)->matmul_tflops(8192);
  if (gemm_tflops > 0) std::cout << fmt::format("dense 8192^3 GEMM at {}: {:.1f} TFLOP/s (the MFU_gemm reference)\n", precision_name(precision), gemm_tflops);
  CsvWriter csv(out_path, {"config", "batch", "tokens_per_s", "step_ms", "tflops", "mfu", "mfu_gemm", "peak_mem_gb", "card", "device_ms"});
  std::unique_ptr<CsvWriter> profile_csv;
  if (profile_steps > 0)
    profile_csv = std::make_unique<CsvWriter>(profile_path, std::vector<std::string>{"config", "batch", "op", "shape", "calls_per_step", "ms_per_step", "share", "card"});
  std::cout << fmt::format("{:<28} {:>6} {:>12} {:>10} {:>10} {:>8} {:>7} {:>9} {:>8}\n", "config", "batch", "tokens/s", "step ms", "device ms", "TFLOP/s", "MFU",
                           "MFU_gemm", "mem GB");
  for (const std::string& descriptor : configs) {
    ModelConfig config = ModelConfig::parse(descriptor, args["vocab"].as<int>());
    // a fresh backend per config, so its peak memory is this config's alone
    auto backend = make_backend(device, precision);
    ProfiledOps<float> ops(*backend);
    if (&descriptor == &configs.front()) {
      write_meta(out_path, RunMeta{joined_command_line(argc, argv), {}}, ops.card());
      if (profile_csv) write_meta(profile_path, RunMeta{joined_command_line(argc, argv), {}}, ops.card());
    }
    Model<float> model(config, ops, batch, recompute);
    model.init_params(1);
    const size_t n = model.num_params();
    DeviceArray<float, float> m(ops, n), v(ops, n);
    Rng rng(2);
    std::vector<int32_t> tokens(static_cast<size_t>(batch) * config.n_ctx), targets(tokens.size());
    for (auto& t : tokens) t = static_cast<int32_t>(rng.below(config.vocab));
    for (auto& t : targets) t = static_cast<int32_t>(rng.below(config.vocab));
    std::vector<double> times, device_times;
    std::unique_ptr<Stopwatch> stopwatch = ops.stopwatch();
    model.time_steps_with(stopwatch.get());
    auto train_step = [&](int step) {
      model.train_step(tokens.data(), targets.data(), batch);
      const double norm = std::sqrt(ops.sum_squares(model.grad_data(), n));
      ops.adamw(model.param_data(), model.grad_data(), m.get(), v.get(), n, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, step,
                norm > 1.0 ? static_cast<float>(1.0 / norm) : 1.0f);
      ops.synchronize();
    };
    for (int s = 0; s < warmup + steps; ++s) {
      auto t0 = std::chrono::steady_clock::now();
      train_step(s + 1);
      if (s >= warmup) {
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (stopwatch) device_times.push_back(stopwatch->seconds());
      }
      std::cerr << fmt::format("\rbench: {} step {}/{}   ", descriptor, s + 1, warmup + steps) << std::flush;
    }
    std::cerr << "\r" << std::string(60, ' ') << "\r";
    std::sort(times.begin(), times.end());
    std::sort(device_times.begin(), device_times.end());
    const double median = times[times.size() / 2];
    const std::string device_ms = device_times.empty() ? "" : fmt::format("{:.2f}", 1e3 * device_times[device_times.size() / 2]);
    const double tokens_per_s = batch * config.n_ctx / median;
    const double tflops = tokens_per_s * training_flops_per_token(config, model.params()) / 1e12;
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    const double mem_gb = ops.device() == Device::Cpu ? usage.ru_maxrss / 1e6 : ops.peak_bytes() / 1e9;
    const double mfu = ops.device() == Device::Cuda ? tflops / args["peak-tflops"].as<double>() : 0.0;
    const std::string mfu_gemm = gemm_tflops > 0 ? fmt::format("{:.4f}", tflops / gemm_tflops) : "";
    csv.row({config.descriptor(), std::to_string(batch), fmt::format("{:.0f}", tokens_per_s), fmt::format("{:.2f}", median * 1e3),
             fmt::format("{:.4f}", tflops), ops.device() == Device::Cuda ? fmt::format("{:.4f}", mfu) : "", mfu_gemm, fmt::format("{:.3f}", mem_gb),
             ops.card(), device_ms});
    std::cout << fmt::format("{:<28} {:>6} {:>12.0f} {:>10.1f} {:>10} {:>8.3f} {:>7} {:>9} {:>8.2f}\n", descriptor, batch, tokens_per_s, median * 1e3,
                             device_ms.empty() ? "-" : device_ms, tflops,
                             ops.device() == Device::Cuda ? fmt::format("{:.1f}%", 100 * mfu) : "-",
                             gemm_tflops > 0 ? fmt::format("{:.1f}%", 100 * tflops / gemm_tflops) : "-", mem_gb);
    if (profile_steps > 0) {
      ops.reset();
      ops.set_enabled(true);
      for (int s = 0; s < profile_steps; ++s) train_step(warmup + steps + s + 1);
      ops.set_enabled(false);
      print_profile(ops.timings(), profile_steps, median, descriptor, batch, ops.card(), *profile_csv);
    }
  }
  if (profile_steps > 0) std::cout << "per-op profile written to " << profile_path << "\n";
  return 0;
}

}  // namespace mm
