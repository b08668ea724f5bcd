// Masked token mixing, the masked mixer's replacement for attention (PAPER.md 1.1). Features are split
// into G groups (G = 1 for the flat mixer, = heads for the multi-head mixer); group g mixes positions
// with its own matrix w[g] [To,Ti], of which only the lower triangle j <= i is ever read or written:
//   out[b,i,f] = sum_{j<=i} w[g,i,j] * inp[b,j,f] + c[g,i]      (f in group g)
// inp [B,Ti,D], out [B,To,D], w [G,To,Ti], c [G,To]. With causal = false the whole matrix is used
// (the bidirectional mixer of the retrieval model).
#pragma once
#include <cstddef>

namespace mm::cpu {
template <class T> void mix_forward(T* out, const T* inp, const T* w, const T* c, int B, int Ti, int To, int D, int G, bool causal);
template <class T> void mix_backward(T* dinp, T* dw, T* dc, const T* dout, const T* inp, const T* w, int B, int Ti, int To, int D, int G, bool causal);
}  // namespace mm::cpu
