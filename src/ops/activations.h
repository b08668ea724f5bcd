// Pointwise activations: exact (erf) GELU, and SwiGLU = silu(gate) * up.
#pragma once
#include <cstddef>

namespace mm::cpu {
template <class T> void gelu_forward(T* out, const T* inp, size_t n);
template <class T> void gelu_backward(T* dinp, const T* dout, const T* inp, size_t n);
// inp [N, 2H] = (gate | up) -> out [N, H]
template <class T> void swiglu_forward(T* out, const T* inp, int N, int H);
template <class T> void swiglu_backward(T* dinp, const T* dout, const T* inp, int N, int H);
}  // namespace mm::cpu
