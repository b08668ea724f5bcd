// AdamW step and sum of squares (blockwise partial sums combined in a fixed order: deterministic).
#include "ops/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mm::cpu {

template <class T>
double sum_squares(const T* x, size_t n) {
  const size_t block = 1 << 16, blocks = (n + block - 1) / block;
  std::vector<double> partial(blocks, 0.0);
#pragma omp parallel for
  for (size_t k = 0; k < blocks; ++k) {
    double s = 0;
    for (size_t i = k * block; i < std::min(n, (k + 1) * block); ++i) s += static_cast<double>(x[i]) * x[i];
    partial[k] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

template <class T>
void adamw(T* params, const T* grads, T* m, T* v, size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, int step,
           float grad_scale) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), step);
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), step);
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) {
    const T g = grads[i] * static_cast<T>(grad_scale);
    m[i] = static_cast<T>(beta1) * m[i] + static_cast<T>(1 - beta1) * g;
    v[i] = static_cast<T>(beta2) * v[i] + static_cast<T>(1 - beta2) * g * g;
    const T m_hat = static_cast<T>(m[i] / bc1), v_hat = static_cast<T>(v[i] / bc2);
    params[i] -= static_cast<T>(lr) * (static_cast<T>(weight_decay) * params[i] + m_hat / (std::sqrt(v_hat) + static_cast<T>(eps)));
  }
}

template double sum_squares<float>(const float*, size_t);
template double sum_squares<double>(const double*, size_t);
template void adamw<float>(float*, const float*, float*, float*, size_t, float, float, float, float, float, int, float);
template void adamw<double>(double*, const double*, double*, double*, size_t, float, float, float, float, float, int, float);

}  // namespace mm::cpu
