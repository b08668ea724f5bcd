// Token shards: a 64-byte header, uint16 tokens, then uint64 story offsets (n_docs + 1 of them).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/fileio.h"

namespace mm {

constexpr char kShardMagic[8] = {'M', 'M', 'S', 'H', 'A', 'R', 'D', '\0'};
constexpr uint32_t kShardVersion = 1;

struct ShardHeader {          // little-endian, 64 bytes
  char magic[8];              // kShardMagic
  uint32_t version;           // kShardVersion
  uint32_t vocab_size;        // tokens are < vocab_size (<= 65536 so they fit uint16)
  int32_t pad_id, eos_id, bos_id;
  uint32_t reserved0;
  uint64_t n_tokens;
  uint64_t n_docs;
  uint64_t tokenizer_hash;    // fnv1a64 of the tokenizer model file's bytes
  uint64_t reserved1;
};
static_assert(sizeof(ShardHeader) == 64);

struct ShardInfo {
  uint32_t vocab_size = 0;
  int32_t pad_id = 0, eos_id = 0, bos_id = -1;
  uint64_t tokenizer_hash = 0;
};

// Streams documents to a temp file; finish() writes the header and offsets and renames into place.
class ShardWriter {
 public:
  ShardWriter(std::string path, ShardInfo info);
  ~ShardWriter();
  void add_document(const int* tokens, size_t count);
  void finish();
  uint64_t n_tokens() const { return n_tokens_; }
  uint64_t n_docs() const { return offsets_.size() - 1; }

 private:
  std::string path_;
  ShardInfo info_;
  AtomicFile file_;
  std::FILE* out_ = nullptr;
  std::vector<uint64_t> offsets_{0};
  uint64_t n_tokens_ = 0;
  std::vector<uint16_t> scratch_;
};

// Memory-mapped, fully validated shard.
class ShardReader {
 public:
  explicit ShardReader(const std::string& path);
  const ShardHeader& header() const { return header_; }
  uint64_t n_tokens() const { return header_.n_tokens; }
  uint64_t n_docs() const { return header_.n_docs; }
  const uint16_t* tokens() const { return tokens_; }
  uint64_t doc_begin(uint64_t doc) const { return offsets_[doc]; }
  uint64_t doc_end(uint64_t doc) const { return offsets_[doc + 1]; }
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  ShardHeader header_{};
  const uint16_t* tokens_ = nullptr;
  const uint64_t* offsets_ = nullptr;
};

}  // namespace mm
