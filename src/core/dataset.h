// A prepared data folder (written by `maskmix prepare`): tokenizer.model, train.bin, valid.bin and
// manifest.json. Opening it checks that the shards were made with that tokenizer.
#pragma once
#include <memory>
#include <string>

#include "core/shards.h"

namespace mm {

constexpr int kManifestVersion = 1;

struct PreparedData {
  std::string dir;
  std::string tokenizer_path;
  uint64_t tokenizer_hash = 0;
  std::unique_ptr<ShardReader> train, valid;

  static PreparedData open(const std::string& dir);
};

}  // namespace mm
