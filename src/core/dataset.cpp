// Opening and cross-checking a prepared data folder.
#include "core/dataset.h"

#include "core/error.h"
#include "core/fileio.h"
#include "core/json.h"

namespace mm {

PreparedData PreparedData::open(const std::string& dir) {
  const std::string manifest_path = dir + "/manifest.json";
  if (!file_exists(manifest_path))
    fail(fmt::format("{}: no manifest.json; not a prepared data folder", dir), "create it with `maskmix prepare --input ... --out " + dir + "`");
  Json manifest;
  try {
    manifest = parse_json(read_text_file(manifest_path));
    if (static_cast<int>(manifest.obj().at("format_version").num()) != kManifestVersion) throw std::runtime_error("unsupported format_version");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(fmt::format("{}: bad manifest: {}", manifest_path, e.what()), "re-create the folder with `maskmix prepare`");
  }
  PreparedData data;
  data.dir = dir;
  data.tokenizer_path = dir + "/tokenizer.model";
  data.tokenizer_hash = fnv1a64(read_text_file(data.tokenizer_path));
  data.train = std::make_unique<ShardReader>(dir + "/train.bin");
  data.valid = std::make_unique<ShardReader>(dir + "/valid.bin");
  for (const ShardReader* shard : {data.train.get(), data.valid.get()}) {
    if (shard->header().tokenizer_hash != data.tokenizer_hash)
      fail(fmt::format("{}: made with another tokenizer (hash {:016x}, folder's tokenizer.model is {:016x})", shard->path(),
                       shard->header().tokenizer_hash, data.tokenizer_hash),
           "re-run `maskmix prepare` so shards and tokenizer match");
  }
  if (data.train->header().vocab_size != data.valid->header().vocab_size)
    fail(fmt::format("{}: train and valid shards have different vocabularies", dir), "re-run `maskmix prepare`");
  return data;
}

}  // namespace mm
