// Text -> fixed-size embeddings with a language model: tokenize, pad to n_ctx (left by default, the
// paper's layout), encode, and take the hidden state at one position (default -2, the paper's choice:
// the last position is never trained under CLM) or the mean over real tokens.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tokenizer.h"
#include "model/model.h"

namespace mm {

struct EmbedOptions {
  int index = -2;       // position in the padded row (negative: from the end)
  bool mean = false;    // mean over real tokens instead
  bool left_pad = true;
  int batch = 32;
};

struct TokenRows {
  int count = 0, n_ctx = 0;
  std::vector<int32_t> tokens;               // [count, n_ctx]
  std::vector<std::pair<int, int>> real;     // real-token range of each row
};

TokenRows tokenize_rows(const Tokenizer& tokenizer, const std::vector<std::string>& texts, int n_ctx, int32_t pad, bool left_pad);

// Position of the embedding in row r (index mode), clamped into the row.
int embedding_position(const EmbedOptions& options, int n_ctx);

// Embeddings of rows [first, first + B) (B <= model.max_batch()), host [B, D]; leaves the model's
// activations in place for backward_encode.
std::vector<float> embed_batch(Model<float>& model, const TokenRows& rows, int first, int B, const EmbedOptions& options);

// All rows, in batches, with a progress line.
std::vector<float> embed_all(Model<float>& model, const TokenRows& rows, const EmbedOptions& options);

}  // namespace mm
