// Softmax cross-entropy per row; the gradient is written in the same pass (may overwrite the logits).
#include "ops/cross_entropy.h"

#include <algorithm>
#include <cmath>

namespace mm::cpu {

template <class T>
void cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N, int V, T dscale) {
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    const T* row = logits + static_cast<size_t>(n) * V;
    T* drow = dlogits ? dlogits + static_cast<size_t>(n) * V : nullptr;
    const int target = targets[n];
    if (target < 0) {
      losses[n] = 0;
      if (drow)
        for (int v = 0; v < V; ++v) drow[v] = 0;
      continue;
    }
    double maxv = row[0];
    for (int v = 1; v < V; ++v) maxv = std::max(maxv, static_cast<double>(row[v]));
    double sum = 0;
    for (int v = 0; v < V; ++v) sum += std::exp(row[v] - maxv);
    const double log_sum = std::log(sum) + maxv;
    losses[n] = static_cast<T>(log_sum - row[target]);
    if (drow) {
      for (int v = 0; v < V; ++v) drow[v] = static_cast<T>(std::exp(row[v] - log_sum) * dscale);
      drow[target] -= dscale;
    }
  }
}

template void cross_entropy<float>(float*, float*, const float*, const int32_t*, int, int, float);
template void cross_entropy<double>(double*, double*, const double*, const int32_t*, int, int, double);

}  // namespace mm::cpu
