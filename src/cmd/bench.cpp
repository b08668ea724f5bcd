// `maskmix bench`: times full training steps (forward, backward, clip norm, AdamW) of named configs on
// synthetic tokens after warm-up; median over steps; CSV with tokens/s, TFLOP/s, MFU and peak memory.
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

namespace mm {

int cmd_bench(int argc, char** argv) {
  cxxopts::Options options("maskmix bench", "Time training steps of model configs on synthetic tokens (median after warm-up).");
  options.add_options()
      ("configs", "comma-separated model descriptors",
       cxxopts::value<std::string>()->default_value("mixer:d512:l8:c512,mixer:d1024:l8:c512,llama:d512:l8:h4:c512,llama:d1024:l8:h8:c512"))
      ("batch", "sequences per step", cxxopts::value<int>()->default_value("32"))
      ("steps", "timed steps per config", cxxopts::value<int>()->default_value("20"))
      ("warmup-steps", "untimed steps first", cxxopts::value<int>()->default_value("3"))
      ("device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cuda"))
      ("precision", "CUDA matmuls: tf32 or fp32", cxxopts::value<std::string>()->default_value("tf32"))
      ("vocab", "vocabulary size", cxxopts::value<int>()->default_value("4096"))
      ("peak-tflops", "dense peak for MFU (H100 SXM bf16: 989)", cxxopts::value<double>()->default_value("989"))
      ("out", "CSV file to write", cxxopts::value<std::string>()->default_value("results/bench.csv"));
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;
  const int batch = args["batch"].as<int>(), steps = args["steps"].as<int>(), warmup = args["warmup-steps"].as<int>();
  if (batch <= 0 || steps <= 0 || warmup < 0) throw UsageError("--batch and --steps must be positive", "e.g. --batch 32 --steps 20");
  std::vector<std::string> configs;
  std::stringstream list(args["configs"].as<std::string>());
  for (std::string c; std::getline(list, c, ',');)
    if (!c.empty()) configs.push_back(c);

  auto backend = make_backend(parse_device(args["device"].as<std::string>()), args["precision"].as<std::string>() == "fp32");
  Ops<float>& ops = *backend;
  const std::string out_path = args["out"].as<std::string>();
  CsvWriter csv(out_path, {"config", "batch", "tokens_per_s", "step_ms", "tflops", "mfu", "peak_mem_gb", "card"});
  write_meta(out_path, RunMeta{joined_command_line(argc, argv), {}}, ops.card());
  std::cout << fmt::format("{:<28} {:>6} {:>12} {:>10} {:>8} {:>7} {:>8}\n", "config", "batch", "tokens/s", "step ms", "TFLOP/s", "MFU", "mem GB");
  for (const std::string& descriptor : configs) {
    ModelConfig config = ModelConfig::parse(descriptor, args["vocab"].as<int>());
    Model<float> model(config, ops, batch);
    model.init_params(1);
    const size_t n = model.num_params();
    DeviceArray<float, float> m(ops, n), v(ops, n);
    Rng rng(2);
    std::vector<int32_t> tokens(static_cast<size_t>(batch) * config.n_ctx), targets(tokens.size());
    for (auto& t : tokens) t = static_cast<int32_t>(rng.below(config.vocab));
    for (auto& t : targets) t = static_cast<int32_t>(rng.below(config.vocab));
    std::vector<double> times;
    for (int s = 0; s < warmup + steps; ++s) {
      auto t0 = std::chrono::steady_clock::now();
      model.zero_grad();
      model.forward(tokens.data(), targets.data(), batch, true);
      model.backward();
      const double norm = std::sqrt(ops.sum_squares(model.grad_data(), n));
      ops.adamw(model.param_data(), model.grad_data(), m.get(), v.get(), n, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, s + 1,
                norm > 1.0 ? static_cast<float>(1.0 / norm) : 1.0f);
      ops.synchronize();
      if (s >= warmup) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      std::cerr << fmt::format("\rbench: {} step {}/{}   ", descriptor, s + 1, warmup + steps) << std::flush;
    }
    std::cerr << "\r" << std::string(60, ' ') << "\r";
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    const double tokens_per_s = batch * config.n_ctx / median;
    const double tflops = tokens_per_s * training_flops_per_token(config, model.params()) / 1e12;
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    const double mem_gb = ops.device() == Device::Cpu ? usage.ru_maxrss / 1e6 : ops.peak_bytes() / 1e9;
    const double mfu = ops.device() == Device::Cuda ? tflops / args["peak-tflops"].as<double>() : 0.0;
    csv.row({config.descriptor(), std::to_string(batch), fmt::format("{:.0f}", tokens_per_s), fmt::format("{:.2f}", median * 1e3),
             fmt::format("{:.4f}", tflops), ops.device() == Device::Cuda ? fmt::format("{:.4f}", mfu) : "", fmt::format("{:.3f}", mem_gb), ops.card()});
    std::cout << fmt::format("{:<28} {:>6} {:>12.0f} {:>10.1f} {:>8.3f} {:>7} {:>8.2f}\n", descriptor, batch, tokens_per_s, median * 1e3, tflops,
                             ops.device() == Device::Cuda ? fmt::format("{:.1f}%", 100 * mfu) : "-", mem_gb);
  }
  return 0;
}

}  // namespace mm
