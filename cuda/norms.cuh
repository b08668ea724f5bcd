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

// A sublayer's pre-norm (Ops PreNorm) at precision bf16: forward writes h = norm(x) (x itself when the
// norm is off) rounded to bf16 into `h` and returns it; backward takes the bf16 gradient dh and writes
// dx (plus norm.dskip), accumulating the norm's parameter gradients.
const __nv_bfloat16* prenorm_forward(Context& ctx, const PreNorm<float>& norm, __nv_bfloat16* h, const float* x, int N, int D);
void prenorm_backward(Context& ctx, const PreNorm<float>& norm, float* dx, const __nv_bfloat16* dh, const float* x, int N, int D);
}  // namespace mm::cuda
