// Norm kernels. Row statistics in fp32 with a two-pass mean/variance per row.
#include "norms.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
constexpr int kWarpsPerBlock = 8;

__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N, int D) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* xr = x + static_cast<size_t>(row) * D;
  float s = 0.f;
  for (int d = lane; d < D; d += 32) s += xr[d];
  const float mu = warp_sum(s) / D;
  float v = 0.f;
  for (int d = lane; d < D; d += 32) v += (xr[d] - mu) * (xr[d] - mu);
  const float rs = rsqrtf(warp_sum(v) / D + 1e-5f);
  float* o = out + static_cast<size_t>(row) * D;
  for (int d = lane; d < D; d += 32) o[d] = (xr[d] - mu) * rs * w[d] + b[d];
  if (lane == 0) { mean[row] = mu; rstd[row] = rs; }
}

__global__ void layernorm_backward_kernel(float* dx, const float* dout, const float* x, const float* w, const float* mean, const float* rstd, int N, int D) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* xr = x + static_cast<size_t>(row) * D;
  const float* go = dout + static_cast<size_t>(row) * D;
  const float mu = mean[row], rs = rstd[row];
  float gm = 0.f, gxm = 0.f;
  for (int d = lane; d < D; d += 32) {
    const float g = go[d] * w[d];
    gm += g;
    gxm += g * (xr[d] - mu) * rs;
  }
  gm = warp_sum(gm) / D;
  gxm = warp_sum(gxm) / D;
  float* dxr = dx + static_cast<size_t>(row) * D;
  for (int d = lane; d < D; d += 32) dxr[d] = rs * (go[d] * w[d] - gm - (xr[d] - mu) * rs * gxm);
}

// Per-row products dout * x_hat (for dw) written to a [N, D] scratch; db is a plain column sum.
__global__ void norm_weight_products(float* prod, const float* dout, const float* x, const float* mean, const float* rstd, int N, int D) {
  const size_t total = static_cast<size_t>(N) * D;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t row = i / D;
    prod[i] = dout[i] * (x[i] - (mean ? mean[row] : 0.f)) * rstd[row];
  }
}

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* x, const float* w, int N, int D) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* xr = x + static_cast<size_t>(row) * D;
  float ss = 0.f;
  for (int d = lane; d < D; d += 32) ss += xr[d] * xr[d];
  const float rs = rsqrtf(warp_sum(ss) / D + 1e-6f);
  float* o = out + static_cast<size_t>(row) * D;
  for (int d = lane; d < D; d += 32) o[d] = xr[d] * rs * w[d];
  if (lane == 0) rstd[row] = rs;
}

__global__ void rmsnorm_backward_kernel(float* dx, const float* dout, const float* x, const float* w, const float* rstd, int N, int D) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* xr = x + static_cast<size_t>(row) * D;
  const float* go = dout + static_cast<size_t>(row) * D;
  const float rs = rstd[row];
  float gx = 0.f;
  for (int d = lane; d < D; d += 32) gx += go[d] * w[d] * xr[d] * rs;
  gx = warp_sum(gx) / D;
  float* dxr = dx + static_cast<size_t>(row) * D;
  for (int d = lane; d < D; d += 32) dxr[d] = rs * (go[d] * w[d] - xr[d] * rs * gx);
}

int row_blocks(int N) { return (N + kWarpsPerBlock - 1) / kWarpsPerBlock; }
int grid(Context& ctx, size_t n) { return static_cast<int>(std::min<size_t>(blocks_for(n, 256), static_cast<size_t>(ctx.sm_count()) * 16)); }
}  // namespace

void layernorm_forward(Context& ctx, float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N, int D) {
  layernorm_forward_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, ctx.stream()>>>(out, mean, rstd, x, w, b, N, D);
  MM_LAUNCH_CHECK();
}

void layernorm_backward(Context& ctx, float* dx, float* dw, float* db, const float* dout, const float* x, const float* w, const float* mean,
                        const float* rstd, int N, int D) {
  layernorm_backward_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, ctx.stream()>>>(dx, dout, x, w, mean, rstd, N, D);
  MM_LAUNCH_CHECK();
  float* prod = ctx.scratch(kSlotNormProducts, static_cast<size_t>(N) * D);
  norm_weight_products<<<grid(ctx, static_cast<size_t>(N) * D), 256, 0, ctx.stream()>>>(prod, dout, x, mean, rstd, N, D);
  MM_LAUNCH_CHECK();
  column_sum_accumulate(ctx, dw, prod, N, D);
  column_sum_accumulate(ctx, db, dout, N, D);
}

void rmsnorm_forward(Context& ctx, float* out, float* rstd, const float* x, const float* w, int N, int D) {
  rmsnorm_forward_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, ctx.stream()>>>(out, rstd, x, w, N, D);
  MM_LAUNCH_CHECK();
}

void rmsnorm_backward(Context& ctx, float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd, int N, int D) {
  rmsnorm_backward_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, ctx.stream()>>>(dx, dout, x, w, rstd, N, D);
  MM_LAUNCH_CHECK();
  float* prod = ctx.scratch(kSlotNormProducts, static_cast<size_t>(N) * D);
  norm_weight_products<<<grid(ctx, static_cast<size_t>(N) * D), 256, 0, ctx.stream()>>>(prod, dout, x, nullptr, rstd, N, D);
  MM_LAUNCH_CHECK();
  column_sum_accumulate(ctx, dw, prod, N, D);
}

}  // namespace mm::cuda
