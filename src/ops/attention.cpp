// Reference causal attention: explicit scores, softmax and weighted sums, one (batch, head) per task.
#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mm::cpu {

template <class T>
void attention_forward(T* out, T* probs, const T* qkv, int B, int T_ctx, int D, int H) {
  const int Dh = D / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const T* base = qkv + static_cast<size_t>(b) * T_ctx * 3 * D;
      T* p = probs + (static_cast<size_t>(b) * H + h) * T_ctx * T_ctx;
      for (int i = 0; i < T_ctx; ++i) {
        const T* q = base + static_cast<size_t>(i) * 3 * D + h * Dh;
        T* prow = p + static_cast<size_t>(i) * T_ctx;
        double maxv = -INFINITY;
        for (int j = 0; j <= i; ++j) {
          const T* k = base + static_cast<size_t>(j) * 3 * D + D + h * Dh;
          double s = 0;
          for (int d = 0; d < Dh; ++d) s += static_cast<double>(q[d]) * k[d];
          prow[j] = static_cast<T>(s * scale);
          maxv = std::max(maxv, static_cast<double>(prow[j]));
        }
        double sum = 0;
        for (int j = 0; j <= i; ++j) {
          double e = std::exp(prow[j] - maxv);
          prow[j] = static_cast<T>(e);
          sum += e;
        }
        for (int j = 0; j <= i; ++j) prow[j] = static_cast<T>(prow[j] / sum);
        for (int j = i + 1; j < T_ctx; ++j) prow[j] = 0;
        T* o = out + (static_cast<size_t>(b) * T_ctx + i) * D + h * Dh;
        for (int d = 0; d < Dh; ++d) {
          double acc = 0;
          for (int j = 0; j <= i; ++j) acc += static_cast<double>(prow[j]) * base[static_cast<size_t>(j) * 3 * D + 2 * D + h * Dh + d];
          o[d] = static_cast<T>(acc);
        }
      }
    }
}

template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* probs, int B, int T_ctx, int D, int H) {
  const int Dh = D / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const T* base = qkv + static_cast<size_t>(b) * T_ctx * 3 * D;
      T* dbase = dqkv + static_cast<size_t>(b) * T_ctx * 3 * D;
      for (int t = 0; t < T_ctx; ++t)
        for (int part = 0; part < 3; ++part)
          for (int d = 0; d < Dh; ++d) dbase[static_cast<size_t>(t) * 3 * D + part * D + h * Dh + d] = 0;
      const T* p = probs + (static_cast<size_t>(b) * H + h) * T_ctx * T_ctx;
      std::vector<double> dp(T_ctx);
      for (int i = 0; i < T_ctx; ++i) {
        const T* go = dout + (static_cast<size_t>(b) * T_ctx + i) * D + h * Dh;
        const T* prow = p + static_cast<size_t>(i) * T_ctx;
        double dot = 0;
        for (int j = 0; j <= i; ++j) {
          const T* v = base + static_cast<size_t>(j) * 3 * D + 2 * D + h * Dh;
          T* dv = dbase + static_cast<size_t>(j) * 3 * D + 2 * D + h * Dh;
          double s = 0;
          for (int d = 0; d < Dh; ++d) {
            s += static_cast<double>(go[d]) * v[d];
            dv[d] += static_cast<T>(prow[j] * go[d]);
          }
          dp[j] = s;
          dot += prow[j] * s;
        }
        const T* q = base + static_cast<size_t>(i) * 3 * D + h * Dh;
        T* dq = dbase + static_cast<size_t>(i) * 3 * D + h * Dh;
        for (int j = 0; j <= i; ++j) {
          double ds = prow[j] * (dp[j] - dot) * scale;
          const T* k = base + static_cast<size_t>(j) * 3 * D + D + h * Dh;
          T* dk = dbase + static_cast<size_t>(j) * 3 * D + D + h * Dh;
          for (int d = 0; d < Dh; ++d) {
            dq[d] += static_cast<T>(ds * k[d]);
            dk[d] += static_cast<T>(ds * q[d]);
          }
        }
      }
    }
}

template void attention_forward<float>(float*, float*, const float*, int, int, int, int);
template void attention_forward<double>(double*, double*, const double*, int, int, int, int);
template void attention_backward<float>(float*, const float*, const float*, const float*, int, int, int, int);
template void attention_backward<double>(double*, const double*, const double*, const double*, int, int, int, int);

}  // namespace mm::cpu
