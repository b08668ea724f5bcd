// Embedding extraction.
#include "model/embedder.h"

#include <iostream>

#include "core/batcher.h"
#include "core/error.h"

namespace mm {

TokenRows tokenize_rows(const Tokenizer& tokenizer, const std::vector<std::string>& texts, int n_ctx, int32_t pad, bool left_pad) {
  TokenRows rows;
  rows.count = static_cast<int>(texts.size());
  rows.n_ctx = n_ctx;
  rows.tokens.resize(static_cast<size_t>(rows.count) * n_ctx);
  std::vector<std::vector<uint16_t>> encoded(texts.size());
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int> ids = tokenizer.encode(texts[i]);
    encoded[i].assign(ids.begin(), ids.end());
  }
  for (int i = 0; i < rows.count; ++i)
    rows.real.push_back(pad_story(encoded[i].data(), encoded[i].size(), rows.tokens.data() + static_cast<size_t>(i) * n_ctx, n_ctx, pad, left_pad));
  return rows;
}

int embedding_position(const EmbedOptions& options, int n_ctx) {
  const int pos = options.index < 0 ? n_ctx + options.index : options.index;
  check(pos >= 0 && pos < n_ctx, fmt::format("--index {} is outside a row of {} tokens", options.index, n_ctx), "use e.g. --index -2");
  return pos;
}

std::vector<float> embed_batch(Model<float>& model, const TokenRows& rows, int first, int B, const EmbedOptions& options) {
  const int T = rows.n_ctx, D = model.config().d_model;
  const float* hidden = model.encode(rows.tokens.data() + static_cast<size_t>(first) * T, B);
  std::vector<float> out(static_cast<size_t>(B) * D, 0.0f);
  if (!options.mean) {
    const int pos = embedding_position(options, T);
    for (int b = 0; b < B; ++b)
      model.ops().to_host(out.data() + static_cast<size_t>(b) * D, hidden + (static_cast<size_t>(b) * T + pos) * D, D * sizeof(float));
    return out;
  }
  std::vector<float> all(static_cast<size_t>(B) * T * D);
  model.ops().to_host(all.data(), hidden, all.size() * sizeof(float));
  for (int b = 0; b < B; ++b) {
    const auto [begin, end] = rows.real[first + b];
    for (int t = begin; t < end; ++t)
      for (int d = 0; d < D; ++d) out[static_cast<size_t>(b) * D + d] += all[(static_cast<size_t>(b) * T + t) * D + d];
    for (int d = 0; d < D; ++d) out[static_cast<size_t>(b) * D + d] /= std::max(1, end - begin);
  }
  return out;
}

std::vector<float> embed_all(Model<float>& model, const TokenRows& rows, const EmbedOptions& options) {
  const int D = model.config().d_model;
  std::vector<float> out(static_cast<size_t>(rows.count) * D);
  for (int first = 0; first < rows.count; first += options.batch) {
    const int B = std::min(options.batch, rows.count - first);
    std::vector<float> part = embed_batch(model, rows, first, B, options);
    std::copy(part.begin(), part.end(), out.begin() + static_cast<size_t>(first) * D);
    std::cerr << fmt::format("\rembed: {}/{}   ", first + B, rows.count) << std::flush;
  }
  std::cerr << "\n";
  return out;
}

}  // namespace mm
