// Token shard writer and validating reader.
#include "core/shards.h"

#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace mm {

namespace {
constexpr const char* kShardHint = "re-create it with `maskmix prepare`";
uint64_t align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }
}  // namespace

ShardWriter::ShardWriter(std::string path, ShardInfo info) : path_(std::move(path)), info_(info), file_(path_) {
  if (info_.vocab_size == 0 || info_.vocab_size > 65536)
    fail(fmt::format("{}: vocabulary of {} tokens does not fit a uint16 shard", path_, info_.vocab_size), "use a tokenizer with at most 65535 pieces");
  out_ = std::fopen(file_.temp_path().c_str(), "wb");
  if (!out_) fail(fmt::format("{}: cannot write", file_.temp_path()), "check that the output folder is writable");
  ShardHeader blank{};
  std::fwrite(&blank, sizeof blank, 1, out_);
}

ShardWriter::~ShardWriter() {
  if (out_) std::fclose(out_);
}

void ShardWriter::add_document(const int* tokens, size_t count) {
  scratch_.resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (tokens[i] < 0 || static_cast<uint32_t>(tokens[i]) >= info_.vocab_size)
      fail(fmt::format("{}: token id {} is outside the vocabulary of {}", path_, tokens[i], info_.vocab_size), "the tokenizer and the shard disagree; this is a bug, please report it");
    scratch_[i] = static_cast<uint16_t>(tokens[i]);
  }
  if (count && std::fwrite(scratch_.data(), 2, count, out_) != count)
    fail(fmt::format("{}: write failed", file_.temp_path()), "check free disk space");
  n_tokens_ += count;
  offsets_.push_back(n_tokens_);
}

void ShardWriter::finish() {
  uint64_t token_bytes = n_tokens_ * 2;
  static const char zeros[8] = {};
  std::fwrite(zeros, 1, align8(token_bytes) - token_bytes, out_);
  std::fwrite(offsets_.data(), 8, offsets_.size(), out_);
  ShardHeader header{};
  std::memcpy(header.magic, kShardMagic, 8);
  header.version = kShardVersion;
  header.vocab_size = info_.vocab_size;
  header.pad_id = info_.pad_id;
  header.eos_id = info_.eos_id;
  header.bos_id = info_.bos_id;
  header.n_tokens = n_tokens_;
  header.n_docs = offsets_.size() - 1;
  header.tokenizer_hash = info_.tokenizer_hash;
  std::fseek(out_, 0, SEEK_SET);
  std::fwrite(&header, sizeof header, 1, out_);
  bool ok = std::fflush(out_) == 0;
  ok = (std::fclose(out_) == 0) && ok;
  out_ = nullptr;
  if (!ok) fail(fmt::format("{}: write failed", file_.temp_path()), "check free disk space");
  file_.commit();
}

ShardReader::ShardReader(const std::string& path) : file_(path) {
  if (file_.size() < sizeof(ShardHeader))
    fail(fmt::format("{}: truncated shard ({} bytes, header alone needs 64)", path, file_.size()), kShardHint);
  std::memcpy(&header_, file_.data(), sizeof header_);
  if (std::memcmp(header_.magic, kShardMagic, 8) != 0)
    fail(fmt::format("{}: not a maskmix token shard (bad magic)", path), kShardHint);
  if (header_.version != kShardVersion)
    fail(fmt::format("{}: shard format version {} but this maskmix reads version {}", path, header_.version, kShardVersion), kShardHint);
  if (header_.vocab_size == 0 || header_.vocab_size > 65536)
    fail(fmt::format("{}: bad vocabulary size {} in shard header", path, header_.vocab_size), kShardHint);
  const uint64_t expected = sizeof(ShardHeader) + align8(header_.n_tokens * 2) + 8 * (header_.n_docs + 1);
  if (header_.n_tokens > (uint64_t{1} << 40) || header_.n_docs > (uint64_t{1} << 36) || expected != file_.size())
    fail(fmt::format("{}: size {} bytes does not match the header ({} tokens, {} stories need {} bytes); truncated or corrupt", path,
                     file_.size(), header_.n_tokens, header_.n_docs, expected), kShardHint);
  tokens_ = reinterpret_cast<const uint16_t*>(file_.data() + sizeof(ShardHeader));
  offsets_ = reinterpret_cast<const uint64_t*>(file_.data() + sizeof(ShardHeader) + align8(header_.n_tokens * 2));
  if (offsets_[0] != 0 || offsets_[header_.n_docs] != header_.n_tokens)
    fail(fmt::format("{}: story offsets do not cover the tokens; corrupt", path), kShardHint);
  for (uint64_t d = 0; d < header_.n_docs; ++d)
    if (offsets_[d + 1] < offsets_[d]) fail(fmt::format("{}: story offsets decrease at story {}; corrupt", path, d), kShardHint);
  for (uint64_t i = 0; i < header_.n_tokens; ++i)
    if (tokens_[i] >= header_.vocab_size)
      fail(fmt::format("{}: token {} at position {} is outside the vocabulary of {}; corrupt", path, tokens_[i], i, header_.vocab_size), kShardHint);
}

}  // namespace mm
