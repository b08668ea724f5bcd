// `maskmix prepare`: stories -> tokenizer + train/valid token shards + manifest, written atomically.
#include <omp.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "cmd/cli.h"
#include "cmd/commands.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/rng.h"
#include "core/shards.h"
#include "core/stories.h"
#include "core/tokenizer.h"

namespace mm {

namespace {

struct SplitStats {
  uint64_t stories = 0, tokens = 0, bytes = 0;  // bytes of UTF-8 text (for bits per byte)
};

// Tokenizes stories in parallel chunks and streams them into a shard, with a progress line.
SplitStats write_split(const std::vector<const Story*>& stories, const Tokenizer& tokenizer, const std::string& path,
                       const ShardInfo& info, const std::string& label) {
  ShardWriter writer(path, info);
  const size_t chunk = 8192;
  std::vector<std::vector<int>> encoded(chunk);
  auto start = std::chrono::steady_clock::now();
  uint64_t bytes = 0;
  for (size_t begin = 0; begin < stories.size(); begin += chunk) {
    const size_t end = std::min(stories.size(), begin + chunk);
#pragma omp parallel for schedule(dynamic, 64)
    for (size_t i = begin; i < end; ++i) encoded[i - begin] = tokenizer.encode(stories[i]->text);
    for (size_t i = begin; i < end; ++i) {
      writer.add_document(encoded[i - begin].data(), encoded[i - begin].size());
      bytes += stories[i]->text.size();
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << fmt::format("\rprepare: {} {}/{} stories, {:.1f} MB, {:.0f} stories/s, {:.1f} MB/s   ", label, end, stories.size(),
                             bytes / 1e6, end / std::max(seconds, 1e-9), bytes / 1e6 / std::max(seconds, 1e-9))
              << std::flush;
  }
  std::cerr << "\n";
  writer.finish();
  return {writer.n_docs(), writer.n_tokens(), bytes};
}

}  // namespace

int cmd_prepare(int argc, char** argv) {
  cxxopts::Options options("maskmix prepare", "Tokenize stories into train/valid token shards (+ tokenizer and manifest).\n"
                                              "Inputs: text with <|endoftext|> separators, JSONL with \"story\"/\"text\", or JSON arrays.");
  options.add_options()
      ("input", "story file(s), comma-separated", cxxopts::value<std::vector<std::string>>())
      ("valid", "validation story file(s), comma-separated", cxxopts::value<std::vector<std::string>>()->default_value(""))
      ("valid-fraction", "hold out this fraction of --input as validation (when no --valid)", cxxopts::value<double>()->default_value("0.05"))
      ("tokenizer", "existing SentencePiece .model to use", cxxopts::value<std::string>()->default_value(""))
      ("vocab", "train a new SentencePiece BPE with this many pieces instead", cxxopts::value<int>()->default_value("0"))
      ("format", "input format: auto|text|jsonl|json", cxxopts::value<std::string>()->default_value("auto"))
      ("out", "output folder", cxxopts::value<std::string>()->default_value("data/ts"))
      ("seed", "seed for the validation split", cxxopts::value<uint64_t>()->default_value("1"))
      ("threads", "tokenizer threads (0 = all cores)", cxxopts::value<int>()->default_value("0"));
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;

  if (!args.count("input")) throw UsageError("--input is required", "e.g. --input ../shared/data/tinystories/train.txt");
  const std::string tokenizer_arg = args["tokenizer"].as<std::string>();
  const int vocab = args["vocab"].as<int>();
  if (tokenizer_arg.empty() == (vocab == 0))
    throw UsageError("give exactly one of --tokenizer FILE.model or --vocab N", "e.g. --tokenizer ../shared/data/tokenizers/tok4096.model");
  if (vocab != 0 && (vocab < 260 || vocab > 65535))
    throw UsageError(fmt::format("--vocab {} is out of range", vocab), "use 260..65535: shards store tokens as uint16");
  const double valid_fraction = args["valid-fraction"].as<double>();
  if (valid_fraction < 0 || valid_fraction >= 1) throw UsageError("--valid-fraction must be in [0, 1)", "e.g. --valid-fraction 0.05");
  if (int threads = args["threads"].as<int>(); threads > 0) omp_set_num_threads(threads);
  const StoryFormat format = parse_story_format(args["format"].as<std::string>());
  const std::string out_dir = args["out"].as<std::string>();

  std::vector<std::string> inputs = args["input"].as<std::vector<std::string>>();
  std::vector<std::string> valid_inputs;
  for (const std::string& v : args["valid"].as<std::vector<std::string>>())
    if (!v.empty()) valid_inputs.push_back(v);

  std::vector<Story> train_pool, valid_pool;
  for (const std::string& path : inputs) {
    auto stories = read_stories(path, format);
    std::cerr << fmt::format("prepare: {} stories from {}\n", stories.size(), path);
    std::move(stories.begin(), stories.end(), std::back_inserter(train_pool));
  }
  for (const std::string& path : valid_inputs) {
    auto stories = read_stories(path, format);
    std::cerr << fmt::format("prepare: {} validation stories from {}\n", stories.size(), path);
    std::move(stories.begin(), stories.end(), std::back_inserter(valid_pool));
  }

  std::vector<const Story*> train, valid;
  Rng split_rng(args["seed"].as<uint64_t>());
  for (const Story& s : train_pool) {
    bool to_valid = valid_inputs.empty() && split_rng.uniform() < valid_fraction;
    (to_valid ? valid : train).push_back(&s);
  }
  for (const Story& s : valid_pool) valid.push_back(&s);
  if (train.empty()) fail("no training stories left after the validation split", "lower --valid-fraction or add input");
  if (valid.empty()) fail("no validation stories", "pass --valid FILE or a --valid-fraction above 0");

  // Everything is written into a sibling temp folder, then swapped into place.
  const std::string partial = out_dir + ".partial";
  std::filesystem::remove_all(partial);
  make_dirs(partial);
  const std::string tokenizer_path = partial + "/tokenizer.model";
  if (!tokenizer_arg.empty()) {
    Tokenizer probe(tokenizer_arg);  // validates before copying
    write_file_atomic(tokenizer_path, read_text_file(tokenizer_arg));
  } else {
    std::vector<std::string> texts;
    for (const Story* s : train) texts.push_back(s->text);
    std::cerr << fmt::format("prepare: training a {}-piece BPE on {} stories\n", vocab, texts.size());
    train_tokenizer(texts, vocab, tokenizer_path, omp_get_max_threads());
  }
  Tokenizer tokenizer(tokenizer_path);
  if (tokenizer.vocab_size() > 65535)
    fail(fmt::format("{}: {} pieces do not fit uint16 shards", tokenizer_arg, tokenizer.vocab_size()), "use a tokenizer with at most 65535 pieces");
  ShardInfo info{static_cast<uint32_t>(tokenizer.vocab_size()), tokenizer.pad_id(), tokenizer.eos_id(), tokenizer.bos_id(), tokenizer.hash()};

  auto started = std::chrono::steady_clock::now();
  SplitStats train_stats = write_split(train, tokenizer, partial + "/train.bin", info, "train");
  SplitStats valid_stats = write_split(valid, tokenizer, partial + "/valid.bin", info, "valid");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  Json::Array sources;
  for (const auto& s : inputs) sources.emplace_back(s);
  Json::Array valid_sources;
  for (const auto& s : valid_inputs) valid_sources.emplace_back(s);
  auto split_json = [](const SplitStats& s, const char* file) {
    return Json(Json::Object{{"file", Json(file)}, {"stories", Json(static_cast<int64_t>(s.stories))}, {"tokens", Json(static_cast<int64_t>(s.tokens))},
                             {"bytes", Json(static_cast<int64_t>(s.bytes))}});
  };
  Json manifest(Json::Object{
      {"format_version", Json(static_cast<int64_t>(kManifestVersion))},
      {"tokenizer", Json("tokenizer.model")},
      {"tokenizer_source", Json(tokenizer_arg.empty() ? fmt::format("trained: --vocab {}", vocab) : tokenizer_arg)},
      {"tokenizer_hash", Json(fmt::format("{:016x}", tokenizer.hash()))},
      {"vocab_size", Json(static_cast<int64_t>(tokenizer.vocab_size()))},
      {"pad_id", Json(static_cast<int64_t>(info.pad_id))},
      {"eos_id", Json(static_cast<int64_t>(info.eos_id))},
      {"sources", Json(std::move(sources))},
      {"valid_sources", Json(std::move(valid_sources))},
      {"valid_fraction", Json(valid_inputs.empty() ? valid_fraction : 0.0)},
      {"train", split_json(train_stats, "train.bin")},
      {"valid", split_json(valid_stats, "valid.bin")},
  });
  write_file_atomic(partial + "/manifest.json", manifest.dump() + "\n");

  const std::string old = out_dir + ".old";
  std::filesystem::remove_all(old);
  if (std::filesystem::exists(out_dir)) std::filesystem::rename(out_dir, old);
  std::filesystem::rename(partial, out_dir);
  std::filesystem::remove_all(old);

  std::cout << fmt::format("prepared {}: train {} stories / {} tokens, valid {} stories / {} tokens, vocab {}, {:.1f} s tokenizing\n", out_dir,
                           train_stats.stories, train_stats.tokens, valid_stats.stories, valid_stats.tokens, tokenizer.vocab_size(), seconds);
  return 0;
}

}  // namespace mm
