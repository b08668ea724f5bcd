// Element access shared by the kernels that take fp32 or bf16 arrays (arithmetic stays fp32), and the
// host-side test for reading rows as float4s.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <initializer_list>

namespace mm::cuda {

__device__ __forceinline__ float as_float(float v) { return v; }
__device__ __forceinline__ float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void store_as(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_as(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Rows of D floats starting at these addresses (null ones ignored) can be read as float4s.
inline bool float4_rows(int D, std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return D % 4 == 0;
}

}  // namespace mm::cuda
