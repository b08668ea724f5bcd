// Pseudo-inverse by Cholesky of the Gram matrix (W full column rank: pinv = (W^T W)^-1 W^T), and top-k.
#include "model/decode.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "ops/gemm.h"

namespace mm {

namespace {
// In place: G = L L^T (lower). Returns false if G is not positive definite.
bool cholesky(std::vector<double>& g, int n) {
  for (int j = 0; j < n; ++j) {
    double d = g[static_cast<size_t>(j) * n + j];
    for (int k = 0; k < j; ++k) d -= g[static_cast<size_t>(j) * n + k] * g[static_cast<size_t>(j) * n + k];
    if (d <= 0) return false;
    const double l = std::sqrt(d);
    g[static_cast<size_t>(j) * n + j] = l;
#pragma omp parallel for
    for (int i = j + 1; i < n; ++i) {
      double s = g[static_cast<size_t>(i) * n + j];
      for (int k = 0; k < j; ++k) s -= g[static_cast<size_t>(i) * n + k] * g[static_cast<size_t>(j) * n + k];
      g[static_cast<size_t>(i) * n + j] = s / l;
    }
  }
  return true;
}

// Solves (L L^T) X = B for X in place, B [n, m] row-major.
void cholesky_solve(const std::vector<double>& L, int n, std::vector<double>& b, int m) {
#pragma omp parallel for
  for (int c = 0; c < m; ++c) {
    for (int i = 0; i < n; ++i) {  // forward: L y = b
      double s = b[static_cast<size_t>(i) * m + c];
      for (int k = 0; k < i; ++k) s -= L[static_cast<size_t>(i) * n + k] * b[static_cast<size_t>(k) * m + c];
      b[static_cast<size_t>(i) * m + c] = s / L[static_cast<size_t>(i) * n + i];
    }
    for (int i = n - 1; i >= 0; --i) {  // backward: L^T x = y
      double s = b[static_cast<size_t>(i) * m + c];
      for (int k = i + 1; k < n; ++k) s -= L[static_cast<size_t>(k) * n + i] * b[static_cast<size_t>(k) * m + c];
      b[static_cast<size_t>(i) * m + c] = s / L[static_cast<size_t>(i) * n + i];
    }
  }
}
}  // namespace

std::vector<double> pseudo_inverse(const std::vector<double>& w, int rows, int cols) {
  // rows >= cols: pinv = (W^T W)^-1 W^T ; rows < cols: pinv = W^T (W W^T)^-1
  const bool tall = rows >= cols;
  const int n = tall ? cols : rows;
  std::vector<double> gram(static_cast<size_t>(n) * n);
  if (tall) cpu::gemm(true, false, cols, cols, rows, 1.0, w.data(), cols, w.data(), cols, 0.0, gram.data(), cols);
  else cpu::gemm(false, true, rows, rows, cols, 1.0, w.data(), cols, w.data(), cols, 0.0, gram.data(), rows);
  double trace = 0;
  for (int i = 0; i < n; ++i) trace += gram[static_cast<size_t>(i) * n + i];
  for (int i = 0; i < n; ++i) gram[static_cast<size_t>(i) * n + i] += 1e-12 * trace / n;  // guards exact rank loss
  if (!cholesky(gram, n)) fail("the token embedding matrix is rank deficient", "use --decode nearest");
  std::vector<double> result(static_cast<size_t>(cols) * rows);
  if (tall) {
    // X [cols, rows] = G^-1 W^T
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) result[static_cast<size_t>(c) * rows + r] = w[static_cast<size_t>(r) * cols + c];
    cholesky_solve(gram, cols, result, rows);
  } else {
    // X = W^T G^-1  <=>  X^T [rows, cols] = G^-1 W
    std::vector<double> xt = w;
    cholesky_solve(gram, rows, xt, cols);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) result[static_cast<size_t>(c) * rows + r] = xt[static_cast<size_t>(r) * cols + c];
  }
  return result;
}

EmbeddingDecoder::EmbeddingDecoder(const std::vector<float>& wte, int vocab, int d_model, DecodeMethod method)
    : vocab_(vocab), d_model_(d_model), method_(method), projection_(static_cast<size_t>(d_model) * vocab) {
  if (method == DecodeMethod::Pinv) {
    std::vector<double> w(wte.begin(), wte.end());
    std::vector<double> pinv = pseudo_inverse(w, vocab, d_model);
    std::copy(pinv.begin(), pinv.end(), projection_.begin());
  } else {
    row_norms_.resize(vocab);
    for (int v = 0; v < vocab; ++v) {
      double s = 0;
      for (int d = 0; d < d_model; ++d) {
        const float x = wte[static_cast<size_t>(v) * d_model + d];
        projection_[static_cast<size_t>(d) * vocab + v] = 2.0f * x;  // score = 2 a.W_v - |W_v|^2
        s += static_cast<double>(x) * x;
      }
      row_norms_[v] = static_cast<float>(s);
    }
  }
}

std::vector<int32_t> EmbeddingDecoder::topk(const float* a, int N, int k) const {
  std::vector<float> scores(static_cast<size_t>(N) * vocab_);
  cpu::gemm(false, false, N, vocab_, d_model_, 1.0f, a, d_model_, projection_.data(), vocab_, 0.0f, scores.data(), vocab_);
  std::vector<int32_t> out(static_cast<size_t>(N) * k);
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    float* row = scores.data() + static_cast<size_t>(n) * vocab_;
    if (method_ == DecodeMethod::Nearest)
      for (int v = 0; v < vocab_; ++v) row[v] -= row_norms_[v];
    std::vector<int32_t> ids(vocab_);
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t x, int32_t y) { return row[x] > row[y] || (row[x] == row[y] && x < y); });
    std::copy(ids.begin(), ids.begin() + k, out.begin() + static_cast<size_t>(n) * k);
  }
  return out;
}

}  // namespace mm
