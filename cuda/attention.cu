// Attention and RoPE kernels.
#include "attention.cuh"
#include "flash_attention.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {

// table[t, i] = (cos, sin) of t * 10000^(-2i/Dh), computed in double and rounded once.
__global__ void rope_table_kernel(float2* table, int T, int half, int Dh) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= T * half) return;
  const int t = k / half, i = k % half;
  const double angle = t * pow(10000.0, -2.0 * i / Dh);
  table[k] = make_float2(static_cast<float>(cos(angle)), static_cast<float>(sin(angle)));
}

__global__ void rope_kernel(float* qkv, const float2* table, int B, int T, int D, int H, float direction) {
  const int Dh = D / H, half = Dh / 2;
  const size_t total = static_cast<size_t>(B) * T * 2 * H * half;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total; k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(k % half);
    const int h = static_cast<int>((k / half) % H);
    const int part = static_cast<int>((k / (static_cast<size_t>(half) * H)) % 2);
    const size_t bt = k / (static_cast<size_t>(half) * H * 2);
    const int t = static_cast<int>(bt % T);
    float* x = qkv + bt * 3 * D + part * D + h * Dh;
    const float2 cs = table[static_cast<size_t>(t) * half + i];
    const float c = cs.x, s = direction * cs.y;
    const float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * c - x2 * s;
    x[i + half] = x2 * c + x1 * s;
  }
}

// Moves part `part` of a row-major [B,T,stride] tensor to/from head-major [B,H,T,Dh]:
// to_heads: heads[b,h,t,d] = rows[b,t,part*D + h*Dh + d]; otherwise the reverse.
__global__ void permute_heads(float* heads, float* rows, int part, int B, int T, int D, int H, int stride, bool to_heads) {
  const int Dh = D / H;
  const size_t total = static_cast<size_t>(B) * T * D;
  for (size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; k < total; k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int d = static_cast<int>(k % Dh);
    const int t = static_cast<int>((k / Dh) % T);
    const int h = static_cast<int>((k / (static_cast<size_t>(Dh) * T)) % H);
    const size_t b = k / (static_cast<size_t>(Dh) * T * H);
    float* row = rows + (b * T + t) * stride + part * D + h * Dh + d;
    if (to_heads) heads[k] = *row;
    else *row = heads[k];
  }
}

void split_heads(Context& ctx, float* dst, const float* rows, int part, int B, int T, int D, int H, int stride) {
  const size_t n = static_cast<size_t>(B) * T * D;
  permute_heads<<<static_cast<int>(std::min<size_t>(blocks_for(n, 256), static_cast<size_t>(ctx.sm_count()) * 16)), 256, 0, ctx.stream()>>>(
      dst, const_cast<float*>(rows), part, B, T, D, H, stride, true);
}
void merge_heads(Context& ctx, float* rows, const float* src, int part, int B, int T, int D, int H, int stride) {
  const size_t n = static_cast<size_t>(B) * T * D;
  permute_heads<<<static_cast<int>(std::min<size_t>(blocks_for(n, 256), static_cast<size_t>(ctx.sm_count()) * 16)), 256, 0, ctx.stream()>>>(
      const_cast<float*>(src), rows, part, B, T, D, H, stride, false);
}

// In place on scores [rows, T] (row = (b,h,i)): causal softmax of scale*s; zero above the diagonal.
__global__ void causal_softmax_kernel(float* p, int rows, int T, float scale) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int i = row % T;
  float* r = p + static_cast<size_t>(row) * T;
  float m = -INFINITY;
  for (int j = lane; j <= i; j += 32) m = fmaxf(m, r[j] * scale);
  m = warp_max(m);
  float s = 0.f;
  for (int j = lane; j <= i; j += 32) s += __expf(r[j] * scale - m);
  s = warp_sum(s);
  const float inv = 1.f / s;
  for (int j = lane; j < T; j += 32) r[j] = j <= i ? __expf(r[j] * scale - m) * inv : 0.f;
}

// In place on dp [rows, T]: ds = p * (dp - sum_j p*dp) * scale
__global__ void softmax_backward_kernel(float* dp, const float* p, int rows, int T, float scale) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int i = row % T;
  float* d = dp + static_cast<size_t>(row) * T;
  const float* pr = p + static_cast<size_t>(row) * T;
  float dot = 0.f;
  for (int j = lane; j <= i; j += 32) dot += pr[j] * d[j];
  dot = warp_sum(dot);
  for (int j = lane; j < T; j += 32) d[j] = j <= i ? pr[j] * (d[j] - dot) * scale : 0.f;
}

int grid(Context& ctx, size_t n) { return static_cast<int>(std::min<size_t>(blocks_for(n, 256), static_cast<size_t>(ctx.sm_count()) * 16)); }

void rotate(Context& ctx, float* qkv, int B, int T, int D, int H, float direction) {
  rope_kernel<<<grid(ctx, static_cast<size_t>(B) * T * D), 256, 0, ctx.stream()>>>(qkv, rope_table(ctx, T, D / H), B, T, D, H, direction);
  MM_LAUNCH_CHECK();
}

// qkv itself, or (rope) a rotated copy in scratch
const float* maybe_rotated(Context& ctx, const float* qkv, int B, int T, int D, int H, bool rope) {
  if (!rope) return qkv;
  const size_t n = static_cast<size_t>(B) * T * 3 * D;
  float* rotated = ctx.scratch(kSlotRotatedQkv, n);
  MM_CUDA_CHECK(cudaMemcpyAsync(rotated, qkv, n * sizeof(float), cudaMemcpyDeviceToDevice, ctx.stream()));
  rotate(ctx, rotated, B, T, D, H, 1.f);
  return rotated;
}
}  // namespace

const float2* rope_table(Context& ctx, int T, int Dh) {
  const int half = Dh / 2;
  bool filled = false;  // the same table serves every layer and step: built once per (T, Dh)
  auto* table = reinterpret_cast<float2*>(ctx.keyed_scratch(kSlotRopeTable, static_cast<size_t>(T) * half * 2, static_cast<long long>(T) << 32 | Dh, &filled));
  if (!filled) {
    rope_table_kernel<<<blocks_for(static_cast<size_t>(T) * half, 256), 256, 0, ctx.stream()>>>(table, T, half, Dh);
    MM_LAUNCH_CHECK();
  }
  return table;
}

void rope_forward(Context& ctx, float* qkv, int B, int T, int D, int H) { rotate(ctx, qkv, B, T, D, H, 1.f); }
void rope_backward(Context& ctx, float* dqkv, int B, int T, int D, int H) { rotate(ctx, dqkv, B, T, D, H, -1.f); }

bool attention_is_fused(const Context& ctx, int D, int H) { return ctx.precision() == Precision::Bf16 && flash_attention_supports(D / H); }

void attention_forward(Context& ctx, float* out, float* state, const float* qkv_in, int B, int T, int D, int H, bool rope) {
  if (attention_is_fused(ctx, D, H)) return flash_attention_forward(ctx, out, state, qkv_in, B, T, D, H, rope);
  const float* qkv = maybe_rotated(ctx, qkv_in, B, T, D, H, rope);
  float* probs = state;
  const int Dh = D / H;
  const size_t n = static_cast<size_t>(B) * T * D;
  float* q = ctx.scratch(kSlotHeadsQ, n);
  float* k = ctx.scratch(kSlotHeadsK, n);
  float* v = ctx.scratch(kSlotHeadsV, n);
  float* o = ctx.scratch(kSlotHeadsOut, n);
  split_heads(ctx, q, qkv, 0, B, T, D, H, 3 * D);
  split_heads(ctx, k, qkv, 1, B, T, D, H, 3 * D);
  split_heads(ctx, v, qkv, 2, B, T, D, H, 3 * D);
  MM_LAUNCH_CHECK();
  const long long hd = static_cast<long long>(T) * Dh, tt = static_cast<long long>(T) * T;
  gemm(ctx, false, true, T, T, Dh, 1.f, q, Dh, hd, k, Dh, hd, 0.f, probs, T, tt, B * H);  // raw scores
  const int rows = B * H * T;
  causal_softmax_kernel<<<blocks_for(static_cast<size_t>(rows) * 32, 256), 256, 0, ctx.stream()>>>(probs, rows, T, 1.f / sqrtf(static_cast<float>(Dh)));
  MM_LAUNCH_CHECK();
  gemm(ctx, false, false, T, Dh, T, 1.f, probs, T, tt, v, Dh, hd, 0.f, o, Dh, hd, B * H);
  merge_heads(ctx, out, o, 0, B, T, D, H, D);
  MM_LAUNCH_CHECK();
}

void attention_backward(Context& ctx, float* dqkv, const float* dout, const float* qkv_in, const float* out, const float* state, int B, int T, int D,
                        int H, bool rope) {
  if (attention_is_fused(ctx, D, H)) return flash_attention_backward(ctx, dqkv, dout, qkv_in, out, state, B, T, D, H, rope);
  const float* qkv = maybe_rotated(ctx, qkv_in, B, T, D, H, rope);
  const float* probs = state;
  const int Dh = D / H;
  const size_t n = static_cast<size_t>(B) * T * D;
  float* q = ctx.scratch(kSlotHeadsQ, n);
  float* k = ctx.scratch(kSlotHeadsK, n);
  float* v = ctx.scratch(kSlotHeadsV, n);
  float* dO = ctx.scratch(kSlotHeadsOut, n);
  float* dp = ctx.scratch(kSlotScoresGrad, static_cast<size_t>(B) * H * T * T);
  float* dh = ctx.scratch(kSlotHeadsGrad, n);
  split_heads(ctx, q, qkv, 0, B, T, D, H, 3 * D);
  split_heads(ctx, k, qkv, 1, B, T, D, H, 3 * D);
  split_heads(ctx, v, qkv, 2, B, T, D, H, 3 * D);
  split_heads(ctx, dO, dout, 0, B, T, D, H, D);
  MM_LAUNCH_CHECK();
  const long long hd = static_cast<long long>(T) * Dh, tt = static_cast<long long>(T) * T;
  const size_t scores = static_cast<size_t>(B) * H * T * T;
  // each operand is rounded once (precision bf16) though dO and dS each feed two GEMMs
  const GemmOperand dO_op = gemm_operand(ctx, kSlotCastC, dO, n);
  gemm(ctx, false, true, T, T, Dh, 1.f, dO_op, Dh, hd, gemm_operand(ctx, kSlotCastB, v, n), Dh, hd, 0.f, dp, T, tt, B * H);          // dP = dO v^T
  gemm(ctx, true, false, T, Dh, T, 1.f, gemm_operand(ctx, kSlotCastA, probs, scores), T, tt, dO_op, Dh, hd, 0.f, dh, Dh, hd, B * H);  // dV = P^T dO
  merge_heads(ctx, dqkv, dh, 2, B, T, D, H, 3 * D);
  const int rows = B * H * T;
  softmax_backward_kernel<<<blocks_for(static_cast<size_t>(rows) * 32, 256), 256, 0, ctx.stream()>>>(dp, probs, rows, T, 1.f / sqrtf(static_cast<float>(Dh)));
  MM_LAUNCH_CHECK();
  const GemmOperand dS_op = gemm_operand(ctx, kSlotCastC, dp, scores);
  gemm(ctx, false, false, T, Dh, T, 1.f, dS_op, T, tt, gemm_operand(ctx, kSlotCastB, k, n), Dh, hd, 0.f, dh, Dh, hd, B * H);  // dQ = dS k
  merge_heads(ctx, dqkv, dh, 0, B, T, D, H, 3 * D);
  gemm(ctx, true, false, T, Dh, T, 1.f, dS_op, T, tt, gemm_operand(ctx, kSlotCastB, q, n), Dh, hd, 0.f, dh, Dh, hd, B * H);  // dK = dS^T q
  merge_heads(ctx, dqkv, dh, 1, B, T, D, H, 3 * D);
  MM_LAUNCH_CHECK();
  if (rope) rope_backward(ctx, dqkv, B, T, D, H);
}

}  // namespace mm::cuda
