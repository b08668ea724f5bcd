// GELU (exact) and SwiGLU, forward and backward.
#include "ops/activations.h"

#include <cmath>

namespace mm::cpu {

namespace {
constexpr double kInvSqrt2 = 0.7071067811865475244;
constexpr double kInvSqrt2Pi = 0.3989422804014326779;
}  // namespace

template <class T>
void gelu_forward(T* out, const T* inp, size_t n) {
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) {
    double x = inp[i];
    out[i] = static_cast<T>(0.5 * x * (1.0 + std::erf(x * kInvSqrt2)));
  }
}

template <class T>
void gelu_backward(T* dinp, const T* dout, const T* inp, size_t n) {
#pragma omp parallel for
  for (size_t i = 0; i < n; ++i) {
    double x = inp[i];
    double cdf = 0.5 * (1.0 + std::erf(x * kInvSqrt2));
    double pdf = kInvSqrt2Pi * std::exp(-0.5 * x * x);
    dinp[i] = static_cast<T>(dout[i] * (cdf + x * pdf));
  }
}

template <class T>
void swiglu_forward(T* out, const T* inp, int N, int H) {
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    const T* gate = inp + static_cast<size_t>(n) * 2 * H;
    const T* up = gate + H;
    for (int h = 0; h < H; ++h) {
      double g = gate[h];
      out[static_cast<size_t>(n) * H + h] = static_cast<T>(g / (1.0 + std::exp(-g)) * up[h]);
    }
  }
}

template <class T>
void swiglu_backward(T* dinp, const T* dout, const T* inp, int N, int H) {
#pragma omp parallel for
  for (int n = 0; n < N; ++n) {
    const T* gate = inp + static_cast<size_t>(n) * 2 * H;
    const T* up = gate + H;
    T* dgate = dinp + static_cast<size_t>(n) * 2 * H;
    T* dup = dgate + H;
    for (int h = 0; h < H; ++h) {
      double g = gate[h], s = 1.0 / (1.0 + std::exp(-g)), go = dout[static_cast<size_t>(n) * H + h];
      dup[h] = static_cast<T>(go * g * s);
      dgate[h] = static_cast<T>(go * up[h] * s * (1.0 + g * (1.0 - s)));
    }
  }
}

template void gelu_forward<float>(float*, const float*, size_t);
template void gelu_forward<double>(double*, const double*, size_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t);
template void gelu_backward<double>(double*, const double*, const double*, size_t);
template void swiglu_forward<float>(float*, const float*, int, int);
template void swiglu_forward<double>(double*, const double*, int, int);
template void swiglu_backward<float>(float*, const float*, const float*, int, int);
template void swiglu_backward<double>(double*, const double*, const double*, int, int);

}  // namespace mm::cpu
