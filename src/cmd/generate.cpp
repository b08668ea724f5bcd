// `maskmix generate`: sample text from a checkpoint, by incremental decoding (KV cache / cached mixer
// rows, one row per layer and token) or by a full forward per token; --mode both checks they agree.
#include <chrono>
#include <iostream>

#include "cmd/cli.h"
#include "cmd/commands.h"
#include "cmd/model_source.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/tokenizer.h"
#include "model/decoder.h"
#include "model/model.h"
#include "ops/backend.h"
#include "ops/cpu_ops.h"

namespace mm {

namespace {

struct Sampling {
  double temperature = 0.8, top_p = 1.0;
  int top_k = 0, max_tokens = 100;
  uint64_t seed = 1;
};

std::vector<int32_t> run_incremental(const Checkpoint& ckpt, const ParamTable& table, const std::vector<int32_t>& prompt, const Sampling& s) {
  IncrementalDecoder decoder(ckpt.config, table, ckpt.params);
  Rng rng(s.seed);
  std::vector<float> logits;
  for (int32_t t : prompt) logits = decoder.step(t);
  std::vector<int32_t> out;
  while (static_cast<int>(out.size()) < s.max_tokens) {
    out.push_back(sample_token(logits, s.temperature, s.top_k, s.top_p, rng));
    if (decoder.position() >= ckpt.config.n_ctx) break;
    logits = decoder.step(out.back());
  }
  return out;
}

std::vector<int32_t> run_full(Model<float>& model, const std::vector<int32_t>& prompt, const Sampling& s, int32_t pad) {
  const int T = model.config().n_ctx, V = model.config().vocab;
  std::vector<int32_t> row(T, pad);
  std::copy(prompt.begin(), prompt.end(), row.begin());
  int length = static_cast<int>(prompt.size());
  Rng rng(s.seed);
  std::vector<float> logits(V);
  std::vector<int32_t> out;
  while (static_cast<int>(out.size()) < s.max_tokens) {
    model.forward(row.data(), nullptr, 1);  // right padding: later pads cannot change position length-1
    model.ops().to_host(logits.data(), model.logits() + static_cast<size_t>(length - 1) * V, V * sizeof(float));
    out.push_back(sample_token(logits, s.temperature, s.top_k, s.top_p, rng));
    if (length >= T) break;
    row[length++] = out.back();
  }
  return out;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  cxxopts::Options options("maskmix generate", "Sample text from a checkpoint (positions start at 0; the window is the model's n_ctx).");
  add_model_source_options(options);
  options.add_options()
      ("data", "prepared data folder (its tokenizer)", cxxopts::value<std::string>()->default_value("data/ts"))
      ("prompt", "text to continue", cxxopts::value<std::string>()->default_value("Once upon a time"))
      ("max-tokens", "tokens to generate", cxxopts::value<int>()->default_value("100"))
      ("temperature", "0 = greedy", cxxopts::value<double>()->default_value("0.8"))
      ("top-k", "keep the k most likely tokens (0 = all)", cxxopts::value<int>()->default_value("0"))
      ("top-p", "nucleus sampling mass", cxxopts::value<double>()->default_value("1.0"))
      ("mode", "incremental (cached rows, CPU), full (a full forward per token, any device) or both (and check they agree)",
       cxxopts::value<std::string>()->default_value("incremental"))
      ("device", "cpu or cuda (full mode)", cxxopts::value<std::string>()->default_value("cpu"));
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;
  Sampling s;
  s.temperature = args["temperature"].as<double>();
  s.top_k = args["top-k"].as<int>();
  s.top_p = args["top-p"].as<double>();
  s.max_tokens = args["max-tokens"].as<int>();
  s.seed = args["seed"].as<uint64_t>();
  const std::string mode = args["mode"].as<std::string>();
  if (mode != "incremental" && mode != "full" && mode != "both") throw UsageError(fmt::format("unknown mode '{}'", mode), "use --mode incremental, full or both");
  if (s.max_tokens <= 0 || s.top_k < 0 || !(s.top_p > 0 && s.top_p <= 1)) throw UsageError("bad sampling options", "--max-tokens > 0, --top-k >= 0, 0 < --top-p <= 1");

  PreparedData data = PreparedData::open(args["data"].as<std::string>());
  Tokenizer tokenizer(data.tokenizer_path);
  Checkpoint ckpt = model_from_args(args, tokenizer.vocab_size());
  CpuOps<float> init_ops;
  if (ckpt.params.empty()) {  // --untrained: materialise the initial weights on the host
    Model<float> init(ckpt.config, init_ops, 1);
    init.init_params(s.seed);
    ckpt.params = init.save_params();
  }
  const ParamTable table = Model<float>::layout(ckpt.config);
  std::vector<int> ids = tokenizer.encode(args["prompt"].as<std::string>());
  if (ids.empty()) throw UsageError("the prompt is empty", "give --prompt some text");
  if (static_cast<int>(ids.size()) >= ckpt.config.n_ctx) fail(fmt::format("the prompt has {} tokens; the model's window is {}", ids.size(), ckpt.config.n_ctx), "shorten the prompt");
  const std::vector<int32_t> prompt(ids.begin(), ids.end());

  std::vector<int32_t> incremental, full;
  double inc_s = 0, full_s = 0;
  if (mode != "full") {
    auto t0 = std::chrono::steady_clock::now();
    incremental = run_incremental(ckpt, table, prompt, s);
    inc_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (mode != "incremental") {
    auto backend = make_backend(parse_device(args["device"].as<std::string>()));
    Model<float> model(ckpt.config, *backend, 1);
    model.load_params(ckpt.params);
    auto t0 = std::chrono::steady_clock::now();
    full = run_full(model, prompt, s, data.train->header().pad_id);
    full_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const std::vector<int32_t>& shown = mode == "full" ? full : incremental;
  std::cout << args["prompt"].as<std::string>() << tokenizer.decode(std::vector<int>(shown.begin(), shown.end())) << "\n";
  if (!incremental.empty())
    std::cerr << fmt::format("incremental: {} tokens in {:.3f} s ({:.1f} tokens/s)\n", incremental.size(), inc_s, incremental.size() / inc_s);
  if (!full.empty()) std::cerr << fmt::format("full recompute: {} tokens in {:.3f} s ({:.1f} tokens/s)\n", full.size(), full_s, full.size() / full_s);
  if (mode == "both") {
    if (incremental != full)
      fail("incremental decoding and full recompute produced different tokens", "with sampling, near-ties can differ by rounding; compare with --temperature 0");
    std::cerr << "incremental == full recompute: identical tokens\n";
  }
  return 0;
}

}  // namespace mm
