// Linear forward/backward: GEMMs plus a bias kernel (epilogue fusion is a planned optimisation).
#include "linear.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
__global__ void add_bias_kernel(float* out, const float* b, int N, int OC) {
  const size_t total = static_cast<size_t>(N) * OC;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] += b[i % OC];
}
}  // namespace

void linear_forward(Context& ctx, float* out, const float* inp, const float* w, const float* b, int N, int IC, int OC) {
  gemm(ctx, false, true, N, OC, IC, 1.f, inp, IC, 0, w, IC, 0, 0.f, out, OC, 0);
  if (b) {
    const size_t total = static_cast<size_t>(N) * OC;
    add_bias_kernel<<<static_cast<int>(std::min<size_t>(blocks_for(total, 256), ctx.sm_count() * 16)), 256, 0, ctx.stream()>>>(out, b, N, OC);
    MM_LAUNCH_CHECK();
  }
}

void linear_backward(Context& ctx, float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w, int N, int IC, int OC) {
  if (ctx.precision() == Precision::Bf16) {  // round dout once for both GEMMs
    const __nv_bfloat16* dout16 = to_bf16(ctx, kSlotCastC, dout, static_cast<size_t>(N) * OC);
    if (dinp) gemm_bf16(ctx, false, false, N, IC, OC, 1.f, dout16, OC, 0, to_bf16(ctx, kSlotCastB, w, static_cast<size_t>(OC) * IC), IC, 0, 0.f, dinp, IC, 0);
    gemm_bf16(ctx, true, false, OC, IC, N, 1.f, dout16, OC, 0, to_bf16(ctx, kSlotCastB, inp, static_cast<size_t>(N) * IC), IC, 0, 1.f, dw, IC, 0);
  } else {
    if (dinp) gemm(ctx, false, false, N, IC, OC, 1.f, dout, OC, 0, w, IC, 0, 0.f, dinp, IC, 0);
    gemm(ctx, true, false, OC, IC, N, 1.f, dout, OC, 0, inp, IC, 0, 1.f, dw, IC, 0);
  }
  if (db) column_sum_accumulate(ctx, db, dout, N, OC);
}

}  // namespace mm::cuda
