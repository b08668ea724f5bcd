// The feed-forward's GEMMs around exact-erf GELU with the activation fused into the GEMM's epilogue
// (Hopper, sm_90a): cuBLASLt's GELU epilogues are tanh-only, so these GEMMs are our own. Each computes
// C[M,N] = A[M,K] B[N,K]^T (bf16 operands, both K-major, fp32 accumulation) in 128 x 128 tiles with a
// persistent CTA per SM and warp roles: a loader thread's TMA copies fill a 5-stage ring of 64-wide K
// slices, one warpgroup multiplies with wgmma and leaves each tile in bf16 in one of two shared-memory
// buffers, six helper warps apply GELU (erf on the CUDA cores) to the other buffer, reading and writing
// global memory along rows, so the tensor cores keep working while the epilogue runs.
//
// Forward (fc1):  pre = bf16(h w1^T), act = bf16(GELU(pre + b1)): what gemm_bf16 then gelu_forward_bf16
//                 write, without writing pre and reading it back.
// Backward (dact GEMM): g = bf16(dout w2), x = pre + b1, dpre = bf16(g GELU'(x)), act = bf16(GELU(x)),
//                 db1 += column sums of dpre: what gemm_bf16 then gelu_backward_bias_bf16 do, without
//                 the [M,N] dact array (one write and one read of it saved).
#pragma once
#include <initializer_list>

#include "context.cuh"

namespace mm::cuda {

// Whether the fused GEMMs run for this shape on this device: an sm_90 GPU (and MASKMIX_FUSED_GELU_GEMM
// not 0), M % 128 == 0, N % 128 == 0, K % 64 == 0, 16-byte aligned arrays. Otherwise use cuBLAS and the
// separate activation kernels.
bool gemm_gelu_supported(const Context& ctx, int M, int N, int K, std::initializer_list<const void*> arrays);

// pre[M,N] = bf16(x[M,K] w[N,K]^T); act[M,N] = bf16(GELU(pre + bias)), bias [N]. act may be null (pre
// only: --recompute rebuilds pre with the same GEMM), bias may be null (zero).
void gemm_gelu_forward(Context& ctx, __nv_bfloat16* pre, __nv_bfloat16* act, const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias, int M,
                       int N, int K);
// dact = bf16(dout[M,K] w[K,N]) (w as stored: the second layer's weight, [D, F]); dpre[M,N] and act[M,N]
// from pre[M,N] and bias [N] as above; dbias[N] += column sums of the stored dpre (deterministic: per
// 128-row tile in a fixed order, then the tiles in order). dbias and bias may be null.
void gemm_gelu_backward(Context& ctx, __nv_bfloat16* dpre, __nv_bfloat16* act, float* dbias, const __nv_bfloat16* dout, const __nv_bfloat16* w,
                        const __nv_bfloat16* pre, const float* bias, int M, int N, int K);

}  // namespace mm::cuda
