// `maskmix embed`: texts (a pairs JSONL field, or the stories of a prepared shard) -> embeddings file.
#include <iostream>

#include "cmd/cli.h"
#include "cmd/commands.h"
#include "cmd/model_source.h"
#include "core/csv.h"
#include "core/dataset.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/pairs.h"
#include "model/embedder.h"
#include "ops/backend.h"

namespace mm {

int cmd_embed(int argc, char** argv) {
  cxxopts::Options options("maskmix embed", "Embed texts with a language model: the hidden state at one token (default -2 of a left-padded row).");
  add_model_source_options(options);
  options.add_options()
      ("data", "prepared data folder (tokenizer; and stories for --split)", cxxopts::value<std::string>()->default_value("data/ts"))
      ("pairs", "pairs JSONL file to embed", cxxopts::value<std::string>()->default_value(""))
      ("field", "summary or story (with --pairs)", cxxopts::value<std::string>()->default_value("story"))
      ("split", "embed the stories of the data folder's train or valid shard instead", cxxopts::value<std::string>()->default_value(""))
      ("index", "token position of the embedding (negative: from the end)", cxxopts::value<int>()->default_value("-2"))
      ("pool", "last (the position --index) or mean (over real tokens)", cxxopts::value<std::string>()->default_value("last"))
      ("padding", "left or right", cxxopts::value<std::string>()->default_value("left"))
      ("batch", "sequences per forward pass", cxxopts::value<int>()->default_value("32"))
      ("device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))
      ("out", "embeddings file (safetensors)", cxxopts::value<std::string>()->default_value("embeddings.safetensors"));
  cxxopts::ParseResult args;
  if (!parse_cli(options, argc, argv, args)) return 0;
  EmbedOptions eo;
  eo.index = args["index"].as<int>();
  eo.batch = args["batch"].as<int>();
  const std::string pool = args["pool"].as<std::string>(), padding = args["padding"].as<std::string>(), field = args["field"].as<std::string>();
  if (pool != "last" && pool != "mean") throw UsageError(fmt::format("unknown pool '{}'", pool), "use --pool last or mean");
  if (padding != "left" && padding != "right") throw UsageError(fmt::format("unknown padding '{}'", padding), "use --padding left or right");
  if (field != "summary" && field != "story") throw UsageError(fmt::format("unknown field '{}'", field), "use --field summary or story");
  if (eo.batch <= 0) throw UsageError("--batch must be positive", "e.g. --batch 32");
  eo.mean = pool == "mean";
  eo.left_pad = padding == "left";

  PreparedData data = PreparedData::open(args["data"].as<std::string>());
  Tokenizer tokenizer(data.tokenizer_path);
  Checkpoint source = model_from_args(args, tokenizer.vocab_size());
  auto backend = make_backend(parse_device(args["device"].as<std::string>()));
  Model<float> model(source.config, *backend, eo.batch);
  if (source.params.empty()) model.init_params(args["seed"].as<uint64_t>());
  else model.load_params(source.params);

  std::vector<std::string> texts, ids;
  const std::string pairs_path = args["pairs"].as<std::string>(), split = args["split"].as<std::string>();
  if (pairs_path.empty() == split.empty()) throw UsageError("give exactly one of --pairs FILE or --split train|valid", "e.g. --pairs ../shared/data/retrieval/pairs_valid.jsonl --field summary");
  if (!pairs_path.empty()) {
    for (const Pair& p : read_pairs(pairs_path)) {
      ids.push_back(p.id);
      texts.push_back(field == "summary" ? p.summary : p.story);
    }
  } else {
    if (split != "train" && split != "valid") throw UsageError(fmt::format("unknown split '{}'", split), "use --split train or valid");
    const ShardReader& shard = split == "train" ? *data.train : *data.valid;
    for (uint64_t d = 0; d < shard.n_docs(); ++d) {
      std::vector<int> doc(shard.tokens() + shard.doc_begin(d), shard.tokens() + shard.doc_end(d));
      texts.push_back(tokenizer.decode(doc));
      ids.push_back(fmt::format("{}-{}", split, d));
    }
  }
  TokenRows rows = tokenize_rows(tokenizer, texts, source.config.n_ctx, data.train->header().pad_id, eo.left_pad);
  EmbeddingSet set;
  set.count = rows.count;
  set.dim = source.config.d_model;
  set.values = embed_all(model, rows, eo);
  set.ids = ids;
  set.metadata = {{"model", source.config.descriptor()},
                  {"source", args["checkpoint"].as<std::string>().empty() ? "untrained" : args["checkpoint"].as<std::string>()},
                  {"texts", pairs_path.empty() ? "split:" + split : pairs_path + ":" + field},
                  {"index", std::to_string(eo.index)},
                  {"pool", pool},
                  {"padding", padding},
                  {"commit", git_commit()}};
  write_embeddings(args["out"].as<std::string>(), set);
  std::cout << fmt::format("embedded {} texts with {} -> {} ([{}, {}])\n", set.count, source.config.descriptor(), args["out"].as<std::string>(), set.count, set.dim);
  return 0;
}

}  // namespace mm
