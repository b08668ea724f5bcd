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

// out[b, i, g*Dg + f] += c[g, i]
__global__ void mix_bias_kernel(float* out, const float* c, int B, int To, int D, int G) {
  const size_t total = static_cast<size_t>(B) * To * D;
  const int Dg = D / G;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total; k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t i = (k / D) % To;
    const int g = static_cast<int>(k % D) / Dg;
    out[k] += c[static_cast<size_t>(g) * To + i];
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

// The masked matrix of a causal square mix is lower triangular, so its GEMMs run in row panels of
// kPanel rows that skip the all-zero blocks above the diagonal: (P+1)/2P of the FLOPs for P panels
// (5/8 at n_ctx 512). Other shapes (expanded, bidirectional, small) run as one full panel.
constexpr int kPanel = 128;
int panel_rows(int To, int Ti, bool causal) { return causal && To == Ti && To % kPanel == 0 && To >= 2 * kPanel ? kPanel : 0; }
}  // namespace

void mix_forward(Context& ctx, float* out, const float* inp, const float* w, const float* c, int B, int Ti, int To, int D, int G, bool causal) {
  const int Dg = D / G;
  const size_t mat = static_cast<size_t>(To) * Ti;
  const int panel = panel_rows(To, Ti, causal);
  const int P = panel ? panel : To;  // output rows per GEMM
  float* masked = ctx.scratch(kSlotMixMasked, mat);
  const GemmOperand inp_op = gemm_operand(ctx, kSlotCastB, inp, static_cast<size_t>(B) * Ti * D);
  for (int g = 0; g < G; ++g) {
    lower_triangle_kernel<<<grid(ctx, mat), 256, 0, ctx.stream()>>>(masked, w + g * mat, To, Ti, causal);
    MM_LAUNCH_CHECK();
    const GemmOperand masked_op = gemm_operand(ctx, kSlotCastA, masked, mat);
    // out_b[rows r0..r0+P, Dg] = masked[rows, 0..K] @ inp_b[0..K, Dg] for every b (K: the panel's non-zero columns)
    for (int r0 = 0; r0 < To; r0 += P) {
      const int K = panel ? r0 + P : Ti;
      gemm(ctx, false, false, P, Dg, K, 1.f, masked_op.at(static_cast<size_t>(r0) * Ti), Ti, 0, inp_op.at(static_cast<size_t>(g) * Dg), D,
           static_cast<long long>(Ti) * D, 0.f, out + static_cast<size_t>(r0) * D + static_cast<size_t>(g) * Dg, D, static_cast<long long>(To) * D, B);
    }
  }
  mix_bias_kernel<<<grid(ctx, static_cast<size_t>(B) * To * D), 256, 0, ctx.stream()>>>(out, c, B, To, D, G);
  MM_LAUNCH_CHECK();
}

void mix_backward(Context& ctx, float* dinp, float* dw, float* dc, const float* dout, const float* inp, const float* w, int B, int Ti, int To, int D, int G, bool causal) {
  const int Dg = D / G;
  const size_t mat = static_cast<size_t>(To) * Ti;
  float* masked = ctx.scratch(kSlotMixMasked, mat);
  float* partial = ctx.scratch(kSlotMixPartial, static_cast<size_t>(B) * mat);
  const int panel = panel_rows(To, Ti, causal);
  // dout feeds two GEMMs per group: round it (and inp) once for all groups
  const GemmOperand dout_op = gemm_operand(ctx, kSlotCastC, dout, static_cast<size_t>(B) * To * D);
  const GemmOperand inp_op = gemm_operand(ctx, kSlotCastB, inp, static_cast<size_t>(B) * Ti * D);
  for (int g = 0; g < G; ++g) {
    lower_triangle_kernel<<<grid(ctx, mat), 256, 0, ctx.stream()>>>(masked, w + g * mat, To, Ti, causal);
    MM_LAUNCH_CHECK();
    const GemmOperand masked_op = gemm_operand(ctx, kSlotCastA, masked, mat);
    const size_t group = static_cast<size_t>(g) * Dg;
    // dinp_b[rows j0..j0+P, Dg] = masked[i >= j0, j0..j0+P]^T @ dout_b[i >= j0, Dg] (rows above j0 of that block are zero)
    const int Pi = panel ? panel : Ti;
    for (int j0 = 0; j0 < Ti; j0 += Pi) {
      const int K = To - (panel ? j0 : 0);
      const size_t first = panel ? static_cast<size_t>(j0) : 0;  // first row i of masked and dout that is used
      gemm(ctx, true, false, Pi, Dg, K, 1.f, masked_op.at(first * Ti + j0), Ti, 0, dout_op.at(first * D + group), D, static_cast<long long>(To) * D, 0.f,
           dinp + static_cast<size_t>(j0) * D + group, D, static_cast<long long>(Ti) * D, B);
    }
    // partial_b[rows i0..i0+P, 0..N] = dout_b[rows, Dg] @ inp_b[0..N, Dg]^T: only the lower triangle is reduced below
    const int Po = panel ? panel : To;
    for (int i0 = 0; i0 < To; i0 += Po) {
      const int N = panel ? i0 + Po : Ti;
      gemm(ctx, false, true, Po, N, Dg, 1.f, dout_op.at(static_cast<size_t>(i0) * D + group), D, static_cast<long long>(To) * D, inp_op.at(group), D,
           static_cast<long long>(Ti) * D, 0.f, partial + static_cast<size_t>(i0) * Ti, Ti, static_cast<long long>(mat), B);
    }
    reduce_masked_kernel<<<grid(ctx, mat), 256, 0, ctx.stream()>>>(dw + g * mat, partial, B, To, Ti, causal);
    MM_LAUNCH_CHECK();
  }
  float* rows = ctx.scratch(kSlotMixBiasRows, static_cast<size_t>(B) * G * To);
  mix_bias_rows_kernel<<<blocks_for(static_cast<size_t>(B) * G * To * 32, 256), 256, 0, ctx.stream()>>>(rows, dout, B, To, D, G);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, dc, rows, B, G * To);
}

}  // namespace mm::cuda
