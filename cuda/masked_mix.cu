// Masked mixing kernels and GEMM calls.
#include "masked_mix.cuh"

#include "element.cuh"
#include "norms.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
using bf16 = __nv_bfloat16;

// masked = tril(w) (or w when !causal), fp32 or rounded to bf16 (a GEMM operand)
template <class OutT>
__global__ void lower_triangle_kernel(OutT* masked, const float* w, int To, int Ti, bool causal) {
  const size_t total = static_cast<size_t>(To) * Ti;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total; k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t i = k / Ti, j = k % Ti;
    const float v = (!causal || j <= i) ? w[k] : 0.f;
    store_as(masked + k, v);
  }
}

// out[b, i, g*Dg + f] += c[g, i] (+ skip[b, i, g*Dg + f] when skip: a residual); blocks take rows (b, i),
// threads take features (32-bit index math)
__global__ void mix_bias_kernel(float* out, const float* c, const float* skip, int B, int To, int D, int G) {
  const int Dg = D / G;
  for (int row = blockIdx.x; row < B * To; row += gridDim.x) {
    const int i = row % To;
    float* r = out + static_cast<size_t>(row) * D;
    const float* s = skip ? skip + static_cast<size_t>(row) * D : nullptr;
    for (int f = threadIdx.x; f < D; f += blockDim.x) r[f] += c[(f / Dg) * To + i] + (s ? s[f] : 0.f);
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

// The flat sublayer's passes over [B*T, D] rows (D % 4 == 0: 16-byte accesses; one warp per row).
// out[r] += c[r % T] + skip[r] (skip may be null)
__global__ void add_row_bias_kernel(float* out, const float* c, const float* skip, int rows, int T, int D) {
  const int lane = threadIdx.x % 32;
  for (int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows; r += gridDim.x * (blockDim.x / 32)) {
    const float bias = c[r % T];
    float4* o = reinterpret_cast<float4*>(out + static_cast<size_t>(r) * D);
    const float4* k = skip ? reinterpret_cast<const float4*>(skip + static_cast<size_t>(r) * D) : nullptr;
    for (int q = lane; q < D / 4; q += 32) {
      float4 v = o[q];
      const float4 add = k ? k[q] : make_float4(0.f, 0.f, 0.f, 0.f);
      v.x += bias + add.x;
      v.y += bias + add.y;
      v.z += bias + add.z;
      v.w += bias + add.w;
      o[q] = v;
    }
  }
}
// dst = src rounded to bf16, and row_sums[r] = sum of src's row r (the bias gradient's first pass)
__global__ void round_and_sum_rows_kernel(bf16* dst, float* row_sums, const float* src, int rows, int D) {
  const int lane = threadIdx.x % 32;
  for (int r = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows; r += gridDim.x * (blockDim.x / 32)) {
    const float4* x = reinterpret_cast<const float4*>(src + static_cast<size_t>(r) * D);
    __nv_bfloat162* y = reinterpret_cast<__nv_bfloat162*>(dst + static_cast<size_t>(r) * D);
    float sum = 0.f;
    for (int q = lane; q < D / 4; q += 32) {
      const float4 v = x[q];
      sum += (v.x + v.y) + (v.z + v.w);
      y[2 * q] = __floats2bfloat162_rn(v.x, v.y);
      y[2 * q + 1] = __floats2bfloat162_rn(v.z, v.w);
    }
    sum = warp_sum(sum);
    if (lane == 0) row_sums[r] = sum;
  }
}

int grid(Context& ctx, size_t n) { return static_cast<int>(std::min<size_t>(blocks_for(n, 256), static_cast<size_t>(ctx.sm_count()) * 16)); }

// dc[g, i] += sum over b and the group's features of dout[b, i, g-features] (two deterministic passes)
void mix_bias_grad(Context& ctx, float* dc, const float* dout, int B, int To, int D, int G) {
  float* rows = ctx.scratch(kSlotMixBiasRows, static_cast<size_t>(B) * G * To);
  mix_bias_rows_kernel<<<blocks_for(static_cast<size_t>(B) * G * To * 32, 256), 256, 0, ctx.stream()>>>(rows, dout, B, To, D, G);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, dc, rows, B, G * To);
}
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
  mix_bias_kernel<<<std::min(B * To, ctx.sm_count() * 16), 256, 0, ctx.stream()>>>(out, c, nullptr, B, To, D, G);
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
  mix_bias_grad(ctx, dc, dout, B, To, D, G);
}

size_t mix_sublayer_state_floats(int B, int T, int D) { return (static_cast<size_t>(B) * T * D + 1) / 2; }

void mix_sublayer_forward(Context& ctx, float* out, float* state, const float* x, const PreNorm<float>& norm, const float* w, const float* c,
                          const float* skip, int B, int T, int D, bool causal) {
  const int N = B * T;
  const size_t mat = static_cast<size_t>(T) * T;
  bf16* h = reinterpret_cast<bf16*>(state);  // [B,T,D]
  prenorm_forward(ctx, norm, h, x, N, D);
  bf16* masked = reinterpret_cast<bf16*>(ctx.scratch(kSlotMixMasked, mat));
  lower_triangle_kernel<<<grid(ctx, mat), 256, 0, ctx.stream()>>>(masked, w, T, T, causal);
  MM_LAUNCH_CHECK();
  // out_b[T, D] = masked[T, T] @ h_b[T, D] for every b, then + c + skip
  const long long seq = static_cast<long long>(T) * D;
  gemm_bf16(ctx, false, false, T, D, T, 1.f, masked, T, 0, h, D, seq, 0.f, out, D, seq, B);
  if (float4_rows(D, {out, skip})) add_row_bias_kernel<<<std::min(blocks_for(N, 8), ctx.sm_count() * 16), 256, 0, ctx.stream()>>>(out, c, skip, N, T, D);
  else mix_bias_kernel<<<std::min(N, ctx.sm_count() * 16), 256, 0, ctx.stream()>>>(out, c, skip, B, T, D, 1);
  MM_LAUNCH_CHECK();
}

void mix_sublayer_backward(Context& ctx, float* dinp, float* dw, float* dc, const float* dout, const float* x, const float* state,
                           const PreNorm<float>& norm, const float* w, int B, int T, int D, bool causal, float* dh) {
  const int N = B * T;
  const size_t mat = static_cast<size_t>(T) * T;
  const long long seq = static_cast<long long>(T) * D;
  const bf16* h = reinterpret_cast<const bf16*>(state);
  // dout rounded for the GEMMs and summed per row for dc, in one pass where rows are float4-aligned
  const bf16* dout16;
  if (float4_rows(D, {dout})) {
    auto* rounded = reinterpret_cast<bf16*>(ctx.scratch(kSlotCastC, (static_cast<size_t>(N) * D + 1) / 2));
    float* rows = ctx.scratch(kSlotMixBiasRows, static_cast<size_t>(N));
    round_and_sum_rows_kernel<<<std::min(blocks_for(N, 8), ctx.sm_count() * 16), 256, 0, ctx.stream()>>>(rounded, rows, dout, N, D);
    MM_LAUNCH_CHECK();
    accumulate_partials(ctx, dc, rows, B, T);
    dout16 = rounded;
  } else {
    dout16 = to_bf16(ctx, kSlotCastC, dout, static_cast<size_t>(N) * D);
    mix_bias_grad(ctx, dc, dout, B, T, D, 1);
  }
  bf16* masked = reinterpret_cast<bf16*>(ctx.scratch(kSlotMixMasked, mat));
  lower_triangle_kernel<<<grid(ctx, mat), 256, 0, ctx.stream()>>>(masked, w, T, T, causal);
  MM_LAUNCH_CHECK();
  // partial_b[T, T] = dout_b @ h_b^T, summed over b into dw's lower triangle
  float* partial = ctx.scratch(kSlotMixPartial, static_cast<size_t>(B) * mat);
  gemm_bf16(ctx, false, true, T, T, D, 1.f, dout16, D, seq, h, D, seq, 0.f, partial, T, static_cast<long long>(mat), B);
  reduce_masked_kernel<<<grid(ctx, mat), 256, 0, ctx.stream()>>>(dw, partial, B, T, T, causal);
  MM_LAUNCH_CHECK();
  // dh_b[T, D] = masked^T @ dout_b: bf16 into dh for the norm's backward, or fp32 into dinp
  if (norm.on()) {
    bf16* dh16 = reinterpret_cast<bf16*>(dh);
    gemm_bf16(ctx, true, false, T, D, T, masked, T, 0, dout16, D, seq, dh16, D, seq, B);
    prenorm_backward(ctx, norm, dinp, dh16, x, N, D);
  } else {
    gemm_bf16(ctx, true, false, T, D, T, 1.f, masked, T, 0, dout16, D, seq, 0.f, dinp, D, seq, B);
  }
}

}  // namespace mm::cuda
