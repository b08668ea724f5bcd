// LayerNorm forward/backward. x_hat = (x - mean) * rstd; out = x_hat * w + b.
#include "ops/layernorm.h"

#include <cmath>
#include <vector>

namespace mm::cpu {

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int N, int D) {
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    const T* xr = x + static_cast<size_t>(n) * D;
    double sum = 0;
    for (int d = 0; d < D; ++d) sum += xr[d];
    const double mu = sum / D;
    double var = 0;
    for (int d = 0; d < D; ++d) var += (xr[d] - mu) * (xr[d] - mu);
    const double rs = 1.0 / std::sqrt(var / D + 1e-5);
    T* o = out + static_cast<size_t>(n) * D;
    for (int d = 0; d < D; ++d) o[d] = static_cast<T>((xr[d] - mu) * rs) * w[d] + b[d];
    mean[n] = static_cast<T>(mu);
    rstd[n] = static_cast<T>(rs);
  }
}

template <class T>
void layernorm_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, const T* mean, const T* rstd, int N, int D) {
  // dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), g = dout * w
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    const T* xr = x + static_cast<size_t>(n) * D;
    const T* go = dout + static_cast<size_t>(n) * D;
    double g_mean = 0, gx_mean = 0;
    for (int d = 0; d < D; ++d) {
      double xh = (xr[d] - mean[n]) * rstd[n];
      double g = static_cast<double>(go[d]) * w[d];
      g_mean += g;
      gx_mean += g * xh;
    }
    g_mean /= D;
    gx_mean /= D;
    T* dxr = dx + static_cast<size_t>(n) * D;
    for (int d = 0; d < D; ++d) {
      double xh = (xr[d] - mean[n]) * rstd[n];
      double g = static_cast<double>(go[d]) * w[d];
      dxr[d] = static_cast<T>(rstd[n] * (g - g_mean - xh * gx_mean));
    }
  }
  // parameter grads: reduce over rows per column (parallel over columns: deterministic)
#pragma omp parallel for
  for (int d = 0; d < D; ++d) {
    double sw = 0, sb = 0;
    for (int n = 0; n < N; ++n) {
      double xh = (x[static_cast<size_t>(n) * D + d] - mean[n]) * rstd[n];
      sw += static_cast<double>(dout[static_cast<size_t>(n) * D + d]) * xh;
      sb += dout[static_cast<size_t>(n) * D + d];
    }
    dw[d] += static_cast<T>(sw);
    db[d] += static_cast<T>(sb);
  }
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int, int);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*, int, int);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*, const float*, const float*, int, int);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*, const double*, const double*, const double*, int, int);

}  // namespace mm::cpu
