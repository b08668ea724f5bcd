// Schedule, clipping and AdamW step.
#include "model/optimizer.h"

#include <algorithm>
#include <cmath>

namespace mm {

double linear_schedule(int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / std::max<int64_t>(1, warmup);
  return std::max(0.0, static_cast<double>(total - step) / std::max<int64_t>(1, total - warmup));
}

double clipped_adamw_step(Ops<float>& ops, float* params, const float* grads, float* m, float* v, size_t n, double lr, const AdamWSettings& s,
                          int64_t step) {
  const double norm = std::sqrt(ops.sum_squares(grads, n));
  const double scale = (s.clip > 0 && norm > s.clip) ? s.clip / (norm + 1e-6) : 1.0;
  ops.adamw(params, grads, m, v, n, static_cast<float>(lr), static_cast<float>(s.beta1), static_cast<float>(s.beta2), static_cast<float>(s.eps),
            static_cast<float>(s.weight_decay), static_cast<int>(step), static_cast<float>(scale));
  return norm;
}

}  // namespace mm
