// RMSNorm over the last dim D (eps 1e-6), as HF LlamaRMSNorm: out = x * rstd * w.
#pragma once
#include <cstddef>

namespace mm::cpu {
template <class T> void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int N, int D);
template <class T> void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int N, int D);
}  // namespace mm::cpu
