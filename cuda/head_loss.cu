// Language-model head + loss at precision bf16 (see head_loss.cuh): the GEMMs around the bf16 cross-entropy.
#include "head_loss.cuh"

#include "cross_entropy.cuh"

namespace mm::cuda {

void head_loss_forward(Context& ctx, float* losses, float* dlogits, const float* top, const float* w, const int32_t* targets, int N, int D, int V,
                       const float* dscale) {
  auto* logits16 = reinterpret_cast<__nv_bfloat16*>(dlogits);  // [N,V]
  const __nv_bfloat16* top16 = to_bf16(ctx, kSlotCastB, top, static_cast<size_t>(N) * D);
  const __nv_bfloat16* w16 = to_bf16(ctx, kSlotCastA, w, static_cast<size_t>(V) * D);
  gemm_bf16(ctx, false, true, N, V, D, top16, D, w16, D, logits16, V);  // logits = top w^T
  cross_entropy(ctx, losses, logits16, logits16, targets, N, V, dscale);
}

void head_loss_backward(Context& ctx, float* dtop, float* dw, const float* dlogits, const float* top, const float* w, int N, int D, int V) {
  const auto* dlogits16 = reinterpret_cast<const __nv_bfloat16*>(dlogits);
  const __nv_bfloat16* top16 = to_bf16(ctx, kSlotCastB, top, static_cast<size_t>(N) * D);
  const __nv_bfloat16* w16 = to_bf16(ctx, kSlotCastA, w, static_cast<size_t>(V) * D);
  gemm_bf16(ctx, false, false, N, D, V, 1.f, dlogits16, V, 0, w16, D, 0, 0.f, dtop, D, 0);    // dtop = dlogits w
  gemm_bf16(ctx, true, false, V, D, N, 1.f, dlogits16, V, 0, top16, D, 0, 1.f, dw, D, 0);     // dw += dlogits^T top
}

}  // namespace mm::cuda
