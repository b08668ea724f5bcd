// LayerNorm (eps 1e-5, affine) and RMSNorm (eps 1e-6), one warp per row; parameter gradients reduced
// deterministically (per-chunk partials, then a fixed-order sum). Backward adds dskip (may be null) to dx.
#pragma once
#include "context.cuh"

namespace mm::cuda {
void layernorm_forward(Context& ctx, float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N, int D);
void layernorm_backward(Context& ctx, float* dx, float* dw, float* db, const float* dout, const float* dskip, const float* x, const float* w,
                        const float* mean, const float* rstd, int N, int D);
void rmsnorm_forward(Context& ctx, float* out, float* rstd, const float* x, const float* w, int N, int D);
void rmsnorm_backward(Context& ctx, float* dx, float* dw, const float* dout, const float* dskip, const float* x, const float* w, const float* rstd, int N,
                      int D);
}  // namespace mm::cuda
