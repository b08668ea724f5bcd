// Masked mixing kernels and GEMM calls.
#include "masked_mix.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
__global__ void lower_triangle_kernel(float* masked, const float* w, int To, int Ti, bool causal) {
  const size_t total = static_cast<size_t>(To) * Ti;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total; k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t i = k / Ti, j = k % Ti;
    masked[k] = (!causal || j <= i) ? w[k] : 0.f;
  }
}

// out[b, i, g*Dg + f] += c[g, i]; blocks take rows (b, i), threads take features (32-bit index math)
__global__ void mix_bias_kernel(float* out, const float* c, int B, int To, int D, int G) {
  const int Dg = D / G;
  for (int row = blockIdx.x; row < B * To; row += gridDim.x) {
    const int i = row % To;
    float* r = out + static_cast<size_t>(row) * D;
    for (int f = threadIdx.x; f < D; f += blockDim.x) r[f] += c[(f / Dg) * To + i];
  }
}

// dw[i, j] += sum_b partial[b, i, j] for j <= i (fixed order over b)
__global__ void reduce_masked_kernel(float* dw, const float* partial, int B, int To, int Ti, bool causal) {
  const size_t total = static_cast<size_t>(To) * Ti;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total; k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t i = k / Ti, j = k % Ti;
    if (causal && j > i) continue;
    float s = 0.f;
    for (int b = 0; b < B; ++b) s += partial[static_cast<size_t>(b) * total + k];
    dw[k] += s;
  }
}

// Bias gradient, pass 1: rows[b, g*To + i] = sum_{f in g} dout[b, i, g*Dg + f], one warp per (b, i, g);
// pass 2 sums rows over b in order (accumulate_partials).
__global__ void mix_bias_rows_kernel(float* rows, const float* dout, int B, int To, int D, int G) {
  const int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (warp >= B * To * G) return;
  const int g = warp % G, i = (warp / G) % To, b = warp / (G * To), Dg = D / G;
  const float* row = dout + (static_cast<size_t>(b) * To + i) * D + static_cast<size_t>(g) * Dg;
  float s = 0.f;
  for (int f = lane; f < Dg; f += 32) s += row[f];
  for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
  if (lane == 0) rows[static_cast<size_t>(b) * G * To + static_cast<size_t>(g) * To + i] = s;
}

int grid(Context& ctx, size_t n) { return static_cast<int>(std::min<size_t>(blocks_for(n, 256), static_cast<size_t>(ctx.sm_count()) * 16)); }
}  // namespace

void mix_forward(Context& ctx, float* out, const float* inp, const float* w, const float* c, int B, int Ti, int To, int D, int G, bool causal) {
  const int Dg = D / G;
  const size_t mat = static_cast<size_t>(To) * Ti;
  float* masked = ctx.scratch(kSlotMixMasked, mat);
  for (int g = 0; g < G; ++g) {
    lower_triangle_kernel<<<grid(ctx, mat), 256, 0, ctx.stream()>>>(masked, w + g * mat, To, Ti, causal);
    MM_LAUNCH_CHECK();
    // out_b[To, Dg] = masked[To, Ti] @ inp_b[Ti, Dg] for every b
    gemm(ctx, false, false, To, Dg, Ti, 1.f, masked, Ti, 0, inp + static_cast<size_t>(g) * Dg, D, static_cast<long long>(Ti) * D, 0.f,
         out + static_cast<size_t>(g) * Dg, D, static_cast<long long>(To) * D, B);
  }
  mix_bias_kernel<<<std::min(B * To, ctx.sm_count() * 16), 256, 0, ctx.stream()>>>(out, c, B, To, D, G);
  MM_LAUNCH_CHECK();
}

void mix_backward(Context& ctx, float* dinp, float* dw, float* dc, const float* dout, const float* inp, const float* w, int B, int Ti, int To, int D, int G, bool causal) {
  const int Dg = D / G;
  const size_t mat = static_cast<size_t>(To) * Ti;
  float* masked = ctx.scratch(kSlotMixMasked, mat);
  float* partial = ctx.scratch(kSlotMixPartial, static_cast<size_t>(B) * mat);
  // dout feeds two GEMMs per group: round it (and inp) once for all groups
  const GemmOperand dout_op = gemm_operand(ctx, kSlotCastC, dout, static_cast<size_t>(B) * To * D);
  const GemmOperand inp_op = gemm_operand(ctx, kSlotCastB, inp, static_cast<size_t>(B) * Ti * D);
  for (int g = 0; g < G; ++g) {
    lower_triangle_kernel<<<grid(ctx, mat), 256, 0, ctx.stream()>>>(masked, w + g * mat, To, Ti, causal);
    MM_LAUNCH_CHECK();
    const GemmOperand masked_op = gemm_operand(ctx, kSlotCastA, masked, mat);
    // dinp_b[Ti, Dg] = masked^T @ dout_b[To, Dg]
    gemm(ctx, true, false, Ti, Dg, To, 1.f, masked_op, Ti, 0, dout_op.at(static_cast<size_t>(g) * Dg), D, static_cast<long long>(To) * D, 0.f,
         dinp + static_cast<size_t>(g) * Dg, D, static_cast<long long>(Ti) * D, B);
    // partial_b[To, Ti] = dout_b[To, Dg] @ inp_b[Ti, Dg]^T
    gemm(ctx, false, true, To, Ti, Dg, 1.f, dout_op.at(static_cast<size_t>(g) * Dg), D, static_cast<long long>(To) * D, inp_op.at(static_cast<size_t>(g) * Dg), D,
         static_cast<long long>(Ti) * D, 0.f, partial, Ti, static_cast<long long>(mat), B);
    reduce_masked_kernel<<<grid(ctx, mat), 256, 0, ctx.stream()>>>(dw + g * mat, partial, B, To, Ti, causal);
    MM_LAUNCH_CHECK();
  }
  float* rows = ctx.scratch(kSlotMixBiasRows, static_cast<size_t>(B) * G * To);
  mix_bias_rows_kernel<<<blocks_for(static_cast<size_t>(B) * G * To * 32, 256), 256, 0, ctx.stream()>>>(rows, dout, B, To, D, G);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, dc, rows, B, G * To);
}

}  // namespace mm::cuda
