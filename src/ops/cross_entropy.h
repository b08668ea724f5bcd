// Fused softmax + cross-entropy + dlogits over logits [N,V]; targets < 0 are ignored.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mm::cpu {
template <class T> void cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N, int V, T dscale);
}  // namespace mm::cpu
