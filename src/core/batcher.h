// Turns a token shard into training rows of n_ctx inputs and n_ctx targets.
//   left  : one story per row, truncated to n_ctx+1 tokens, pads in front (the paper's layout)
//   right : one story per row, pads after it
//   packed: stories joined with EOS and cut into rows of n_ctx+1 tokens (overlapping by one)
// Pad targets are -1 (ignored by the loss). Row order is a seeded permutation per epoch; the cursor
// (epoch, row) is the whole state, so a saved cursor resumes the exact batch sequence.
#pragma once
#include <cstdint>
#include <utility>
#include <string>
#include <vector>

#include "core/shards.h"

namespace mm {

enum class Padding { Left, Right, Packed };
Padding parse_padding(const std::string& name);
const char* padding_name(Padding padding);

// Puts `count` tokens into a row of `len` (truncating), padded with `pad` in front (left) or after.
// Returns the [begin, end) range of real tokens in the row.
std::pair<int, int> pad_story(const uint16_t* tokens, size_t count, int32_t* row, int len, int32_t pad, bool left);

struct BatchCursor {
  uint64_t epoch = 0;
  uint64_t row = 0;  // next row within the epoch's permutation
};

struct Batch {
  int batch = 0, n_ctx = 0;
  std::vector<int32_t> inputs;   // [batch, n_ctx]
  std::vector<int32_t> targets;  // [batch, n_ctx], -1 where the target is padding
};

class Batcher {
 public:
  Batcher(const ShardReader& shard, int n_ctx, int batch, Padding padding, uint64_t seed, bool shuffle = true);

  uint64_t rows_per_epoch() const { return n_rows_; }
  const BatchCursor& cursor() const { return cursor_; }
  void set_cursor(const BatchCursor& cursor);
  // Fills `out` with the next `batch` rows, moving to the next epoch (new permutation) when one ends.
  void next(Batch& out);
  // Row r of the current epoch's order, written into inputs/targets (each n_ctx long).
  void fill_row(uint64_t row_index, int32_t* inputs, int32_t* targets);

 private:
  void build_permutation();

  const ShardReader& shard_;
  int n_ctx_, batch_;
  Padding padding_;
  uint64_t seed_;
  bool shuffle_;
  uint64_t n_rows_ = 0;
  BatchCursor cursor_;
  std::vector<uint64_t> order_;  // permutation of rows for cursor_.epoch
  std::vector<int32_t> row_;     // scratch of n_ctx+1 tokens
};

}  // namespace mm
