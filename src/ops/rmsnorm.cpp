// RMSNorm forward/backward.
#include "ops/rmsnorm.h"

#include <cmath>

namespace mm::cpu {

template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int N, int D) {
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    const T* xr = x + static_cast<size_t>(n) * D;
    double ss = 0;
    for (int d = 0; d < D; ++d) ss += static_cast<double>(xr[d]) * xr[d];
    const double rs = 1.0 / std::sqrt(ss / D + 1e-6);
    T* o = out + static_cast<size_t>(n) * D;
    for (int d = 0; d < D; ++d) o[d] = static_cast<T>(xr[d] * rs) * w[d];
    rstd[n] = static_cast<T>(rs);
  }
}

template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int N, int D) {
  // dx = rstd * (g - x_hat * mean(g * x_hat)), g = dout * w, x_hat = x * rstd
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    const T* xr = x + static_cast<size_t>(n) * D;
    const T* go = dout + static_cast<size_t>(n) * D;
    double gx = 0;
    for (int d = 0; d < D; ++d) gx += static_cast<double>(go[d]) * w[d] * xr[d] * rstd[n];
    gx /= D;
    T* dxr = dx + static_cast<size_t>(n) * D;
    for (int d = 0; d < D; ++d) dxr[d] = static_cast<T>(rstd[n] * (static_cast<double>(go[d]) * w[d] - xr[d] * rstd[n] * gx));
  }
#pragma omp parallel for
  for (int d = 0; d < D; ++d) {
    double s = 0;
    for (int n = 0; n < N; ++n) s += static_cast<double>(dout[static_cast<size_t>(n) * D + d]) * x[static_cast<size_t>(n) * D + d] * rstd[n];
    dw[d] += static_cast<T>(s);
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int, int);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*, int, int);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*, const double*, int, int);

}  // namespace mm::cpu
