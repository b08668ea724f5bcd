// Distance between hidden states and a target, per row, with its gradient (the inversion objective).
//   kind 0 (L1):     loss_n = w_n * sum_d |out - target|          grad = w_n * sign(out - target)
//   kind 1 (L2):     loss_n = w_n * sum_d (out - target)^2        grad = 2 w_n (out - target)
//   kind 2 (cosine): loss_n = w_n * (1 - cos(out_n, target_n))    grad = its derivative
// out, target, dout [N,D]; weights [N] (0 drops a row from the objective); losses [N].
#pragma once
#include <cstddef>

namespace mm::cpu {
template <class T> void distance_loss(T* losses, T* dout, const T* out, const T* target, const T* weights, int N, int D, int kind);
}  // namespace mm::cpu
