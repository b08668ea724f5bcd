// The feed-forward's first GEMM with exact-erf GELU fused into its epilogue (Hopper, sm_90a):
// cuBLASLt's GELU epilogues are tanh-only, so this GEMM is our own. pre = bf16(h w1^T) and
// act = bf16(GELU(pre + b1)), what gemm_bf16 then gelu_forward_bf16 write, without writing pre and
// reading it back. C[M,N] = A[M,K] B[N,K]^T (bf16 operands, both K-major, fp32 accumulation) in
// 256 x 128 tiles with a persistent CTA per SM and warp roles: a loader thread's TMA copies fill a
// 3-stage ring of 64-wide K slices, two warpgroups multiply with wgmma and leave each tile in bf16 in
// shared memory, three helper warps write it out as pre and act (erf on the CUDA cores, coalesced
// global writes) while the warpgroups multiply the next tile.
//
// Opt-in (MASKMIX_FUSED_GELU_GEMM=1): on the H100 it takes 311 us for mixer d1024's fc1 (16384 x 4096 x
// 1024) where cuBLAS and gelu_forward_bf16 take 184 + 99 us. Its multiplies alone ran at 214 us (two
// CTAs of one warpgroup per SM); the GELU work, about 30 instructions an element, is what the three
// helper warps cannot hide. dev/NOTES.md lists the variants measured (fused backward included).
#pragma once
#include <initializer_list>

#include "context.cuh"

namespace mm::cuda {

// Whether the fused GEMM runs for this shape on this device: an sm_90 GPU with MASKMIX_FUSED_GELU_GEMM=1,
// a bias, M % 256 == 0, N % 128 == 0, K % 64 == 0, 16-byte aligned arrays. Otherwise use cuBLAS and the
// separate activation kernel.
bool gemm_gelu_supported(const Context& ctx, int M, int N, int K, const float* bias, std::initializer_list<const void*> arrays);

// pre[M,N] = bf16(x[M,K] w[N,K]^T); act[M,N] = bf16(GELU(pre + bias)), bias [N]. act may be null (pre
// only: --recompute rebuilds pre with the same GEMM).
void gemm_gelu_forward(Context& ctx, __nv_bfloat16* pre, __nv_bfloat16* act, const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, int M,
                       int N, int K);

}  // namespace mm::cuda
