// RoPE rotation; backward = rotation by the negative angle (the map is orthogonal).
#include "ops/rope.h"

#include <cmath>

namespace mm::cpu {

template <class T>
void rope_rotate_row(T* row, int position, int D, int H, double direction) {
  const int Dh = D / H, half = Dh / 2;
  for (int h = 0; h < H; ++h) {
    T* x = row + h * Dh;
    for (int i = 0; i < half; ++i) {
      const double angle = position * std::pow(10000.0, -2.0 * i / Dh);
      const double c = std::cos(angle), s = direction * std::sin(angle);
      const double x1 = x[i], x2 = x[i + half];
      x[i] = static_cast<T>(x1 * c - x2 * s);
      x[i + half] = static_cast<T>(x2 * c + x1 * s);
    }
  }
}

namespace {
template <class T>
void rotate(T* qkv, int B, int T_ctx, int D, int H, double direction) {
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T_ctx; ++t)
      for (int part = 0; part < 2; ++part)  // q, k
        rope_rotate_row(qkv + (static_cast<size_t>(b) * T_ctx + t) * 3 * D + part * D, t, D, H, direction);
}
}  // namespace

template <class T>
void rope_forward(T* qkv, int B, int T_ctx, int D, int H) { rotate(qkv, B, T_ctx, D, H, 1.0); }
template <class T>
void rope_backward(T* dqkv, int B, int T_ctx, int D, int H) { rotate(dqkv, B, T_ctx, D, H, -1.0); }

template void rope_rotate_row<float>(float*, int, int, int, double);
template void rope_rotate_row<double>(double*, int, int, int, double);
template void rope_forward<float>(float*, int, int, int, int);
template void rope_forward<double>(double*, int, int, int, int);
template void rope_backward<float>(float*, int, int, int, int);
template void rope_backward<double>(double*, int, int, int, int);

}  // namespace mm::cpu
