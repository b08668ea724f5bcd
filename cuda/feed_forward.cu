// Feed-forward sublayer at precision bf16 (see feed_forward.cuh): bf16 activation kernels, forward and
// backward side by side, and the GEMM sequence around them.
#include "activations.cuh"
#include "element.cuh"
#include "feed_forward.cuh"
#include "gemm_gelu.cuh"
#include "linear.cuh"
#include "norms.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;

// W consecutive bf16 values <-> floats (W a multiple of 8: 16-byte accesses).
template <int W>
__device__ __forceinline__ void load_bf16(const bf16* p, float (&v)[W]) {
  if constexpr (W % 8 == 0) {
    uint4 raw[W / 8];
#pragma unroll
    for (int c = 0; c < W / 8; ++c) raw[c] = reinterpret_cast<const uint4*>(p)[c];
#pragma unroll
    for (int c = 0; c < W / 8; ++c) {
      const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw[c]);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(pairs[i]);
        v[8 * c + 2 * i] = f.x;
        v[8 * c + 2 * i + 1] = f.y;
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < W; ++i) v[i] = __bfloat162float(p[i]);
  }
}
template <int W>
__device__ __forceinline__ void store_bf16(bf16* p, const float (&v)[W]) {
  if constexpr (W % 8 == 0) {
#pragma unroll
    for (int c = 0; c < W / 8; ++c) {
      uint4 raw;
      auto* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
      for (int i = 0; i < 4; ++i) pairs[i] = __floats2bfloat162_rn(v[8 * c + 2 * i], v[8 * c + 2 * i + 1]);
      reinterpret_cast<uint4*>(p)[c] = raw;
    }
  } else {
#pragma unroll
    for (int i = 0; i < W; ++i) p[i] = __float2bfloat16_rn(v[i]);
  }
}

// Activations over rows of width F (W values per step, W divides F); blocks take rows, threads take
// W-wide column groups (no 64-bit divisions in the index math). `bias` [Fp] or null is added to pre in
// fp32 first. GELU: act = GELU(pre + b), dpre = dact GELU'(pre + b) (dpre may be dact).
// SwiGLU: pre rows are gate | up [2F]; act = silu(g) u, dpre = (dg | du). The backward kernels also
// write act again (the same function of the same values: what forward wrote) for dw2's GEMM, so the
// state need not keep it.
template <int W, class Body>
__device__ __forceinline__ void for_each_group(int N, int F, Body body) {
  for (int row = blockIdx.x; row < N; row += gridDim.x)
    for (int col = threadIdx.x * W; col < F; col += blockDim.x * W) body(row, col);
}

template <int W>
__global__ void gelu_forward_bf16(bf16* act, const bf16* pre, const float* bias, int N, int F) {
  for_each_group<W>(N, F, [&](int row, int col) {
    const size_t i = static_cast<size_t>(row) * F + col;
    float x[W];
    load_bf16<W>(pre + i, x);
#pragma unroll
    for (int j = 0; j < W; ++j) x[j] = gelu(x[j] + (bias ? bias[col + j] : 0.f));
    store_bf16<W>(act + i, x);
  });
}
// One W-wide group at element i (column col): dpre = dact GELU'(pre + b) and act = GELU(pre + b)
// again; g receives the fp32 dpre.
template <int W>
__device__ __forceinline__ void gelu_backward_group(bf16* dpre, bf16* act, const bf16* dact, const bf16* pre, const float* bias, size_t i, int col,
                                                    float (&g)[W]) {
  float x[W];
  load_bf16<W>(pre + i, x);
  load_bf16<W>(dact + i, g);
#pragma unroll
  for (int j = 0; j < W; ++j) {
    x[j] += bias ? bias[col + j] : 0.f;
    g[j] = gelu_grad(g[j], x[j]);
    x[j] = gelu(x[j]);
  }
  store_bf16<W>(dpre + i, g);
  store_bf16<W>(act + i, x);
}
template <int W>
__global__ void gelu_backward_bf16(bf16* dpre, bf16* act, const bf16* dact, const bf16* pre, const float* bias, int N, int F) {
  for_each_group<W>(N, F, [&](int row, int col) {
    float g[W];
    gelu_backward_group<W>(dpre, act, dact, pre, bias, static_cast<size_t>(row) * F + col, col, g);
  });
}
// GELU backward that also sums dpre's columns for db1: blocks take rows, each thread the column groups
// col = W * (threadIdx.x + k * blockDim.x), k < Groups, whose sums over the block's rows it keeps in
// registers and writes to partial[blockIdx.x, col..col+W) (summed over blocks by accumulate_partials).
template <int W, int Groups>
__global__ void gelu_backward_bias_bf16(bf16* dpre, bf16* act, float* partial, const bf16* dact, const bf16* pre, const float* bias, int N, int F) {
  __builtin_assume(bias != nullptr);  // (the launch checks it) so the shared group code adds it without a test
  float sums[Groups][W] = {};
  for (int row = blockIdx.x; row < N; row += gridDim.x)
#pragma unroll
    for (int k = 0; k < Groups; ++k) {
      const int col = W * (threadIdx.x + k * blockDim.x);
      if (col >= F) break;
      float g[W];
      gelu_backward_group<W>(dpre, act, dact, pre, bias, static_cast<size_t>(row) * F + col, col, g);
#pragma unroll
      for (int j = 0; j < W; ++j) sums[k][j] += __bfloat162float(__float2bfloat16_rn(g[j]));  // what column_sum of the stored dpre would add
    }
#pragma unroll
  for (int k = 0; k < Groups; ++k) {
    const int col = W * (threadIdx.x + k * blockDim.x);
    if (col >= F) break;
#pragma unroll
    for (int j = 0; j < W; ++j) partial[static_cast<size_t>(blockIdx.x) * F + col + j] = sums[k][j];
  }
}

// dout rounded to bf16 (for the GEMMs) and its column sums for db2 in one pass: blocks take rows,
// thread t the four columns 4t..4t+3 (D % 4 == 0, D / 4 <= blockDim.x), partial[blockIdx.x, D].
__global__ void round_and_column_partials(bf16* dst, float* partial, const float* src, int N, int D) {
  const int col = 4 * threadIdx.x;
  if (col >= D) return;
  float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int row = blockIdx.x; row < N; row += 2 * gridDim.x) {  // two rows per step: two loads in flight
    float4 v[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int at = row + r * gridDim.x;
      v[r] = at < N ? *reinterpret_cast<const float4*>(src + static_cast<size_t>(at) * D + col) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int at = row + r * gridDim.x;
      if (at >= N) break;
      sum.x += v[r].x;
      sum.y += v[r].y;
      sum.z += v[r].z;
      sum.w += v[r].w;
      __nv_bfloat162* y = reinterpret_cast<__nv_bfloat162*>(dst + static_cast<size_t>(at) * D + col);
      y[0] = __floats2bfloat162_rn(v[r].x, v[r].y);
      y[1] = __floats2bfloat162_rn(v[r].z, v[r].w);
    }
  }
  *reinterpret_cast<float4*>(partial + static_cast<size_t>(blockIdx.x) * D + col) = sum;
}

template <int W>
__global__ void swiglu_forward_bf16(bf16* act, const bf16* pre, const float* bias, int N, int F) {
  for_each_group<W>(N, F, [&](int row, int col) {
    const bf16* gate = pre + static_cast<size_t>(row) * 2 * F + col;
    float g[W], u[W];
    load_bf16<W>(gate, g);
    load_bf16<W>(gate + F, u);
#pragma unroll
    for (int j = 0; j < W; ++j) g[j] = swiglu(g[j] + (bias ? bias[col + j] : 0.f), u[j] + (bias ? bias[F + col + j] : 0.f));
    store_bf16<W>(act + static_cast<size_t>(row) * F + col, g);
  });
}
template <int W>
__global__ void swiglu_backward_bf16(bf16* dpre, bf16* act, const bf16* dact, const bf16* pre, const float* bias, int N, int F) {
  for_each_group<W>(N, F, [&](int row, int col) {
    const size_t gate = static_cast<size_t>(row) * 2 * F + col, at = static_cast<size_t>(row) * F + col;
    float g[W], u[W], go[W];
    load_bf16<W>(pre + gate, g);
    load_bf16<W>(pre + gate + F, u);
    load_bf16<W>(dact + at, go);
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float gb = g[j] + (bias ? bias[col + j] : 0.f), ub = u[j] + (bias ? bias[F + col + j] : 0.f);
      swiglu_grad(go[j], gb, ub, g[j], u[j]);
      go[j] = swiglu(gb, ub);
    }
    store_bf16<W>(dpre + gate, g);
    store_bf16<W>(dpre + gate + F, u);
    store_bf16<W>(act + at, go);
  });
}

// Values per thread: 8 (one 16-byte access) when rows split into aligned groups of 8, else 1. (16 per
// thread, two accesses in flight, measured slower on the H200: a 256-thread block then leaves half
// its threads idle on a 2048-wide row.)
int group_width(int F, std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return 1;
  return F % 8 == 0 ? 8 : 1;
}

template <int W>
void launch_forward(Context& ctx, bf16* act, const bf16* pre, const float* bias, int N, int F, FfnActivation kind) {
  const int blocks = std::min(N, ctx.sm_count() * 16);
  if (kind == FfnActivation::Gelu) gelu_forward_bf16<W><<<blocks, kThreads, 0, ctx.stream()>>>(act, pre, bias, N, F);
  else swiglu_forward_bf16<W><<<blocks, kThreads, 0, ctx.stream()>>>(act, pre, bias, N, F);
  MM_LAUNCH_CHECK();
}
template <int W>
void launch_backward(Context& ctx, bf16* dpre, bf16* act, const bf16* dact, const bf16* pre, const float* bias, int N, int F, FfnActivation kind) {
  const int blocks = std::min(N, ctx.sm_count() * 16);
  if (kind == FfnActivation::Gelu) gelu_backward_bf16<W><<<blocks, kThreads, 0, ctx.stream()>>>(dpre, act, dact, pre, bias, N, F);
  else swiglu_backward_bf16<W><<<blocks, kThreads, 0, ctx.stream()>>>(dpre, act, dact, pre, bias, N, F);
  MM_LAUNCH_CHECK();
}

void activation_forward(Context& ctx, bf16* act, const bf16* pre, const float* bias, int N, int F, FfnActivation kind) {
  switch (group_width(F, {act, pre})) {
    case 8: return launch_forward<8>(ctx, act, pre, bias, N, F, kind);
    default: return launch_forward<1>(ctx, act, pre, bias, N, F, kind);
  }
}

// GELU backward (and act) with db1 += column sums of dpre in the same pass, where the row splits into at most
// four groups of 8 per thread; false (nothing done) otherwise.
constexpr int kBiasThreads = 256;
template <int Groups>
void launch_gelu_bias(Context& ctx, bf16* dpre, bf16* act, float* db1, const bf16* dact, const bf16* pre, const float* b1, int N, int F) {
  const int blocks = std::min(N, ctx.sm_count() * 8);
  float* partial = ctx.scratch(kSlotColumnPartial, static_cast<size_t>(blocks) * F);
  gelu_backward_bias_bf16<8, Groups><<<blocks, kBiasThreads, 0, ctx.stream()>>>(dpre, act, partial, dact, pre, b1, N, F);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, db1, partial, blocks, F);
}
bool gelu_backward_with_bias_grad(Context& ctx, bf16* dpre, bf16* act, float* db1, const bf16* dact, const bf16* pre, const float* b1, int N, int F) {
  if (!b1 || group_width(F, {dpre, act, dact, pre}) != 8) return false;
  const int groups = (F / 8 + kBiasThreads - 1) / kBiasThreads;
  switch (groups) {
    case 1: launch_gelu_bias<1>(ctx, dpre, act, db1, dact, pre, b1, N, F); return true;
    case 2: launch_gelu_bias<2>(ctx, dpre, act, db1, dact, pre, b1, N, F); return true;
    case 3:
    case 4: launch_gelu_bias<4>(ctx, dpre, act, db1, dact, pre, b1, N, F); return true;
    default: return false;
  }
}

// dout in bf16 for the backward GEMMs, and (db2 != nullptr) db2 += its column sums, in one pass where
// rows are float4-aligned and short enough for one block; otherwise a rounding pass and a column sum.
const bf16* round_output_gradient(Context& ctx, float* db2, const float* dout, int N, int D) {
  const bool aligned = float4_rows(D, {dout}) && D / 4 <= 1024;
  if (!db2 || !aligned) {
    if (db2) column_sum_accumulate(ctx, db2, dout, N, D);
    return to_bf16(ctx, kSlotCastC, dout, static_cast<size_t>(N) * D);
  }
  auto* dout16 = reinterpret_cast<bf16*>(ctx.scratch(kSlotCastC, (static_cast<size_t>(N) * D + 1) / 2));
  const int blocks = std::min(N, ctx.sm_count() * 16);
  float* partial = ctx.scratch(kSlotColumnPartial, static_cast<size_t>(blocks) * D);
  round_and_column_partials<<<blocks, ((D / 4 + 31) / 32) * 32, 0, ctx.stream()>>>(dout16, partial, dout, N, D);
  MM_LAUNCH_CHECK();
  accumulate_partials(ctx, db2, partial, blocks, D);
  return dout16;
}

void activation_backward(Context& ctx, bf16* dpre, bf16* act, const bf16* dact, const bf16* pre, const float* bias, int N, int F, FfnActivation kind) {
  switch (group_width(F, {dpre, act, dact, pre})) {
    case 8: return launch_backward<8>(ctx, dpre, act, dact, pre, bias, N, F, kind);
    default: return launch_backward<1>(ctx, dpre, act, dact, pre, bias, N, F, kind);
  }
}

// The state's bf16 arrays: x [N,D], pre [N,Fp]. act [N,F] lives in a scratch slot shared by every
// layer: forward writes it for the second GEMM, backward writes it again from pre.
struct FfnState {
  bf16 *x, *pre;
  FfnState(const float* state, int N, int D, int Fp) : x(reinterpret_cast<bf16*>(const_cast<float*>(state))), pre(x + static_cast<size_t>(N) * D) {}
};
bf16* act_scratch(Context& ctx, int N, int F) { return reinterpret_cast<bf16*>(ctx.scratch(kSlotFfnAct, (static_cast<size_t>(N) * F + 1) / 2)); }
}  // namespace

size_t ffn_state_floats(int N, int D, int F, FfnActivation act) { return (static_cast<size_t>(N) * (D + ffn_pre_width(F, act)) + 1) / 2; }

void ffn_forward(Context& ctx, float* out, float* state, const float* x, const PreNorm<float>& norm, const float* w1, const float* b1, const float* w2,
                 const float* b2, const float* skip, int N, int D, int F, FfnActivation act) {
  const int Fp = ffn_pre_width(F, act);
  const FfnState s(state, N, D, Fp);
  prenorm_forward(ctx, norm, s.x, x, N, D);  // h (or x) in bf16, straight into the state
  const bf16* w1_16 = to_bf16(ctx, kSlotCastA, w1, static_cast<size_t>(Fp) * D);
  bf16* act16 = out ? act_scratch(ctx, N, F) : nullptr;  // out null (recompute): the state is all that was asked for
  if (act == FfnActivation::Gelu && gemm_gelu_supported(ctx, N, F, D, b1, {s.x, w1_16, s.pre, act16, b1})) {
    gemm_gelu_forward(ctx, s.pre, act16, s.x, w1_16, b1, N, F, D);  // pre, and act with GELU in the GEMM's epilogue
  } else {
    gemm_bf16(ctx, false, true, N, Fp, D, s.x, D, w1_16, D, s.pre, Fp);  // pre = h w1^T (b1 is added by the activation)
    if (act16) activation_forward(ctx, act16, s.pre, b1, N, F, act);
  }
  if (!out) return;
  linear_forward(ctx, out, GemmOperand{nullptr, act16}, gemm_operand(ctx, kSlotCastA, w2, static_cast<size_t>(D) * F), b2, skip, N, F, D);
}

void ffn_backward(Context& ctx, float* dinp, float* dw1, float* db1, float* dw2, float* db2, const float* dout, const float* x, const float* state,
                  const PreNorm<float>& norm, const float* w1, const float* b1, const float* w2, int N, int D, int F, FfnActivation act, float* dact,
                  float* dpre) {
  const int Fp = ffn_pre_width(F, act);
  const FfnState s(state, N, D, Fp);
  bf16* dact16 = reinterpret_cast<bf16*>(dact);  // [N,F]
  bf16* dpre16 = reinterpret_cast<bf16*>(dpre);  // [N,Fp]
  const bf16* dout16 = round_output_gradient(ctx, db2, dout, N, D);  // and db2 += column sums of dout
  const bf16* w2_16 = to_bf16(ctx, kSlotCastA, w2, static_cast<size_t>(D) * F);
  gemm_bf16(ctx, false, false, N, F, D, dout16, D, w2_16, F, dact16, F);  // dact = dout w2
  bf16* act16 = act_scratch(ctx, N, F);                                    // written again from pre below
  const bool bias_done = act == FfnActivation::Gelu && db1 && gelu_backward_with_bias_grad(ctx, dpre16, act16, db1, dact16, s.pre, b1, N, F);
  if (!bias_done) {
    activation_backward(ctx, dpre16, act16, dact16, s.pre, b1, N, F, act);
    if (db1) column_sum_accumulate(ctx, db1, dpre16, N, Fp);
  }
  gemm_bf16(ctx, true, false, D, F, N, 1.f, dout16, D, 0, act16, F, 0, 1.f, dw2, F, 0);  // dw2 += dout^T act
  const bf16* w1_16 = to_bf16(ctx, kSlotCastA, w1, static_cast<size_t>(Fp) * D);
  gemm_bf16(ctx, true, false, Fp, D, N, 1.f, dpre16, Fp, 0, s.x, D, 0, 1.f, dw1, D, 0);  // dw1 += dpre^T h
  if (norm.on()) {  // dh = dpre w1 in bf16 (into dact, consumed; distinct from dpre), then the norm's backward
    gemm_bf16(ctx, false, false, N, D, Fp, dpre16, Fp, w1_16, D, dact16, D);
    prenorm_backward(ctx, norm, dinp, dact16, x, N, D);
  } else {
    gemm_bf16(ctx, false, false, N, D, Fp, 1.f, dpre16, Fp, 0, w1_16, D, 0, 0.f, dinp, D, 0);  // dinp = dpre w1 (dact is consumed)
  }
}

}  // namespace mm::cuda
