// Distance losses for input inversion.
#include "ops/distance.h"

#include <cmath>

namespace mm::cpu {

template <class T>
void distance_loss(T* losses, T* dout, const T* out, const T* target, const T* weights, int N, int D, int kind) {
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    const T* o = out + static_cast<size_t>(n) * D;
    const T* t = target + static_cast<size_t>(n) * D;
    T* g = dout + static_cast<size_t>(n) * D;
    const double w = weights[n];
    double loss = 0;
    if (kind == 2) {
      double ot = 0, oo = 0, tt = 0;
      for (int d = 0; d < D; ++d) {
        ot += static_cast<double>(o[d]) * t[d];
        oo += static_cast<double>(o[d]) * o[d];
        tt += static_cast<double>(t[d]) * t[d];
      }
      const double no = std::sqrt(oo) + 1e-12, nt = std::sqrt(tt) + 1e-12, cosine = ot / (no * nt);
      loss = 1.0 - cosine;
      for (int d = 0; d < D; ++d) g[d] = static_cast<T>(-w * (t[d] / (no * nt) - cosine * o[d] / (no * no)));
    } else {
      for (int d = 0; d < D; ++d) {
        const double diff = static_cast<double>(o[d]) - t[d];
        loss += kind == 0 ? std::fabs(diff) : diff * diff;
        g[d] = static_cast<T>(kind == 0 ? w * ((diff > 0) - (diff < 0)) : 2.0 * w * diff);
      }
    }
    losses[n] = static_cast<T>(w * loss);
  }
}

template void distance_loss<float>(float*, float*, const float*, const float*, const float*, int, int, int);
template void distance_loss<double>(double*, double*, const double*, const double*, const double*, int, int, int);

}  // namespace mm::cpu
