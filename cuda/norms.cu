// Norm kernels. Row statistics in fp32 with a two-pass mean/variance per row.
#include "norms.cuh"

#include "element.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
constexpr int kWarpsPerBlock = 8;
using bf16 = __nv_bfloat16;

template <class OutT>
__global__ void layernorm_forward_kernel(OutT* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N, int D) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* xr = x + static_cast<size_t>(row) * D;
  float s = 0.f;
  for (int d = lane; d < D; d += 32) s += xr[d];
  const float mu = warp_sum(s) / D;
  float v = 0.f;
  for (int d = lane; d < D; d += 32) v += (xr[d] - mu) * (xr[d] - mu);
  const float rs = rsqrtf(warp_sum(v) / D + 1e-5f);
  OutT* o = out + static_cast<size_t>(row) * D;
  for (int d = lane; d < D; d += 32) store_as(o + d, (xr[d] - mu) * rs * w[d] + b[d]);
  if (lane == 0) { mean[row] = mu; rstd[row] = rs; }
}

template <class DoutT>
__global__ void layernorm_backward_kernel(float* dx, const DoutT* dout, const float* dskip, const float* x, const float* w, const float* mean,
                                          const float* rstd, int N, int D) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* xr = x + static_cast<size_t>(row) * D;
  const DoutT* go = dout + static_cast<size_t>(row) * D;
  const float mu = mean[row], rs = rstd[row];
  float gm = 0.f, gxm = 0.f;
  for (int d = lane; d < D; d += 32) {
    const float g = as_float(go[d]) * w[d];
    gm += g;
    gxm += g * (xr[d] - mu) * rs;
  }
  gm = warp_sum(gm) / D;
  gxm = warp_sum(gxm) / D;
  float* dxr = dx + static_cast<size_t>(row) * D;
  const float* skip = dskip ? dskip + static_cast<size_t>(row) * D : nullptr;
  for (int d = lane; d < D; d += 32) dxr[d] = rs * (as_float(go[d]) * w[d] - gm - (xr[d] - mu) * rs * gxm) + (skip ? skip[d] : 0.f);
}

// First pass of the norm parameter gradients, one block per (32-column tile, chunk of kParamRows rows):
//   dw_partial[chunk, c] = sum_r dout[r,c] * x_hat[r,c],  db_partial[chunk, c] = sum_r dout[r,c]
// with x_hat = (x - mean) * rstd (mean == nullptr: RMSNorm, no db). Rows are summed per thread row
// and then across thread rows in a fixed order, so the result is the same on every run.
constexpr int kParamRows = 256, kParamThreadRows = 8;
template <class DoutT>
__global__ void norm_param_partials(float* dw_partial, float* db_partial, const DoutT* dout, const float* x, const float* mean, const float* rstd,
                                    int N, int D) {
  __shared__ float dw_rows[kParamThreadRows][32], db_rows[kParamThreadRows][32];
  const int c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
  const int r0 = chunk * kParamRows, r1 = min(N, r0 + kParamRows);
  float dw = 0.f, db = 0.f;
  if (c < D) {
    for (int r = r0 + threadIdx.y; r < r1; r += kParamThreadRows) {
      const size_t i = static_cast<size_t>(r) * D + c;
      const float g = as_float(dout[i]);
      dw += g * (x[i] - (mean ? mean[r] : 0.f)) * rstd[r];
      db += g;
    }
  }
  dw_rows[threadIdx.y][threadIdx.x] = dw;
  db_rows[threadIdx.y][threadIdx.x] = db;
  __syncthreads();
  if (threadIdx.y == 0 && c < D) {
    for (int k = 1; k < kParamThreadRows; ++k) {
      dw += dw_rows[k][threadIdx.x];
      db += db_rows[k][threadIdx.x];
    }
    dw_partial[static_cast<size_t>(chunk) * D + c] = dw;
    if (db_partial) db_partial[static_cast<size_t>(chunk) * D + c] = db;
  }
}

// dw += sum_r dout * x_hat and (db != nullptr) db += sum_r dout, deterministically.
template <class DoutT>
void norm_param_grads(Context& ctx, float* dw, float* db, const DoutT* dout, const float* x, const float* mean, const float* rstd, int N, int D) {
  const int chunks = (N + kParamRows - 1) / kParamRows;
  float* partial = ctx.scratch(kSlotNormProducts, static_cast<size_t>(2) * chunks * D);
  float* dw_partial = partial;
  float* db_partial = db ? partial + static_cast<size_t>(chunks) * D : nullptr;
  norm_param_partials<<<dim3((D + 31) / 32, chunks), dim3(32, kParamThreadRows), 0, ctx.stream()>>>(dw_partial, db_partial, dout, x, mean, rstd, N, D);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, dw, dw_partial, chunks, D, db);  // db_partial follows dw_partial
}

template <class OutT>
__global__ void rmsnorm_forward_kernel(OutT* out, float* rstd, const float* x, const float* w, int N, int D) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* xr = x + static_cast<size_t>(row) * D;
  float ss = 0.f;
  for (int d = lane; d < D; d += 32) ss += xr[d] * xr[d];
  const float rs = rsqrtf(warp_sum(ss) / D + 1e-6f);
  OutT* o = out + static_cast<size_t>(row) * D;
  for (int d = lane; d < D; d += 32) store_as(o + d, xr[d] * rs * w[d]);
  if (lane == 0) rstd[row] = rs;
}

template <class DoutT>
__global__ void rmsnorm_backward_kernel(float* dx, const DoutT* dout, const float* dskip, const float* x, const float* w, const float* rstd, int N, int D) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* xr = x + static_cast<size_t>(row) * D;
  const DoutT* go = dout + static_cast<size_t>(row) * D;
  const float rs = rstd[row];
  float gx = 0.f;
  for (int d = lane; d < D; d += 32) gx += as_float(go[d]) * w[d] * xr[d] * rs;
  gx = warp_sum(gx) / D;
  float* dxr = dx + static_cast<size_t>(row) * D;
  const float* skip = dskip ? dskip + static_cast<size_t>(row) * D : nullptr;
  for (int d = lane; d < D; d += 32) dxr[d] = rs * (as_float(go[d]) * w[d] - xr[d] * rs * gx) + (skip ? skip[d] : 0.f);
}

// LayerNorm (mean != nullptr) or RMSNorm backward in one pass over the rows: dx row by row, and this
// block's parameter-gradient partials (dw: dout * x_hat, db: dout) for accumulate_partials, summed over
// the block's rows in a fixed order. Lane l owns columns l + 32k, k < kCols = D / 32. dx may alias dout
// (a warp reads its whole row before writing it); dskip (may be null) is added to dx. dout: fp32 or bf16.
constexpr int kFusedRowsPerWarp = 8;
template <int kCols, class DoutT>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) norm_backward_fused(float* dx, float* dw_partial, float* db_partial, const DoutT* dout,
                                                                           const float* dskip, const float* x, const float* w, const float* mean,
                                                                           const float* rstd, int N) {
  constexpr int D = 32 * kCols;
  extern __shared__ float warp_sums[];  // [kWarpsPerBlock][D]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float dw[kCols] = {}, db[kCols] = {};
  const int first = (blockIdx.x * kWarpsPerBlock + warp) * kFusedRowsPerWarp;
  for (int row = first; row < min(N, first + kFusedRowsPerWarp); ++row) {
    const size_t offset = static_cast<size_t>(row) * D + lane;
    const float mu = mean ? mean[row] : 0.f, rs = rstd[row];
    // every load of the row first, so their latencies overlap (this kernel is memory-bound)
    float g[kCols], x_hat[kCols], skip[kCols];
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      g[k] = as_float(dout[offset + 32 * k]);
      x_hat[k] = x[offset + 32 * k];
      skip[k] = dskip ? dskip[offset + 32 * k] : 0.f;
    }
    float g_mean = 0.f, gx_mean = 0.f;
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      x_hat[k] = (x_hat[k] - mu) * rs;
      dw[k] += g[k] * x_hat[k];
      db[k] += g[k];
      g[k] *= __ldg(w + lane + 32 * k);
      g_mean += g[k];
      gx_mean += g[k] * x_hat[k];
    }
    g_mean = mean ? warp_sum(g_mean) / D : 0.f;  // RMSNorm has no mean term
    gx_mean = warp_sum(gx_mean) / D;
#pragma unroll
    for (int k = 0; k < kCols; ++k) dx[offset + 32 * k] = rs * (g[k] - g_mean - x_hat[k] * gx_mean) + skip[k];
  }
  for (int pass = 0; pass < (db_partial ? 2 : 1); ++pass) {  // warps' sums combined in a fixed order
    const float* mine = pass == 0 ? dw : db;
#pragma unroll
    for (int k = 0; k < kCols; ++k) warp_sums[warp * D + lane + 32 * k] = mine[k];
    __syncthreads();
    float* partial = pass == 0 ? dw_partial : db_partial;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
      float s = 0.f;
      for (int q = 0; q < kWarpsPerBlock; ++q) s += warp_sums[q * D + c];
      partial[static_cast<size_t>(blockIdx.x) * D + c] = s;
    }
    __syncthreads();
  }
}

template <int kCols, class DoutT>
void launch_fused(Context& ctx, float* dx, float* dw, float* db, const DoutT* dout, const float* dskip, const float* x, const float* w,
                  const float* mean, const float* rstd, int N) {
  constexpr int D = 32 * kCols, kRows = kWarpsPerBlock * kFusedRowsPerWarp;
  const int blocks = (N + kRows - 1) / kRows;
  float* partial = ctx.scratch(kSlotNormProducts, static_cast<size_t>(2) * blocks * D);
  float* dw_partial = partial;
  float* db_partial = db ? partial + static_cast<size_t>(blocks) * D : nullptr;
  norm_backward_fused<kCols, DoutT><<<blocks, 32 * kWarpsPerBlock, sizeof(float) * kWarpsPerBlock * D, ctx.stream()>>>(dx, dw_partial, db_partial, dout,
                                                                                                                dskip, x, w, mean, rstd, N);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, dw, dw_partial, blocks, D, db);  // db_partial follows dw_partial
}

// The fused pass for the common widths; false (nothing done) for others.
template <class DoutT>
bool norm_backward_one_pass(Context& ctx, float* dx, float* dw, float* db, const DoutT* dout, const float* dskip, const float* x, const float* w,
                            const float* mean, const float* rstd, int N, int D) {
  switch (D) {
    case 32: launch_fused<1, DoutT>(ctx, dx, dw, db, dout, dskip, x, w, mean, rstd, N); return true;
    case 64: launch_fused<2, DoutT>(ctx, dx, dw, db, dout, dskip, x, w, mean, rstd, N); return true;
    case 128: launch_fused<4, DoutT>(ctx, dx, dw, db, dout, dskip, x, w, mean, rstd, N); return true;
    case 256: launch_fused<8, DoutT>(ctx, dx, dw, db, dout, dskip, x, w, mean, rstd, N); return true;
    case 512: launch_fused<16, DoutT>(ctx, dx, dw, db, dout, dskip, x, w, mean, rstd, N); return true;
    case 768: launch_fused<24, DoutT>(ctx, dx, dw, db, dout, dskip, x, w, mean, rstd, N); return true;
    case 1024: launch_fused<32, DoutT>(ctx, dx, dw, db, dout, dskip, x, w, mean, rstd, N); return true;
    default: return false;
  }
}

// LayerNorm (mean != nullptr) or RMSNorm forward with the row held in registers: every
// load of a row is issued before the reductions, and x is read once. Lane l owns columns l + 32k.
template <int kCols, class OutT>
__global__ void __launch_bounds__(32 * kWarpsPerBlock) norm_forward_registers(OutT* out, float* mean, float* rstd, const float* x, const float* w,
                                                                              const float* b, int N, float eps) {
  constexpr int D = 32 * kCols;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const size_t offset = static_cast<size_t>(row) * D + lane;
  float v[kCols], sum = 0.f;
#pragma unroll
  for (int k = 0; k < kCols; ++k) {
    v[k] = x[offset + 32 * k];
    sum += v[k];
  }
  const float mu = mean ? warp_sum(sum) / D : 0.f;  // RMSNorm: no centring
  float squares = 0.f;
#pragma unroll
  for (int k = 0; k < kCols; ++k) squares += (v[k] - mu) * (v[k] - mu);
  const float rs = rsqrtf(warp_sum(squares) / D + eps);
#pragma unroll
  for (int k = 0; k < kCols; ++k) {
    const int c = lane + 32 * k;
    store_as(out + offset + 32 * k, (v[k] - mu) * rs * __ldg(w + c) + (b ? __ldg(b + c) : 0.f));
  }
  if (lane == 0) {
    if (mean) mean[row] = mu;
    rstd[row] = rs;
  }
}

// The register-resident forward for the common widths; false (nothing done) for others.
template <class OutT>
bool norm_forward_registers_for(Context& ctx, OutT* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N, int D,
                                float eps) {
  const int blocks = (N + kWarpsPerBlock - 1) / kWarpsPerBlock, threads = 32 * kWarpsPerBlock;
  switch (D) {
    case 32: norm_forward_registers<1, OutT><<<blocks, threads, 0, ctx.stream()>>>(out, mean, rstd, x, w, b, N, eps); break;
    case 64: norm_forward_registers<2, OutT><<<blocks, threads, 0, ctx.stream()>>>(out, mean, rstd, x, w, b, N, eps); break;
    case 128: norm_forward_registers<4, OutT><<<blocks, threads, 0, ctx.stream()>>>(out, mean, rstd, x, w, b, N, eps); break;
    case 256: norm_forward_registers<8, OutT><<<blocks, threads, 0, ctx.stream()>>>(out, mean, rstd, x, w, b, N, eps); break;
    case 512: norm_forward_registers<16, OutT><<<blocks, threads, 0, ctx.stream()>>>(out, mean, rstd, x, w, b, N, eps); break;
    case 768: norm_forward_registers<24, OutT><<<blocks, threads, 0, ctx.stream()>>>(out, mean, rstd, x, w, b, N, eps); break;
    case 1024: norm_forward_registers<32, OutT><<<blocks, threads, 0, ctx.stream()>>>(out, mean, rstd, x, w, b, N, eps); break;
    default: return false;
  }
  MM_LAUNCH_CHECK();
  return true;
}

int row_blocks(int N) { return (N + kWarpsPerBlock - 1) / kWarpsPerBlock; }

// LayerNorm (mean != nullptr) or RMSNorm forward into fp32 or bf16 rows.
template <class OutT>
void norm_forward(Context& ctx, OutT* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N, int D) {
  if (norm_forward_registers_for(ctx, out, mean, rstd, x, w, b, N, D, mean ? 1e-5f : 1e-6f)) return;
  if (mean) layernorm_forward_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, ctx.stream()>>>(out, mean, rstd, x, w, b, N, D);
  else rmsnorm_forward_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, ctx.stream()>>>(out, rstd, x, w, N, D);
  MM_LAUNCH_CHECK();
}

// LayerNorm (mean != nullptr) or RMSNorm backward from an fp32 or bf16 output gradient.
template <class DoutT>
void norm_backward(Context& ctx, float* dx, float* dw, float* db, const DoutT* dout, const float* dskip, const float* x, const float* w,
                   const float* mean, const float* rstd, int N, int D) {
  if (norm_backward_one_pass(ctx, dx, dw, db, dout, dskip, x, w, mean, rstd, N, D)) return;
  if (mean) layernorm_backward_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, ctx.stream()>>>(dx, dout, dskip, x, w, mean, rstd, N, D);
  else rmsnorm_backward_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, ctx.stream()>>>(dx, dout, dskip, x, w, rstd, N, D);
  MM_LAUNCH_CHECK();
  norm_param_grads(ctx, dw, db, dout, x, mean, rstd, N, D);
}
}  // namespace

void layernorm_forward(Context& ctx, float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N, int D) {
  norm_forward(ctx, out, mean, rstd, x, w, b, N, D);
}

void layernorm_backward(Context& ctx, float* dx, float* dw, float* db, const float* dout, const float* dskip, const float* x, const float* w,
                        const float* mean, const float* rstd, int N, int D) {
  norm_backward(ctx, dx, dw, db, dout, dskip, x, w, mean, rstd, N, D);
}

void rmsnorm_forward(Context& ctx, float* out, float* rstd, const float* x, const float* w, int N, int D) {
  norm_forward(ctx, out, nullptr, rstd, x, w, nullptr, N, D);
}

void rmsnorm_backward(Context& ctx, float* dx, float* dw, const float* dout, const float* dskip, const float* x, const float* w, const float* rstd, int N,
                      int D) {
  norm_backward(ctx, dx, dw, nullptr, dout, dskip, x, w, nullptr, rstd, N, D);
}

const __nv_bfloat16* prenorm_forward(Context& ctx, const PreNorm<float>& norm, __nv_bfloat16* h, const float* x, int N, int D) {
  if (norm.kind == NormKind::LayerNorm) norm_forward(ctx, h, norm.mean, norm.rstd, x, norm.w, norm.b, N, D);
  else if (norm.kind == NormKind::RmsNorm) norm_forward(ctx, h, nullptr, norm.rstd, x, norm.w, nullptr, N, D);
  else round_to_bf16(ctx, h, x, static_cast<size_t>(N) * D);
  return h;
}

void prenorm_backward(Context& ctx, const PreNorm<float>& norm, float* dx, const __nv_bfloat16* dh, const float* x, int N, int D) {
  const bool layer = norm.kind == NormKind::LayerNorm;
  norm_backward(ctx, dx, norm.dw, layer ? norm.db : nullptr, dh, norm.dskip, x, norm.w, layer ? norm.mean : nullptr, norm.rstd, N, D);
}

}  // namespace mm::cuda
