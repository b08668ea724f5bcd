// The training step's optimiser, shared by train, retrieve train and retrieve infonce: HF-style linear
// warmup/decay, global-norm gradient clipping (as torch.nn.utils.clip_grad_norm_) and AdamW.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/ops.h"

namespace mm {

struct AdamWSettings {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0, clip = 1.0;  // clip <= 0: off
};

// HF get_linear_schedule_with_warmup factor for the optimizer step with 0-based index `step`.
double linear_schedule(int64_t step, int64_t warmup, int64_t total);

// Clips by the global norm and applies AdamW step `step` (1-based); returns the norm before clipping.
double clipped_adamw_step(Ops<float>& ops, float* params, const float* grads, float* m, float* v, size_t n, double lr, const AdamWSettings& s,
                          int64_t step);

}  // namespace mm
