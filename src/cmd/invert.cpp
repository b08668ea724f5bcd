// `maskmix invert`: how much of its input a model's hidden states keep (the paper's claim 1). Starting
// from noise, gradient descent on an input embedding a minimises |O* - f(a)| where O* = blocks(W_E[t]);
// a is decoded back to tokens (pseudo-inverse of W_E, top-k) and scored with the paper's Hamming metric.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "cmd/cli.h"
#include "cmd/commands.h"
#include "core/batcher.h"
#include "core/csv.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "core/tokenizer.h"
#include "model/checkpoint.h"
#include "model/decode.h"
#include "model/model.h"
#include "ops/backend.h"

namespace mm {

namespace {

struct Probe {
  std::string label;  // checkpoint path or "untrained"
  int64_t step = 0;
  ModelConfig config;
  std::vector<float> params;  // empty: initialise from seed
};

struct Stories {
  int count = 0, n_ctx = 0;
  std::vector<int32_t> tokens;              // [count, n_ctx]
  std::vector<std::pair<int, int>> real;    // real-token range per story
};

struct SearchSettings {
  int steps = 500, layer = -1, topk = 5, drop_first = 0, loss_kind = 0;
  double lr = 0.02, lr_end = 0.002;
  bool adam = false, embedding_scale_init = false, lr_scale_auto = false;
  DecodeMethod decode = DecodeMethod::Pinv;
  uint64_t seed = 1;
};

int loss_kind(const std::string& name) {
  if (name == "l1") return 0;
  if (name == "l2") return 1;
  if (name == "cosine") return 2;
  throw UsageError(fmt::format("unknown loss '{}'", name), "use --loss l1, l2 or cosine");
}

std::vector<Probe> probes_from_args(const cxxopts::ParseResult& args, int vocab) {
  std::vector<Probe> probes;
  const std::string untrained = args["untrained"].as<std::string>(), checkpoint = args["checkpoint"].as<std::string>(),
                    checkpoints = args["checkpoints"].as<std::string>();
  if ((!untrained.empty()) + (!checkpoint.empty()) + (!checkpoints.empty()) != 1)
    throw UsageError("give exactly one of --checkpoint FILE, --checkpoints RUN_DIR or --untrained DESCRIPTOR",
                     "e.g. --untrained mixer:d512:l8:c512 or --checkpoint runs/mixer/model.safetensors");
  auto load = [&](const std::string& path) {
    Checkpoint ckpt = load_weights(path);
    Probe p{path, 0, ckpt.config, std::move(ckpt.params)};
    if (auto it = ckpt.metadata.find("step"); it != ckpt.metadata.end()) p.step = std::stoll(it->second);
    return p;
  };
  if (!untrained.empty()) {
    Probe p{"untrained", 0, ModelConfig::parse(untrained, vocab), {}};
    p.config.init = parse_init(args["init"].as<std::string>());
    probes.push_back(std::move(p));
  } else if (!checkpoint.empty()) {
    probes.push_back(load(checkpoint));
  } else {
    std::vector<std::string> files;
    const std::string folder = checkpoints + "/checkpoints";
    if (std::filesystem::is_directory(folder))
      for (const auto& entry : std::filesystem::directory_iterator(folder))
        if (entry.path().extension() == ".safetensors") files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
    if (files.empty() && file_exists(checkpoints + "/model.safetensors")) files.push_back(checkpoints + "/model.safetensors");
    if (files.empty())
      fail(fmt::format("{}: no checkpoints found", checkpoints), "train with --keep-checkpoints to keep one per --ckpt-every steps");
    for (const auto& f : files) probes.push_back(load(f));
  }
  return probes;
}

Stories load_stories(const cxxopts::ParseResult& args, const PreparedData* data, const std::string& tokenizer_path, int n_ctx, int32_t pad) {
  Stories s;
  s.n_ctx = n_ctx;
  const bool left = args["padding"].as<std::string>() == "left";
  if (args["padding"].as<std::string>() != "left" && args["padding"].as<std::string>() != "right")
    throw UsageError("invert pads stories left or right", "use --padding left or right");
  std::vector<std::vector<uint16_t>> seqs;
  if (!args["text"].as<std::string>().empty()) {
    Tokenizer tok(tokenizer_path);
    std::vector<int> ids = tok.encode(args["text"].as<std::string>());
    seqs.emplace_back(ids.begin(), ids.end());
  } else {
    if (!data) fail("no stories to invert", "give --data DIR (a prepared folder; its first --stories validation stories are used) or --text");
    const int n = std::min<int>(args["stories"].as<int>(), static_cast<int>(data->valid->n_docs()));
    for (int d = 0; d < n; ++d)
      seqs.emplace_back(data->valid->tokens() + data->valid->doc_begin(d), data->valid->tokens() + data->valid->doc_end(d));
  }
  s.count = static_cast<int>(seqs.size());
  s.tokens.resize(static_cast<size_t>(s.count) * n_ctx);
  for (int i = 0; i < s.count; ++i)
    s.real.push_back(pad_story(seqs[i].data(), seqs[i].size(), s.tokens.data() + static_cast<size_t>(i) * n_ctx, n_ctx, pad, left));
  return s;
}

}  // namespace

int cmd_invert(int argc, char** argv) {
  cxxopts::Options options("maskmix invert",
                           "Invert hidden states by gradient descent on the input embedding (the paper's representation test).\n"
                           "Defaults are the paper's protocol: start from N(0,1), 500 plain GD steps on the summed L1 distance,\n"
                           "step 0.02 -> 0.002, decode with pinv(W_E), Hamming metric over the top-5 tokens (0 = perfect, 1 = nothing).");
  options.add_options()
      ("checkpoint", "model.safetensors to probe", cxxopts::value<std::string>()->default_value(""))
      ("checkpoints", "run folder: probe every checkpoint in RUN/checkpoints/ (or RUN/model.safetensors)", cxxopts::value<std::string>()->default_value(""))
      ("untrained", "probe a randomly initialised model of this descriptor", cxxopts::value<std::string>()->default_value(""))
      ("init", "initialisation for --untrained: paper, torch or hf", cxxopts::value<std::string>()->default_value("paper"))
      ("data", "prepared data folder (stories + tokenizer)", cxxopts::value<std::string>()->default_value("data/ts"))
      ("stories", "first N validation stories", cxxopts::value<int>()->default_value("10"))
      ("text", "invert this text instead of stories", cxxopts::value<std::string>()->default_value(""))
      ("padding", "left (the paper's) or right", cxxopts::value<std::string>()->default_value("left"))
      ("layer", "target = output of this block (default: the last)", cxxopts::value<int>()->default_value("-1"))
      ("steps", "optimisation steps", cxxopts::value<int>()->default_value("500"))
      ("lr", "first step size", cxxopts::value<double>()->default_value("0.02"))
      ("lr-end", "last step size (linear in between)", cxxopts::value<double>()->default_value("0.002"))
      ("lr-scale", "1, or auto: multiply both step sizes by the embedding's std", cxxopts::value<std::string>()->default_value("1"))
      ("loss", "l1 (paper), l2 or cosine", cxxopts::value<std::string>()->default_value("l1"))
      ("optimizer", "gd (paper) or adam", cxxopts::value<std::string>()->default_value("gd"))
      ("search-init", "unit: N(0,1) (paper); embedding: N(0, std of W_E)", cxxopts::value<std::string>()->default_value("unit"))
      ("decode", "pinv (paper) or nearest", cxxopts::value<std::string>()->default_value("pinv"))
      ("topk", "tokens kept per position for the Hamming metric", cxxopts::value<int>()->default_value("5"))
      ("drop-first", "drop the outputs of each story's first m tokens from the target (non-self tokens)", cxxopts::value<int>()->default_value("0"))
      ("seed", "seed for the search start (and --untrained weights)", cxxopts::value<uint64_t>()->default_value("1"))
      ("device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))
      ("out", "CSV to write (appended when it exists)", cxxopts::value<std::string>()->default_value("results/invert.csv"))
      ("show", "print the recovered text of each story");
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;

  SearchSettings st;
  st.steps = args["steps"].as<int>();
  st.layer = args["layer"].as<int>();
  st.topk = args["topk"].as<int>();
  st.drop_first = args["drop-first"].as<int>();
  st.loss_kind = loss_kind(args["loss"].as<std::string>());
  st.lr = args["lr"].as<double>();
  st.lr_end = args["lr-end"].as<double>();
  st.seed = args["seed"].as<uint64_t>();
  const std::string optimizer = args["optimizer"].as<std::string>(), search_init = args["search-init"].as<std::string>(),
                    lr_scale = args["lr-scale"].as<std::string>(), decode = args["decode"].as<std::string>();
  if (optimizer != "gd" && optimizer != "adam") throw UsageError(fmt::format("unknown optimizer '{}'", optimizer), "use --optimizer gd or adam");
  if (search_init != "unit" && search_init != "embedding") throw UsageError(fmt::format("unknown search init '{}'", search_init), "use --search-init unit or embedding");
  if (lr_scale != "1" && lr_scale != "auto") throw UsageError(fmt::format("unknown --lr-scale '{}'", lr_scale), "use --lr-scale 1 or auto");
  if (decode != "pinv" && decode != "nearest") throw UsageError(fmt::format("unknown decode '{}'", decode), "use --decode pinv or nearest");
  if (st.steps <= 0 || st.topk <= 0 || st.drop_first < 0) throw UsageError("--steps and --topk must be positive, --drop-first >= 0", "e.g. --steps 500 --topk 5");
  st.adam = optimizer == "adam";
  st.embedding_scale_init = search_init == "embedding";
  st.lr_scale_auto = lr_scale == "auto";
  st.decode = decode == "pinv" ? DecodeMethod::Pinv : DecodeMethod::Nearest;

  const std::string data_dir = args["data"].as<std::string>();
  std::unique_ptr<PreparedData> data;
  if (file_exists(data_dir + "/manifest.json")) data = std::make_unique<PreparedData>(PreparedData::open(data_dir));
  const int vocab = data ? static_cast<int>(data->train->header().vocab_size) : 4096;
  const int32_t pad = data ? data->train->header().pad_id : 2;
  std::vector<Probe> probes = probes_from_args(args, vocab);
  for (const Probe& probe : probes) {  // refuse bad requests before anything is written
    if (st.layer > probe.config.n_layers)
      throw UsageError(fmt::format("--layer {} but {} has {} blocks", st.layer, probe.config.descriptor(), probe.config.n_layers), "use 0..n_layers");
    if (data && probe.config.vocab != vocab)
      fail(fmt::format("{}: model vocab {} differs from the data's {}", probe.label, probe.config.vocab, vocab), "probe with the data folder the model was trained on");
  }
  auto backend = make_backend(parse_device(args["device"].as<std::string>()));
  Ops<float>& ops = *backend;

  const std::string out_path = args["out"].as<std::string>();
  if (auto parent = std::filesystem::path(out_path).parent_path(); !parent.empty()) make_dirs(parent.string());
  CsvWriter csv(out_path, {"model", "init", "step", "layer", "drop_first", "story", "n_tokens", "hamming_topk", "top1", "final_loss", "relative_loss",
                           "dropped_tokens", "dropped_top1", "protocol"},
                /*append=*/true);
  const std::string protocol = fmt::format("{}:{}:{}:lr{}-{}{}:{}:{}:top{}", optimizer, args["loss"].as<std::string>(), search_init, st.lr, st.lr_end,
                                           st.lr_scale_auto ? "xstd" : "", st.steps, decode, st.topk);
  write_meta(out_path, RunMeta{joined_command_line(argc, argv), {{"protocol", protocol}, {"data", data_dir}}}, ops.card());

  for (const Probe& probe : probes) {
    const ModelConfig& c = probe.config;
    Stories stories = load_stories(args, data.get(), data ? data->tokenizer_path : "", c.n_ctx, pad);
    const int B = stories.count, T = c.n_ctx, D = c.d_model, N = B * T, layer = st.layer < 0 ? c.n_layers : st.layer;
    const size_t ND = static_cast<size_t>(N) * D;
    Model<float> model(c, ops, B);
    if (probe.params.empty()) model.init_params(st.seed);
    else model.load_params(probe.params);

    std::vector<float> wte(static_cast<size_t>(c.vocab) * D);
    ops.to_host(wte.data(), model.token_embeddings(), wte.size() * sizeof(float));
    double mean = 0, sq = 0;
    for (float w : wte) mean += w, sq += static_cast<double>(w) * w;
    mean /= wte.size();
    const double emb_std = std::sqrt(std::max(0.0, sq / wte.size() - mean * mean));
    const double scale = st.lr_scale_auto ? emb_std : 1.0;

    // Target O* = blocks(W_E[t]) at `layer`, and per-row weights (0 for dropped rows).
    DeviceArray<float, float> target(ops, ND), a(ops, ND), grad(ops, ND), adam_m(ops, ND), adam_v(ops, ND), losses(ops, N), weights(ops, N), zeros(ops, ND);
    {
      std::vector<float> emb(ND);
      for (int n = 0; n < N; ++n)
        std::copy(wte.begin() + static_cast<size_t>(stories.tokens[n]) * D, wte.begin() + static_cast<size_t>(stories.tokens[n] + 1) * D, emb.begin() + static_cast<size_t>(n) * D);
      ops.to_device(a.get(), emb.data(), ND * sizeof(float));
      ops.copy(target.get(), model.forward_embeddings(a.get(), B, layer), ND);
    }
    std::vector<float> row_weights(N, 1.0f);
    for (int b = 0; b < B; ++b)
      for (int t = stories.real[b].first; t < std::min(stories.real[b].second, stories.real[b].first + st.drop_first); ++t) row_weights[static_cast<size_t>(b) * T + t] = 0.0f;
    ops.to_device(weights.get(), row_weights.data(), N * sizeof(float));
    std::vector<float> host_losses(N);
    auto story_sums = [&](const float* device_losses) {
      ops.to_host(host_losses.data(), device_losses, N * sizeof(float));
      std::vector<double> sums(B, 0.0);
      for (int n = 0; n < N; ++n) sums[n / T] += host_losses[n];
      return sums;
    };
    ops.distance_loss(losses.get(), grad.get(), zeros.get(), target.get(), weights.get(), N, D, st.loss_kind);
    const std::vector<double> target_norms = story_sums(losses.get());

    // Search start.
    {
      Rng rng(st.seed * 7919 + 17);
      std::vector<float> start(ND);
      const double sigma = st.embedding_scale_init ? emb_std : 1.0;
      for (float& x : start) x = static_cast<float>(rng.normal() * sigma);
      ops.to_device(a.get(), start.data(), ND * sizeof(float));
    }
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < st.steps; ++i) {
      const double lr = scale * (st.lr * (st.steps - i) / st.steps + st.lr_end * i / st.steps);
      const float* out = model.forward_embeddings(a.get(), B, layer);
      ops.distance_loss(losses.get(), grad.get(), out, target.get(), weights.get(), N, D, st.loss_kind);
      model.backward_embeddings(grad.get(), grad.get(), B, layer);
      if (st.adam) ops.adamw(a.get(), grad.get(), adam_m.get(), adam_v.get(), ND, static_cast<float>(lr), 0.9f, 0.999f, 1e-8f, 0.0f, i + 1, 1.0f);
      else ops.axpy(a.get(), grad.get(), static_cast<float>(-lr), ND);
      if ((i + 1) % 50 == 0 || i + 1 == st.steps) {
        ops.synchronize();
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::cerr << fmt::format("\rinvert: {} step {}/{}  {:.1f} s  ", c.descriptor(), i + 1, st.steps, elapsed) << std::flush;
      }
    }
    std::cerr << "\n";
    const float* out = model.forward_embeddings(a.get(), B, layer);
    ops.distance_loss(losses.get(), grad.get(), out, target.get(), weights.get(), N, D, st.loss_kind);
    const std::vector<double> final_losses = story_sums(losses.get());

    // Decode and score.
    std::vector<float> recovered(ND);
    ops.to_host(recovered.data(), a.get(), ND * sizeof(float));
    EmbeddingDecoder decoder(wte, c.vocab, D, st.decode);
    const std::vector<int32_t> top = decoder.topk(recovered.data(), N, st.topk);
    std::unique_ptr<Tokenizer> tokenizer;
    if (args.count("show") && data) tokenizer = std::make_unique<Tokenizer>(data->tokenizer_path);
    double sum_hamming = 0, sum_top1 = 0, sum_rel = 0;
    for (int b = 0; b < B; ++b) {
      int counted = 0, missed = 0, first = 0, dropped = 0, dropped_first = 0;
      std::vector<int> guess, truth;
      for (int t = stories.real[b].first; t < stories.real[b].second; ++t) {
        const size_t n = static_cast<size_t>(b) * T + t;
        const int32_t want = stories.tokens[n];
        const int32_t* cand = top.data() + n * st.topk;
        const bool hit = std::find(cand, cand + st.topk, want) != cand + st.topk;
        guess.push_back(cand[0]);
        truth.push_back(want);
        if (row_weights[n] == 0.0f) {
          ++dropped;
          dropped_first += cand[0] == want;
        } else {
          ++counted;
          missed += !hit;
          first += cand[0] == want;
        }
      }
      const double hamming = counted ? static_cast<double>(missed) / counted : 0.0, top1 = counted ? static_cast<double>(first) / counted : 0.0;
      const double rel = final_losses[b] / std::max(target_norms[b], 1e-30);
      sum_hamming += hamming;
      sum_top1 += top1;
      sum_rel += rel;
      csv.row({c.descriptor(), init_name(c.init), std::to_string(probe.step), std::to_string(layer), std::to_string(st.drop_first), std::to_string(b),
               std::to_string(counted), fmt::format("{:.6f}", hamming), fmt::format("{:.6f}", top1), fmt::format("{:.6g}", final_losses[b]),
               fmt::format("{:.6g}", rel), std::to_string(dropped), dropped ? fmt::format("{:.6f}", static_cast<double>(dropped_first) / dropped) : "",
               protocol});
      if (tokenizer) {
        auto clip = [](std::string s) { return s.size() > 160 ? s.substr(0, 160) + "..." : s; };
        std::cout << fmt::format("story {}\n  true:      {}\n  recovered: {}\n", b, clip(tokenizer->decode(truth)), clip(tokenizer->decode(guess)));
      }
    }
    std::cout << fmt::format("{} step {} layer {}: hamming(top-{}) {:.4f}, top-1 accuracy {:.4f}, final loss / |O*| {:.4g}  [{} stories, {}]\n",
                             c.descriptor(), probe.step, layer, st.topk, sum_hamming / B, sum_top1 / B, sum_rel / B, B, protocol);
  }
  return 0;
}

}  // namespace mm
