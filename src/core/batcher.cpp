// Row construction for the three padding modes, and the seeded per-epoch row order.
#include "core/batcher.h"

#include <algorithm>
#include <numeric>
#include <tuple>

#include "core/error.h"
#include "core/rng.h"

namespace mm {

Padding parse_padding(const std::string& name) {
  if (name == "left") return Padding::Left;
  if (name == "right") return Padding::Right;
  if (name == "packed") return Padding::Packed;
  throw UsageError(fmt::format("unknown padding '{}'", name), "use --padding left, right or packed");
}

const char* padding_name(Padding padding) {
  switch (padding) {
    case Padding::Left: return "left";
    case Padding::Right: return "right";
    case Padding::Packed: return "packed";
  }
  return "?";
}

std::pair<int, int> pad_story(const uint16_t* tokens, size_t count, int32_t* row, int len, int32_t pad, bool left) {
  const int n = static_cast<int>(std::min<size_t>(count, static_cast<size_t>(len)));
  const int offset = left ? len - n : 0;
  std::fill(row, row + len, pad);
  for (int i = 0; i < n; ++i) row[offset + i] = tokens[i];
  return {offset, offset + n};
}

Batcher::Batcher(const ShardReader& shard, int n_ctx, int batch, Padding padding, uint64_t seed, bool shuffle)
    : shard_(shard), n_ctx_(n_ctx), batch_(batch), padding_(padding), seed_(seed), shuffle_(shuffle) {
  check(n_ctx > 0 && batch > 0, fmt::format("bad batch shape {}x{}", batch, n_ctx), "use a positive --batch and context");
  if (padding == Padding::Packed) {
    const uint64_t stream = shard.n_tokens() + shard.n_docs();  // each story followed by EOS
    n_rows_ = stream > 1 ? (stream - 1) / n_ctx : 0;
  } else {
    n_rows_ = shard.n_docs();
  }
  check(n_rows_ > 0, fmt::format("{}: no rows of {} tokens can be made from {} tokens", shard.path(), n_ctx, shard.n_tokens()),
        "prepare more text or use a shorter context");
  row_.resize(n_ctx + 1);
  build_permutation();
}

void Batcher::build_permutation() {
  order_.resize(n_rows_);
  std::iota(order_.begin(), order_.end(), uint64_t{0});
  if (!shuffle_) return;
  Rng rng(seed_ * 0x9E3779B97F4A7C15ull + cursor_.epoch + 1);
  for (uint64_t i = n_rows_ - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(i + 1)]);
}

void Batcher::set_cursor(const BatchCursor& cursor) {
  check(cursor.row <= n_rows_, fmt::format("data cursor row {} is past the {} rows of {}", cursor.row, n_rows_, shard_.path()),
        "the training state belongs to other data; resume with the same --data");
  bool new_epoch = cursor.epoch != cursor_.epoch;
  cursor_ = cursor;
  if (new_epoch) build_permutation();
}

void Batcher::fill_row(uint64_t row_index, int32_t* inputs, int32_t* targets) {
  const int len = n_ctx_ + 1;
  const int pad = shard_.header().pad_id;
  int32_t* row = row_.data();
  int valid_begin = 0, valid_end = len;               // row[valid_begin, valid_end) are real tokens
  if (padding_ == Padding::Packed) {
    // Stream position p: story d occupies [offset[d] + d, offset[d+1] + d) followed by one EOS.
    const uint64_t start = row_index * n_ctx_;
    uint64_t lo = 0, hi = shard_.n_docs();
    while (hi - lo > 1) {  // last story whose stream start <= start
      uint64_t mid = (lo + hi) / 2;
      if (shard_.doc_begin(mid) + mid <= start) lo = mid; else hi = mid;
    }
    uint64_t doc = lo, p = start;
    for (int i = 0; i < len; ++i, ++p) {
      while (doc + 1 < shard_.n_docs() && p >= shard_.doc_begin(doc + 1) + doc + 1) ++doc;
      uint64_t in_doc = p - (shard_.doc_begin(doc) + doc);
      uint64_t doc_len = shard_.doc_end(doc) - shard_.doc_begin(doc);
      row[i] = in_doc < doc_len ? shard_.tokens()[shard_.doc_begin(doc) + in_doc] : shard_.header().eos_id;
    }
  } else {
    const uint64_t doc = row_index;
    std::tie(valid_begin, valid_end) = pad_story(shard_.tokens() + shard_.doc_begin(doc), shard_.doc_end(doc) - shard_.doc_begin(doc), row, len,
                                                 pad, padding_ == Padding::Left);
  }
  for (int i = 0; i < n_ctx_; ++i) {
    inputs[i] = row[i];
    // Target i is token i+1 and counts when that token is real (as the paper's shifted labels with
    // pads set to -100: with left padding the last pad predicts the story's first token).
    bool counts = i + 1 >= valid_begin && i + 1 < valid_end;
    targets[i] = counts ? row[i + 1] : -1;
  }
}

void Batcher::next(Batch& out) {
  out.batch = batch_;
  out.n_ctx = n_ctx_;
  out.inputs.resize(static_cast<size_t>(batch_) * n_ctx_);
  out.targets.resize(static_cast<size_t>(batch_) * n_ctx_);
  for (int b = 0; b < batch_; ++b) {
    if (cursor_.row >= n_rows_) {
      cursor_.row = 0;
      ++cursor_.epoch;
      build_permutation();
    }
    fill_row(order_[cursor_.row++], out.inputs.data() + static_cast<size_t>(b) * n_ctx_, out.targets.data() + static_cast<size_t>(b) * n_ctx_);
  }
}

}  // namespace mm
