// Maps input-embedding vectors back to tokens: through the Moore-Penrose pseudo-inverse of the token
// embedding W_E [V,D] (the paper's decoding; logits = a @ pinv(W_E)), or by the nearest embedding row.
#pragma once
#include <cstdint>
#include <vector>

namespace mm {

enum class DecodeMethod { Pinv, Nearest };

class EmbeddingDecoder {
 public:
  EmbeddingDecoder(const std::vector<float>& wte, int vocab, int d_model, DecodeMethod method);
  // For each of the N rows of a [N,D] (host), the k best token ids, best first: out [N,k].
  std::vector<int32_t> topk(const float* a, int N, int k) const;

 private:
  int vocab_, d_model_;
  DecodeMethod method_;
  std::vector<float> projection_;  // [D,V]
  std::vector<float> row_norms_;   // ||W_v||^2 for nearest
};

// Pseudo-inverse of a full-rank matrix W [rows, cols] in double precision: [cols, rows].
std::vector<double> pseudo_inverse(const std::vector<double>& w, int rows, int cols);

}  // namespace mm
