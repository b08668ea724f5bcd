// AdamW (decoupled weight decay, bias correction, as torch.optim.AdamW) and the global-norm reduction
// used for gradient clipping, over the flat parameter buffer.
#pragma once
#include <cstddef>

namespace mm::cpu {
template <class T> double sum_squares(const T* x, size_t n);
template <class T> void adamw(T* params, const T* grads, T* m, T* v, size_t n, float lr, float beta1, float beta2, float eps,
                              float weight_decay, int step, float grad_scale);
}  // namespace mm::cpu
