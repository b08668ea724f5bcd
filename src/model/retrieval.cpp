// Retrieval model (bidirectional mixer over candidate sets), InfoNCE and BM25.
#include "model/retrieval.h"

#include <cctype>
#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mm {

template <class T>
ModelConfig RetrievalModel<T>::config_for(int dim, int set_size, int n_layers) {
  ModelConfig c;
  c.kind = ModelKind::Mixer;
  c.d_model = dim;
  c.n_layers = n_layers;
  c.n_ctx = set_size;
  c.vocab = 1;
  c.causal = false;
  c.init = InitScheme::Torch;
  return c;
}

template <class T>
RetrievalModel<T>::RetrievalModel(int dim, int set_size, int n_layers, Ops<T>& ops, int max_batch)
    : config_(config_for(dim, set_size, n_layers)), ops_(ops), max_batch_(max_batch) {
  check(set_size >= 2, fmt::format("a retrieval set needs at least 2 rows, got {}", set_size), "use --n 32 (1 query + 31 candidates)");
  store_.table = &table_;
  for (int l = 0; l < n_layers; ++l) blocks_.push_back(make_block<T>(config_, l, table_, store_, ops, max_batch));
  const InitRules torch{false};
  head_w_ = table_.entries().size();
  torch.weight(table_, "head.weight", {1, dim}, dim);
  head_b_ = table_.entries().size();
  torch.bias(table_, "head.bias", {1}, dim);
  params_ = DeviceArray<T, T>(ops, table_.total());
  grads_ = DeviceArray<T, T>(ops, table_.total());
  store_.params = params_.get();
  store_.grads = grads_.get();
  const size_t rows = static_cast<size_t>(max_batch) * set_size;
  for (int l = 0; l <= n_layers; ++l) resid_.emplace_back(ops, rows * dim);
  scores_ = DeviceArray<T, T>(ops, rows);
  dscores_ = DeviceArray<T, T>(ops, rows);
  da_ = DeviceArray<T, T>(ops, rows * dim);
  db_ = DeviceArray<T, T>(ops, rows * dim);
  const auto widths = Block<T>::scratch_widths(config_);
  ws_a_ = DeviceArray<T, T>(ops, rows * widths.a);
  ws_b_ = DeviceArray<T, T>(ops, rows * widths.b);
  ws_c_ = DeviceArray<T, T>(ops, rows * widths.c);
}

template <class T>
void RetrievalModel<T>::init_params(uint64_t seed) {
  std::vector<T> host(table_.total());
  Rng rng(seed);
  table_.initialise(host.data(), rng);
  ops_.to_device(params_.get(), host.data(), host.size() * sizeof(T));
}

template <class T>
void RetrievalModel<T>::load_params(const std::vector<T>& host) {
  check(host.size() == table_.total(), "retrieval model parameter count mismatch", "the file was written for another --n or dimension");
  ops_.to_device(params_.get(), host.data(), host.size() * sizeof(T));
}

template <class T>
std::vector<T> RetrievalModel<T>::save_params() {
  std::vector<T> host(table_.total());
  ops_.to_host(host.data(), params_.get(), host.size() * sizeof(T));
  return host;
}

template <class T>
double RetrievalModel<T>::forward(const T* sets, const int32_t* labels, int B, std::vector<double>* scores_out, bool for_backward) {
  check(B > 0 && B <= max_batch_, fmt::format("batch {} exceeds {}", B, max_batch_), "lower --batch");
  const int n = config_.n_ctx, D = config_.d_model, N = B * n;
  ops_.to_device(resid_[0].get(), sets, static_cast<size_t>(N) * D * sizeof(T));
  for (int l = 0; l < config_.n_layers; ++l) blocks_[l]->forward(resid_[l].get(), resid_[l + 1].get(), B);
  ops_.linear_forward(scores_.get(), resid_[config_.n_layers].get(), store_.p(head_w_), store_.p(head_b_), N, D, 1);
  std::vector<T> scores(N);
  ops_.to_host(scores.data(), scores_.get(), N * sizeof(T));
  last_batch_ = B;
  double total = 0;
  host_dscores_.assign(N, T(0));
  if (scores_out) scores_out->assign(static_cast<size_t>(B) * (n - 1), 0.0);
  for (int b = 0; b < B; ++b) {
    const T* s = scores.data() + static_cast<size_t>(b) * n + 1;  // candidates are rows 1..n-1
    double maxv = s[0];
    for (int j = 1; j < n - 1; ++j) maxv = std::max(maxv, static_cast<double>(s[j]));
    double sum = 0;
    for (int j = 0; j < n - 1; ++j) sum += std::exp(s[j] - maxv);
    const double log_sum = std::log(sum) + maxv;
    total += log_sum - s[labels[b]];
    for (int j = 0; j < n - 1; ++j) {
      if (scores_out) (*scores_out)[static_cast<size_t>(b) * (n - 1) + j] = s[j];
      host_dscores_[static_cast<size_t>(b) * n + 1 + j] = static_cast<T>((std::exp(s[j] - log_sum) - (j == labels[b])) / B);
    }
  }
  if (for_backward) ops_.to_device(dscores_.get(), host_dscores_.data(), N * sizeof(T));
  return total / B;
}

template <class T>
void RetrievalModel<T>::backward() {
  const int B = last_batch_, n = config_.n_ctx, D = config_.d_model, N = B * n;
  ops_.linear_backward(da_.get(), store_.g(head_w_), store_.g(head_b_), dscores_.get(), resid_[config_.n_layers].get(), store_.p(head_w_), N, D, 1);
  Workspace<T> ws{ws_a_.get(), ws_b_.get(), ws_c_.get()};
  for (int l = config_.n_layers - 1; l >= 0; --l) {
    blocks_[l]->backward(da_.get(), db_.get(), B, ws);
    std::swap(da_, db_);
  }
}

template class RetrievalModel<float>;
template class RetrievalModel<double>;

double info_nce(const float* query, const float* docs, int n_docs, int dim, int label, double tau, std::vector<double>& dquery, std::vector<double>& ddocs) {
  auto norm = [dim](const float* x) {
    double s = 0;
    for (int d = 0; d < dim; ++d) s += static_cast<double>(x[d]) * x[d];
    return std::sqrt(s) + 1e-12;
  };
  const double nq = norm(query);
  std::vector<double> cosines(n_docs), norms(n_docs);
  for (int j = 0; j < n_docs; ++j) {
    const float* dj = docs + static_cast<size_t>(j) * dim;
    double dot = 0;
    for (int d = 0; d < dim; ++d) dot += static_cast<double>(query[d]) * dj[d];
    norms[j] = norm(dj);
    cosines[j] = dot / (nq * norms[j]);
  }
  double maxv = -INFINITY;
  for (double c : cosines) maxv = std::max(maxv, c / tau);
  double sum = 0;
  for (double c : cosines) sum += std::exp(c / tau - maxv);
  const double log_sum = std::log(sum) + maxv;
  const double loss = log_sum - cosines[label] / tau;
  dquery.assign(dim, 0.0);
  ddocs.assign(static_cast<size_t>(n_docs) * dim, 0.0);
  for (int j = 0; j < n_docs; ++j) {
    const double g = (std::exp(cosines[j] / tau - log_sum) - (j == label)) / tau;  // dL / dcos_j
    const float* dj = docs + static_cast<size_t>(j) * dim;
    for (int d = 0; d < dim; ++d) {
      // dcos/dq = d/(|q||d|) - cos q/|q|^2 ; dcos/dd = q/(|q||d|) - cos d/|d|^2
      dquery[d] += g * (dj[d] / (nq * norms[j]) - cosines[j] * query[d] / (nq * nq));
      ddocs[static_cast<size_t>(j) * dim + d] = g * (query[d] / (nq * norms[j]) - cosines[j] * dj[d] / (norms[j] * norms[j]));
    }
  }
  return loss;
}

std::vector<std::string> Bm25::words(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  for (unsigned char c : text) {
    if (std::isalnum(c)) current += static_cast<char>(std::tolower(c));
    else if (!current.empty()) out.push_back(std::move(current)), current.clear();
  }
  if (!current.empty()) out.push_back(current);
  return out;
}

Bm25::Bm25(const std::vector<std::string>& documents) {
  for (const std::string& doc : documents) {
    std::unordered_map<std::string, int> counts;
    const auto ws = words(doc);
    for (const auto& w : ws) ++counts[w];
    for (const auto& [w, c] : counts) ++document_frequency_[w];
    lengths_.push_back(static_cast<int>(ws.size()));
    average_length_ += ws.size();
    term_counts_.push_back(std::move(counts));
  }
  average_length_ /= std::max<size_t>(1, documents.size());
}

double Bm25::score(const std::string& query, int document) const {
  const double k1 = 1.5, b = 0.75, N = static_cast<double>(term_counts_.size());
  const auto& counts = term_counts_[document];
  double s = 0;
  for (const auto& w : words(query)) {
    auto tf = counts.find(w);
    if (tf == counts.end()) continue;
    const double df = document_frequency_.at(w);
    const double idf = std::log((N - df + 0.5) / (df + 0.5) + 1.0);
    s += idf * tf->second * (k1 + 1) / (tf->second + k1 * (1 - b + b * lengths_[document] / average_length_));
  }
  return s;
}

}  // namespace mm
