// Incremental decoding on the CPU reference: each new token costs one row per layer instead of a full
// forward. Transformers keep a KV cache; masked mixers cache each layer's normalised inputs (the rows
// their mixing matrices read), so a new position costs one row of each mixing matrix, O(n_ctx * d).
// Positions start at 0 (right padding: later pads cannot affect earlier positions in a causal model),
// so the logits equal a full forward of the same row (tested).
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "model/config.h"
#include "model/params.h"

namespace mm {

class IncrementalDecoder {
 public:
  IncrementalDecoder(const ModelConfig& config, const ParamTable& table, const std::vector<float>& params);
  // Consumes the token at the next position; returns the logits [vocab] predicting the one after it.
  std::vector<float> step(int32_t token);
  int position() const { return position_; }

 private:
  const float* p(const std::string& name) const;
  void mixer_block(int layer, float* x);
  void transformer_block(int layer, float* x);
  // One row of a causal mix: out[D] = sum_{j<=t} w[t,j] * rows[j] (+ bias), rows [>= t+1, D] per group.
  void mix_row(float* out, const float* w, const float* bias, const std::vector<float>& rows, int t, int Ti, int D, int groups) const;

  ModelConfig c_;
  const ParamTable& table_;
  const std::vector<float>& params_;
  int position_ = 0;
  std::vector<std::vector<float>> cache_a_, cache_b_, cache_c_;  // per layer, [n_ctx, width]
};

// Picks the next token: greedy when temperature <= 0, else softmax(logits / temperature) restricted to
// the top_k most likely (0 = all) and to the smallest set whose mass reaches top_p.
int32_t sample_token(const std::vector<float>& logits, double temperature, int top_k, double top_p, Rng& rng);

}  // namespace mm
