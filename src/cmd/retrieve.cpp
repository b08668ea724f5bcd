// `maskmix retrieve train|infonce|eval`: summary-to-story retrieval (the paper's claim 3).
//   train:   the frozen-embedding retrieval model (bidirectional mixer over sets of n rows)
//   infonce: fine-tune the language model itself with InfoNCE on cosine similarity at token -2
//   eval:    top-1 accuracy / mean rank of the true story among n candidates: model, cosine, bm25, random
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <iostream>
#include <numeric>
#include <sstream>

#include "cmd/cli.h"
#include "cmd/commands.h"
#include "cmd/model_source.h"
#include "core/csv.h"
#include "core/dataset.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/pairs.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/stories.h"
#include "model/embedder.h"
#include "model/optimizer.h"
#include "model/retrieval.h"
#include "ops/backend.h"

namespace mm {

namespace {

// Candidate indices for query `truth` among `pool` candidates: the truth at a random slot, n-1 in all.
std::vector<int> sample_candidates(int truth, int pool, int n_candidates, Rng& rng, int& label) {
  std::vector<int> chosen;
  chosen.reserve(n_candidates);
  // Floyd's algorithm over [0, pool) minus truth: distinct distractors without materialising the pool.
  std::vector<int> picked;
  const int others = pool - 1, need = n_candidates - 1;
  for (int j = others - need; j < others; ++j) {
    int t = static_cast<int>(rng.below(static_cast<uint64_t>(j) + 1));
    if (std::find(picked.begin(), picked.end(), t) != picked.end()) t = j;
    picked.push_back(t);
  }
  for (int p : picked) chosen.push_back(p >= truth ? p + 1 : p);
  label = static_cast<int>(rng.below(n_candidates));
  chosen.insert(chosen.begin() + label, truth);
  return chosen;
}

void check_aligned(const EmbeddingSet& queries, const EmbeddingSet& candidates, const std::string& what) {
  check(queries.count == candidates.count && queries.dim == candidates.dim,
        fmt::format("{}: {} queries of dim {} but {} candidates of dim {}", what, queries.count, queries.dim, candidates.count, candidates.dim),
        "embed the summaries and the stories of the same pairs file with the same model");
  for (int i = 0; i < queries.count; ++i)
    if (queries.ids[i] != candidates.ids[i])
      fail(fmt::format("{}: query {} has id {} but candidate {} has id {}", what, i, queries.ids[i], i, candidates.ids[i]),
           "embed --field summary and --field story from the same pairs file");
}

// Fills sets [B, n, D] for queries idx[first..first+B) and their labels.
void build_sets(const EmbeddingSet& q, const EmbeddingSet& c, const std::vector<int>& order, int first, int B, int n, Rng& rng, std::vector<float>& sets,
                std::vector<int32_t>& labels) {
  const int D = q.dim;
  sets.assign(static_cast<size_t>(B) * n * D, 0.0f);
  labels.assign(B, 0);
  for (int b = 0; b < B; ++b) {
    const int i = order[first + b];
    int label = 0;
    std::vector<int> cand = sample_candidates(i, c.count, n - 1, rng, label);
    labels[b] = label;
    float* set = sets.data() + static_cast<size_t>(b) * n * D;
    std::copy(q.row(i), q.row(i) + D, set);
    for (int j = 0; j < n - 1; ++j) std::copy(c.row(cand[j]), c.row(cand[j]) + D, set + static_cast<size_t>(j + 1) * D);
  }
}

constexpr const char* kRetrievalFormat = "maskmix-retrieval";

// ------------------------------------------------------------------------------------------------
int retrieve_train(int argc, char** argv) {
  cxxopts::Options options("maskmix retrieve train", "Train the frozen-embedding retrieval model (bidirectional mixer over query + n-1 candidates).");
  options.add_options()
      ("train-queries", "summary embeddings (maskmix embed --field summary)", cxxopts::value<std::string>())
      ("train-candidates", "story embeddings of the same pairs", cxxopts::value<std::string>())
      ("test-queries", "held-out summary embeddings", cxxopts::value<std::string>())
      ("test-candidates", "held-out story embeddings", cxxopts::value<std::string>())
      ("n,set-size", "rows per set: 1 query + n-1 candidates (--n works too)", cxxopts::value<int>()->default_value("32"))
      ("layers", "bidirectional mixer blocks", cxxopts::value<int>()->default_value("8"))
      ("epochs", "epochs (sets re-sampled every epoch)", cxxopts::value<int>()->default_value("100"))
      ("batch", "sets per step", cxxopts::value<int>()->default_value("128"))
      ("lr", "peak learning rate", cxxopts::value<double>()->default_value("1e-4"))
      ("warmup", "warmup steps", cxxopts::value<int>()->default_value("0"))
      ("clip", "gradient-norm clip", cxxopts::value<double>()->default_value("1.0"))
      ("seed", "seed", cxxopts::value<uint64_t>()->default_value("1"))
      ("device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))
      ("out", "output folder (retrieval.safetensors, retrieve_train.csv)", cxxopts::value<std::string>()->default_value("runs/retrieval"));
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;
  for (const char* required : {"train-queries", "train-candidates", "test-queries", "test-candidates"})
    if (!args.count(required)) throw UsageError(fmt::format("--{} is required", required), "see `maskmix retrieve train --help`");
  const EmbeddingSet tq = read_embeddings(args["train-queries"].as<std::string>()), tc = read_embeddings(args["train-candidates"].as<std::string>());
  const EmbeddingSet vq = read_embeddings(args["test-queries"].as<std::string>()), vc = read_embeddings(args["test-candidates"].as<std::string>());
  check_aligned(tq, tc, "train");
  check_aligned(vq, vc, "test");
  check(tq.dim == vq.dim, "train and test embeddings have different widths", "embed both with the same model");
  const int n = args["n"].as<int>(), B = args["batch"].as<int>(), epochs = args["epochs"].as<int>(), D = tq.dim;
  if (n < 2 || n > std::min(tc.count, vc.count) + 1)
    throw UsageError(fmt::format("--n {} needs 1..{} candidates per set", n, std::min(tc.count, vc.count)), "lower --n or add pairs");
  if (B <= 0 || epochs <= 0) throw UsageError("--batch and --epochs must be positive", "e.g. --batch 128 --epochs 100");
  const std::string out = args["out"].as<std::string>();
  make_dirs(out);
  auto backend = make_backend(parse_device(args["device"].as<std::string>()));
  Ops<float>& ops = *backend;
  RetrievalModel<float> model(D, n, args["layers"].as<int>(), ops, B);
  const uint64_t seed = args["seed"].as<uint64_t>();
  model.init_params(seed);
  const size_t P = model.num_params();
  DeviceArray<float, float> m(ops, P), v(ops, P);
  const int steps_per_epoch = (tq.count + B - 1) / B;
  const int64_t total = static_cast<int64_t>(steps_per_epoch) * epochs;
  const std::string csv_path = out + "/retrieve_train.csv";
  CsvWriter csv(csv_path, {"epoch", "step", "lr", "train_loss", "train_top1", "test_loss", "test_top1"});
  write_meta(csv_path, RunMeta{joined_command_line(argc, argv), {{"embedding_model", tq.metadata.count("model") ? tq.metadata.at("model") : "?"},
                                                                   {"n", std::to_string(n)}, {"parameters", std::to_string(P)}}},
             ops.card());
  std::cerr << fmt::format("retrieve train: {} train / {} test pairs, dim {}, n {}, {:.2f}M parameters, {} steps\n", tq.count, vq.count, D, n, P / 1e6, total);

  auto evaluate = [&](const EmbeddingSet& q, const EmbeddingSet& c, uint64_t eval_seed, double& loss_out) {
    Rng rng(eval_seed);
    std::vector<int> order(q.count);
    std::iota(order.begin(), order.end(), 0);
    std::vector<float> sets;
    std::vector<int32_t> labels;
    std::vector<double> scores;
    double loss = 0;
    int correct = 0;
    for (int first = 0; first < q.count; first += B) {
      const int b = std::min(B, q.count - first);
      build_sets(q, c, order, first, b, n, rng, sets, labels);
      loss += model.forward(sets.data(), labels.data(), b, &scores, false) * b;
      for (int k = 0; k < b; ++k) {
        const double* s = scores.data() + static_cast<size_t>(k) * (n - 1);
        correct += static_cast<int>(std::max_element(s, s + n - 1) - s) == labels[k];
      }
    }
    loss_out = loss / q.count;
    return static_cast<double>(correct) / q.count;
  };

  Rng rng(seed * 31 + 7);
  int64_t step = 0;
  std::vector<float> sets;
  std::vector<int32_t> labels;
  std::vector<double> scores;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    std::vector<int> order(tq.count);
    std::iota(order.begin(), order.end(), 0);
    for (int i = tq.count - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
    double train_loss = 0;
    int correct = 0;
    for (int first = 0; first < tq.count; first += B) {
      const int b = std::min(B, tq.count - first);
      build_sets(tq, tc, order, first, b, n, rng, sets, labels);
      model.zero_grad();
      const double loss = model.forward(sets.data(), labels.data(), b, &scores, true);
      if (!std::isfinite(loss)) fail(fmt::format("retrieval loss became {} at step {}", loss, step + 1), "lower --lr");
      model.backward();
      train_loss += loss * b;
      for (int k = 0; k < b; ++k) {
        const double* s = scores.data() + static_cast<size_t>(k) * (n - 1);
        correct += static_cast<int>(std::max_element(s, s + n - 1) - s) == labels[k];
      }
      AdamWSettings opt;
      opt.clip = args["clip"].as<double>();
      clipped_adamw_step(ops, model.param_data(), model.grad_data(), m.get(), v.get(), P, args["lr"].as<double>() * linear_schedule(step, args["warmup"].as<int>(), total),
                         opt, step + 1);
      ++step;
    }
    double test_loss = 0;
    const double test_top1 = evaluate(vq, vc, seed + 12345, test_loss);
    const double lr = args["lr"].as<double>() * linear_schedule(step, args["warmup"].as<int>(), total);
    csv.row({std::to_string(epoch), std::to_string(step), fmt::format("{:.6g}", lr), fmt::format("{:.6f}", train_loss / tq.count),
             fmt::format("{:.6f}", static_cast<double>(correct) / tq.count), fmt::format("{:.6f}", test_loss), fmt::format("{:.6f}", test_top1)});
    if (epoch == 1 || epoch % 10 == 0 || epoch == epochs)
      std::cerr << fmt::format("epoch {:>4}/{} | train loss {:.4f} top-1 {:.3f} | test loss {:.4f} top-1 {:.3f} (chance {:.3f})\n", epoch, epochs,
                               train_loss / tq.count, static_cast<double>(correct) / tq.count, test_loss, test_top1, 1.0 / (n - 1));
  }
  SafetensorsFile file;
  file.metadata = {{"format", kRetrievalFormat}, {"n", std::to_string(n)}, {"dim", std::to_string(D)}, {"layers", std::to_string(args["layers"].as<int>())},
                   {"embedding_model", tq.metadata.count("model") ? tq.metadata.at("model") : "?"}};
  const std::vector<float> params = model.save_params();
  for (const ParamInfo& p : model.params().entries()) file.tensors.push_back(make_tensor(p.name, DType::F32, p.shape, params.data() + p.offset));
  write_safetensors(out + "/retrieval.safetensors", file);
  std::cout << fmt::format("retrieval model trained: {}/retrieval.safetensors, {}\n", out, csv_path);
  return 0;
}

// ------------------------------------------------------------------------------------------------
int retrieve_infonce(int argc, char** argv) {
  cxxopts::Options options("maskmix retrieve infonce",
                           "Fine-tune a language model for retrieval with InfoNCE: groups of 1 summary + n-1 stories (the positive at a random\n"
                           "position), cosine similarity of the hidden states at token -2, temperature --tau.");
  add_model_source_options(options);
  options.add_options()
      ("data", "prepared data folder (tokenizer)", cxxopts::value<std::string>()->default_value("data/ts"))
      ("pairs", "training pairs JSONL", cxxopts::value<std::string>())
      ("n,set-size", "texts per group: 1 summary + n-1 stories (--n works too)", cxxopts::value<int>()->default_value("32"))
      ("tau", "temperature", cxxopts::value<double>()->default_value("0.02"))
      ("lr", "peak learning rate", cxxopts::value<double>()->default_value("1e-4"))
      ("warmup", "warmup steps", cxxopts::value<int>()->default_value("50"))
      ("epochs", "passes over the pairs (one group per summary)", cxxopts::value<int>()->default_value("1"))
      ("max-pairs", "use only the first N pairs (0 = all)", cxxopts::value<int>()->default_value("0"))
      ("clip", "gradient-norm clip", cxxopts::value<double>()->default_value("1.0"))
      ("index", "embedding position", cxxopts::value<int>()->default_value("-2"))
      ("device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))
      ("out", "output folder (model.safetensors, infonce.csv)", cxxopts::value<std::string>()->default_value("runs/infonce"));
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;
  if (!args.count("pairs")) throw UsageError("--pairs is required", "e.g. --pairs ../shared/data/retrieval/pairs_train.jsonl");
  PreparedData data = PreparedData::open(args["data"].as<std::string>());
  Tokenizer tokenizer(data.tokenizer_path);
  Checkpoint source = model_from_args(args, tokenizer.vocab_size());
  std::vector<Pair> pairs = read_pairs(args["pairs"].as<std::string>());
  if (const int limit = args["max-pairs"].as<int>(); limit > 0 && limit < static_cast<int>(pairs.size())) pairs.resize(limit);
  const int n = args["n"].as<int>(), epochs = args["epochs"].as<int>();
  const double tau = args["tau"].as<double>();
  if (n < 2 || n > static_cast<int>(pairs.size())) throw UsageError(fmt::format("--n {} needs 1..{} stories per group", n, pairs.size()), "lower --n");
  if (!(tau > 0)) throw UsageError("--tau must be positive", "e.g. --tau 0.02");
  auto backend = make_backend(parse_device(args["device"].as<std::string>()));
  Ops<float>& ops = *backend;
  Model<float> model(source.config, ops, n);
  if (source.params.empty()) model.init_params(args["seed"].as<uint64_t>());
  else model.load_params(source.params);
  const int T = source.config.n_ctx, D = source.config.d_model;
  EmbedOptions eo;
  eo.index = args["index"].as<int>();
  const int pos = embedding_position(eo, T);
  std::vector<std::string> summaries, stories;
  for (const Pair& p : pairs) summaries.push_back(p.summary), stories.push_back(p.story);
  const TokenRows summary_rows = tokenize_rows(tokenizer, summaries, T, data.train->header().pad_id, true);
  const TokenRows story_rows = tokenize_rows(tokenizer, stories, T, data.train->header().pad_id, true);

  const size_t P = model.num_params();
  DeviceArray<float, float> m(ops, P), v(ops, P), dhidden(ops, static_cast<size_t>(n) * T * D);
  const std::string out = args["out"].as<std::string>();
  make_dirs(out);
  const std::string csv_path = out + "/infonce.csv";
  CsvWriter csv(csv_path, {"step", "lr", "loss", "group_top1"});
  write_meta(csv_path, RunMeta{joined_command_line(argc, argv), {{"model", source.config.descriptor()}, {"tau", fmt::format("{}", tau)}, {"n", std::to_string(n)}}},
             ops.card());
  const int64_t total = static_cast<int64_t>(pairs.size()) * epochs;
  Rng rng(args["seed"].as<uint64_t>() * 97 + 3);
  TokenRows group;
  group.count = n;
  group.n_ctx = T;
  group.tokens.resize(static_cast<size_t>(n) * T);
  group.real.resize(n);
  std::vector<float> host_dhidden(static_cast<size_t>(n) * T * D, 0.0f);
  std::vector<double> dq, dd;
  double window_loss = 0;
  int window_hits = 0, window = 0;
  int64_t step = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int epoch = 0; epoch < epochs; ++epoch) {
    std::vector<int> order(pairs.size());
    std::iota(order.begin(), order.end(), 0);
    for (int i = static_cast<int>(order.size()) - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
    for (int i : order) {
      int label = 0;
      const std::vector<int> docs = sample_candidates(i, static_cast<int>(pairs.size()), n - 1, rng, label);
      std::copy_n(summary_rows.tokens.begin() + static_cast<size_t>(i) * T, T, group.tokens.begin());
      group.real[0] = summary_rows.real[i];
      for (int j = 0; j < n - 1; ++j) {
        std::copy_n(story_rows.tokens.begin() + static_cast<size_t>(docs[j]) * T, T, group.tokens.begin() + static_cast<size_t>(j + 1) * T);
        group.real[j + 1] = story_rows.real[docs[j]];
      }
      model.zero_grad();
      const std::vector<float> emb = embed_batch(model, group, 0, n, eo);
      const double loss = info_nce(emb.data(), emb.data() + D, n - 1, D, label, tau, dq, dd);
      if (!std::isfinite(loss)) fail(fmt::format("InfoNCE loss became {} at step {}", loss, step + 1), "lower --lr or raise --tau");
      double best = -INFINITY;
      int argmax = 0;
      for (int j = 0; j < n - 1; ++j) {  // top-1 within the group (cosine)
        double dot = 0, a = 0, b = 0;
        for (int d = 0; d < D; ++d) {
          dot += static_cast<double>(emb[d]) * emb[static_cast<size_t>(j + 1) * D + d];
          a += static_cast<double>(emb[d]) * emb[d];
          b += static_cast<double>(emb[static_cast<size_t>(j + 1) * D + d]) * emb[static_cast<size_t>(j + 1) * D + d];
        }
        const double c = dot / (std::sqrt(a * b) + 1e-12);
        if (c > best) best = c, argmax = j;
      }
      for (int d = 0; d < D; ++d) host_dhidden[static_cast<size_t>(pos) * D + d] = static_cast<float>(dq[d]);
      for (int j = 0; j < n - 1; ++j)
        for (int d = 0; d < D; ++d) host_dhidden[(static_cast<size_t>(j + 1) * T + pos) * D + d] = static_cast<float>(dd[static_cast<size_t>(j) * D + d]);
      ops.to_device(dhidden.get(), host_dhidden.data(), host_dhidden.size() * sizeof(float));
      model.backward_encode(dhidden.get(), n);
      const double lr = args["lr"].as<double>() * linear_schedule(step, args["warmup"].as<int>(), total);
      AdamWSettings opt;
      opt.clip = args["clip"].as<double>();
      clipped_adamw_step(ops, model.param_data(), model.grad_data(), m.get(), v.get(), P, lr, opt, step + 1);
      ++step;
      window_loss += loss;
      window_hits += argmax == label;
      ++window;
      if (step % 50 == 0 || step == total) {
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        csv.row({std::to_string(step), fmt::format("{:.6g}", lr), fmt::format("{:.6f}", window_loss / window), fmt::format("{:.4f}", static_cast<double>(window_hits) / window)});
        std::cerr << fmt::format("infonce step {:>6}/{} | loss {:.4f} | group top-1 {:.3f} | {:.1f} groups/s\n", step, total, window_loss / window,
                                 static_cast<double>(window_hits) / window, step / elapsed);
        window_loss = 0;
        window_hits = window = 0;
      }
    }
  }
  std::map<std::string, std::string> meta = source.metadata;
  meta["infonce"] = fmt::format("tau {} n {} lr {} steps {} pairs {}", tau, n, args["lr"].as<double>(), step, args["pairs"].as<std::string>());
  meta["tokenizer_hash"] = fmt::format("{:016x}", data.tokenizer_hash);
  meta["step"] = meta.count("step") ? meta["step"] : "0";
  save_weights(out + "/model.safetensors", source.config, model.params(), model.save_params(), meta);
  std::cout << fmt::format("InfoNCE-tuned model: {}/model.safetensors ({} steps)\n", out, step);
  return 0;
}

// ------------------------------------------------------------------------------------------------
int retrieve_eval(int argc, char** argv) {
  cxxopts::Options options("maskmix retrieve eval",
                           "Top-1 accuracy and mean rank of the true story among n candidates, for n = 32, 64, ... up to the pool size.\n"
                           "Methods: cosine (embeddings), model (a trained retrieval model, at its own n), bm25 (texts), random.");
  options.add_options()
      ("method", "cosine, model, bm25 or random", cxxopts::value<std::string>()->default_value("cosine"))
      ("queries", "summary embeddings (cosine, model)", cxxopts::value<std::string>()->default_value(""))
      ("candidates", "story embeddings of the same pairs (cosine, model)", cxxopts::value<std::string>()->default_value(""))
      ("pool", "extra distractor story embeddings (cosine), e.g. maskmix embed --split train", cxxopts::value<std::string>()->default_value(""))
      ("pairs", "the pairs JSONL (bm25, random; texts and ids)", cxxopts::value<std::string>()->default_value(""))
      ("pool-texts", "extra distractor stories (bm25): text with <|endoftext|>, JSONL or JSON", cxxopts::value<std::string>()->default_value(""))
      ("retrieval-model", "retrieval.safetensors (method model)", cxxopts::value<std::string>()->default_value(""))
      ("sizes", "comma-separated n (candidates per query); default 32, 64, ... up to the pool", cxxopts::value<std::string>()->default_value(""))
      ("seeds", "repetitions with different distractors", cxxopts::value<int>()->default_value("5"))
      ("label", "name for this row in the CSV (e.g. mixer-frozen)", cxxopts::value<std::string>()->default_value(""))
      ("device", "cpu or cuda (method model)", cxxopts::value<std::string>()->default_value("cpu"))
      ("out", "CSV to append to", cxxopts::value<std::string>()->default_value("results/retrieval.csv"));
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;
  const std::string method = args["method"].as<std::string>();
  if (method != "cosine" && method != "model" && method != "bm25" && method != "random")
    throw UsageError(fmt::format("unknown method '{}'", method), "use --method cosine, model, bm25 or random");
  const int seeds = args["seeds"].as<int>();
  if (seeds <= 0) throw UsageError("--seeds must be positive", "e.g. --seeds 5");

  // Queries and the candidate pool (the pairs' own stories first, so story i is query i's truth).
  EmbeddingSet q, c;
  std::vector<std::string> query_texts, pool_texts;
  int n_queries = 0, pool = 0;
  if (method == "cosine" || method == "model") {
    if (args["queries"].as<std::string>().empty() || args["candidates"].as<std::string>().empty())
      throw UsageError(fmt::format("--queries and --candidates are required for --method {}", method), "make them with `maskmix embed`");
    q = read_embeddings(args["queries"].as<std::string>());
    c = read_embeddings(args["candidates"].as<std::string>());
    check_aligned(q, c, "eval");
    if (!args["pool"].as<std::string>().empty()) {
      const EmbeddingSet extra = read_embeddings(args["pool"].as<std::string>());
      check(extra.dim == c.dim, "pool embeddings have another width", "embed the pool with the same model");
      c.values.insert(c.values.end(), extra.values.begin(), extra.values.end());
      c.ids.insert(c.ids.end(), extra.ids.begin(), extra.ids.end());
      c.count += extra.count;
    }
    n_queries = q.count;
    pool = c.count;
  } else {
    if (args["pairs"].as<std::string>().empty()) throw UsageError(fmt::format("--pairs is required for --method {}", method), "e.g. --pairs ../shared/data/retrieval/pairs_valid.jsonl");
    for (const Pair& p : read_pairs(args["pairs"].as<std::string>())) query_texts.push_back(p.summary), pool_texts.push_back(p.story);
    if (!args["pool-texts"].as<std::string>().empty())
      for (const Story& s : read_stories(args["pool-texts"].as<std::string>())) pool_texts.push_back(s.text);
    n_queries = static_cast<int>(query_texts.size());
    pool = static_cast<int>(pool_texts.size());
  }

  std::vector<int> sizes;
  if (!args["sizes"].as<std::string>().empty()) {
    std::stringstream ss(args["sizes"].as<std::string>());
    for (std::string part; std::getline(ss, part, ',');) sizes.push_back(std::stoi(part));
  } else {
    for (int n = 32; n <= pool; n *= 2) sizes.push_back(n);
    if (sizes.empty() || sizes.back() != pool) sizes.push_back(pool);
  }

  std::unique_ptr<Ops<float>> backend;
  std::unique_ptr<RetrievalModel<float>> rmodel;
  if (method == "model") {
    const std::string path = args["retrieval-model"].as<std::string>();
    if (path.empty()) throw UsageError("--retrieval-model is required for --method model", "train one with `maskmix retrieve train`");
    SafetensorsFile file = read_safetensors(path);
    if (!file.metadata.count("format") || file.metadata.at("format") != kRetrievalFormat) fail(fmt::format("{}: not a retrieval model", path), "pass OUT/retrieval.safetensors of retrieve train");
    const int n = std::stoi(file.metadata.at("n")), dim = std::stoi(file.metadata.at("dim")), layers = std::stoi(file.metadata.at("layers"));
    check(dim == q.dim, fmt::format("{}: trained on width {} but the embeddings have {}", path, dim, q.dim), "evaluate with embeddings from the same model");
    sizes = {n - 1};  // the model is tied to its set size
    backend = make_backend(parse_device(args["device"].as<std::string>()));
    rmodel = std::make_unique<RetrievalModel<float>>(dim, n, layers, *backend, 64);
    std::vector<float> params(rmodel->num_params());
    for (const ParamInfo& p : rmodel->params().entries()) {
      const TensorEntry& t = file.at(p.name, path);
      check(static_cast<size_t>(t.numel()) == p.numel && t.dtype == DType::F32, fmt::format("{}: tensor {} has the wrong shape", path, p.name), "the file is corrupt");
      std::copy(t.as<float>(), t.as<float>() + p.numel, params.begin() + p.offset);
    }
    rmodel->load_params(params);
  }
  std::unique_ptr<Bm25> bm25;
  if (method == "bm25") bm25 = std::make_unique<Bm25>(pool_texts);
  // Cosine: normalise once.
  if (method == "cosine") {
    for (EmbeddingSet* set : {&q, &c})
      for (int i = 0; i < set->count; ++i) {
        float* r = set->values.data() + static_cast<size_t>(i) * set->dim;
        double s = 0;
        for (int d = 0; d < set->dim; ++d) s += static_cast<double>(r[d]) * r[d];
        const float inv = static_cast<float>(1.0 / (std::sqrt(s) + 1e-12));
        for (int d = 0; d < set->dim; ++d) r[d] *= inv;
      }
  }

  const std::string out_path = args["out"].as<std::string>();
  if (auto parent = std::filesystem::path(out_path).parent_path(); !parent.empty()) make_dirs(parent.string());
  CsvWriter csv(out_path, {"label", "method", "n", "seed", "queries", "top1", "mean_rank"}, /*append=*/true);
  write_meta(out_path, RunMeta{joined_command_line(argc, argv), {}}, backend ? backend->card() : "cpu: " + cpu_name());
  const std::string label = args["label"].as<std::string>().empty() ? method : args["label"].as<std::string>();
  std::cout << fmt::format("{:<22} {:>6} {:>10} {:>10} {:>10}\n", label, "n", "top-1", "std.err", "mean rank");
  for (int n : sizes) {
    if (n < 2 || n > pool) throw UsageError(fmt::format("n = {} needs between 2 and {} candidates", n, pool), "use --sizes within the pool, or add --pool");
    std::vector<double> accs;
    double rank_sum = 0;
    for (int seed = 1; seed <= seeds; ++seed) {
      int hits = 0;
      double ranks = 0;
      // Each query draws its distractors from its own stream, so queries score in parallel and the result
      // does not depend on the thread count. The retrieval model runs on one backend: serial there.
#pragma omp parallel for schedule(dynamic, 8) reduction(+ : hits, ranks) if (method != "model")
      for (int i = 0; i < n_queries; ++i) {
        Rng rng(static_cast<uint64_t>(seed) * 1000003 + static_cast<uint64_t>(n) * 7919 + static_cast<uint64_t>(i) * 104729);
        int truth_slot = 0;
        const std::vector<int> cand = sample_candidates(i, pool, n, rng, truth_slot);
        std::vector<double> score(n);
        if (method == "cosine") {
          for (int j = 0; j < n; ++j) {
            double s = 0;
            for (int d = 0; d < q.dim; ++d) s += static_cast<double>(q.row(i)[d]) * c.row(cand[j])[d];
            score[j] = s;
          }
        } else if (method == "bm25") {
          for (int j = 0; j < n; ++j) score[j] = bm25->score(query_texts[i], cand[j]);
        } else if (method == "random") {
          for (int j = 0; j < n; ++j) score[j] = rng.uniform();
        } else {
          std::vector<float> set(static_cast<size_t>(n + 1) * q.dim);
          std::copy(q.row(i), q.row(i) + q.dim, set.begin());
          for (int j = 0; j < n; ++j) std::copy(c.row(cand[j]), c.row(cand[j]) + q.dim, set.begin() + static_cast<size_t>(j + 1) * q.dim);
          int32_t dummy = static_cast<int32_t>(truth_slot);
          rmodel->forward(set.data(), &dummy, 1, &score, false);
        }
        int above = 0, ties = 0;
        for (int j = 0; j < n; ++j) {
          if (j == truth_slot) continue;
          above += score[j] > score[truth_slot];
          ties += score[j] == score[truth_slot];
        }
        hits += above == 0 && ties == 0;
        ranks += 1 + above + 0.5 * ties;
      }
      const double acc = static_cast<double>(hits) / n_queries;
      accs.push_back(acc);
      rank_sum += ranks / n_queries;
      csv.row({label, method, std::to_string(n), std::to_string(seed), std::to_string(n_queries), fmt::format("{:.6f}", acc), fmt::format("{:.4f}", ranks / n_queries)});
    }
    const double mean = std::accumulate(accs.begin(), accs.end(), 0.0) / accs.size();
    double var = 0;
    for (double a : accs) var += (a - mean) * (a - mean);
    const double se = accs.size() > 1 ? std::sqrt(var / (accs.size() - 1) / accs.size()) : 0.0;
    std::cout << fmt::format("{:<22} {:>6} {:>10.4f} {:>10.4f} {:>10.2f}\n", label, n, mean, se, rank_sum / seeds);
  }
  return 0;
}

}  // namespace

int cmd_retrieve(int argc, char** argv) {
  const std::string usage = "usage: maskmix retrieve train|infonce|eval [options]   (maskmix retrieve <sub> --help)";
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << usage << "\n  train    train the frozen-embedding retrieval model\n  infonce  fine-tune a language model with InfoNCE\n"
                          "  eval     top-1 accuracy among n candidates (cosine, model, bm25, random)\n";
    return argc < 2 ? 2 : 0;
  }
  const std::string sub = argv[1];
  if (sub == "train") return retrieve_train(argc - 1, argv + 1);
  if (sub == "infonce") return retrieve_infonce(argc - 1, argv + 1);
  if (sub == "eval") return retrieve_eval(argc - 1, argv + 1);
  throw UsageError(fmt::format("unknown retrieve subcommand '{}'", sub), "use train, infonce or eval");
}

}  // namespace mm
