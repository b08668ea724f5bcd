// Rotary position embedding (HF Llama: rotate_half pairs (i, i + Dh/2), inv_freq = 10000^(-2i/Dh)),
// in place on the q and k thirds of qkv [B,T,3D]; the backward applies the inverse rotation.
#pragma once
#include <cstddef>

namespace mm::cpu {
template <class T> void rope_forward(T* qkv, int B, int T_ctx, int D, int H);
template <class T> void rope_backward(T* dqkv, int B, int T_ctx, int D, int H);
// Rotates the H heads of one D-wide q or k row at `position` (direction -1 undoes it).
template <class T> void rope_rotate_row(T* x, int position, int D, int H, double direction);
}  // namespace mm::cpu
