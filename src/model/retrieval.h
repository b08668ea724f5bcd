// Retrieval heads and losses.
//  - RetrievalModel: the paper's frozen-embedding retrieval model (PAPER.md 1.7, 5.1): bidirectional
//    (unmasked) mixer blocks over a set of n rows (row 0 = query, rows 1..n-1 = candidates) and a
//    Linear(d, 1) head; cross-entropy over the n-1 candidate scores.
//  - info_nce: the loss used to fine-tune an embedding model (PAPER.md 5.3), with its gradient.
//  - Bm25: the lexical baseline.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/blocks.h"
#include "model/config.h"
#include "model/params.h"
#include "ops/ops.h"

namespace mm {

template <class T>
class RetrievalModel {
 public:
  RetrievalModel(int dim, int set_size, int n_layers, Ops<T>& ops, int max_batch);
  static ModelConfig config_for(int dim, int set_size, int n_layers);

  const ModelConfig& config() const { return config_; }
  const ParamTable& params() const { return table_; }
  size_t num_params() const { return table_.total(); }
  T* param_data() { return params_.get(); }
  T* grad_data() { return grads_.get(); }
  void zero_grad() { ops_.zero(grads_.get(), table_.total()); }
  void init_params(uint64_t seed);
  void load_params(const std::vector<T>& host);
  std::vector<T> save_params();

  // sets: host [B, n, dim]; labels: host [B], the candidate index (0..n-2) of the true story.
  // Returns the mean cross-entropy; `scores` (host, [B, n-1]) receives the candidate logits.
  double forward(const T* sets, const int32_t* labels, int B, std::vector<double>* scores, bool for_backward);
  void backward();

 private:
  ModelConfig config_;
  Ops<T>& ops_;
  int max_batch_, last_batch_ = 0;
  ParamTable table_;
  ParamStore<T> store_;
  size_t head_w_ = 0, head_b_ = 0;
  std::vector<std::unique_ptr<Block<T>>> blocks_;
  DeviceArray<T, T> params_, grads_, scores_, dscores_, dtop_, da_, db_, ws_a_, ws_b_, ws_c_;
  std::vector<DeviceArray<T, T>> resid_;
  std::vector<T> host_dscores_;
};

// InfoNCE over cosine similarities: s_j = cos(q, d_j) / tau, loss = -log softmax(s)[label].
// Writes dq [D] and ddocs [n, D] (host, double precision).
double info_nce(const float* query, const float* docs, int n_docs, int dim, int label, double tau, std::vector<double>& dquery, std::vector<double>& ddocs);

// Okapi BM25 (k1 = 1.5, b = 0.75, idf = ln((N - df + 0.5) / (df + 0.5) + 1)) over lower-cased
// alphanumeric words.
class Bm25 {
 public:
  explicit Bm25(const std::vector<std::string>& documents);
  double score(const std::string& query, int document) const;
  static std::vector<std::string> words(const std::string& text);

 private:
  std::vector<std::unordered_map<std::string, int>> term_counts_;
  std::vector<int> lengths_;
  std::unordered_map<std::string, int> document_frequency_;
  double average_length_ = 0;
};

}  // namespace mm
