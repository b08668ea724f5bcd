// CUDA context and the cuBLAS GEMM wrapper.
#include "context.cuh"

#include <algorithm>
#include <cstdlib>

namespace mm::cuda {

Context::Context(Precision precision) : precision_(precision) {
  int device = 0;
  MM_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  MM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  sm_count_ = prop.multiProcessorCount;
  name_ = prop.name;
  const char* fused = std::getenv("MASKMIX_FUSED_GELU_GEMM");
  fused_gelu_gemm_ = prop.major == 9 && prop.minor == 0 && fused && std::string(fused) == "1";
  MM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  MM_CUBLAS_CHECK(cublasCreate(&cublas_));
  MM_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  MM_CUBLAS_CHECK(cublasLtCreate(&cublas_lt_));
  MM_CUDA_CHECK(cudaMalloc(&lt_workspace_, kLtWorkspaceBytes));
  track(static_cast<long long>(kLtWorkspaceBytes));
}

LtPlan::~LtPlan() {
  for (cublasLtMatrixLayout_t layout : {a, b, d})
    if (layout) cublasLtMatrixLayoutDestroy(layout);
  if (desc) cublasLtMatmulDescDestroy(desc);
}

Context::~Context() {
  lt_plans_.clear();  // before the handle goes
  for (const ParamShadow& s : shadows_) cudaFree(s.copy);
  for (auto& [ptr, size] : scratch_)
    if (ptr) cudaFree(ptr);
  if (lt_workspace_) cudaFree(lt_workspace_);
  if (cublas_lt_) cublasLtDestroy(cublas_lt_);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

void* Context::driver_entry_point(const char* symbol) {
  auto found = driver_functions_.find(symbol);
  if (found != driver_functions_.end()) return found->second;
  void* function = nullptr;
  cudaDriverEntryPointQueryResult query{};
  MM_CUDA_CHECK(cudaGetDriverEntryPointByVersion(symbol, &function, 12000, cudaEnableDefault, &query));
  if (query != cudaDriverEntryPointSuccess || !function) throw_error("CUDA driver", static_cast<int>(query), symbol, __FILE__, __LINE__);
  driver_functions_[symbol] = function;
  return function;
}

float* Context::scratch(int slot, size_t floats) {
  if (scratch_.size() <= static_cast<size_t>(slot)) {
    scratch_.resize(slot + 1, {nullptr, 0});
    scratch_keys_.resize(slot + 1, -1);
  }
  auto& [ptr, size] = scratch_[slot];
  if (size < floats) {
    scratch_keys_[slot] = -1;  // new memory holds nothing
    if (ptr) {
      MM_CUDA_CHECK(cudaStreamSynchronize(stream_));
      MM_CUDA_CHECK(cudaFree(ptr));
      track(-static_cast<long long>(size * sizeof(float)));
    }
    MM_CUDA_CHECK(cudaMalloc(&ptr, floats * sizeof(float)));
    size = floats;
    track(static_cast<long long>(size * sizeof(float)));
  }
  return static_cast<float*>(ptr);
}

float* Context::keyed_scratch(int slot, size_t floats, long long key, bool* filled) {
  float* ptr = scratch(slot, floats);
  *filled = scratch_keys_[slot] == key;
  scratch_keys_[slot] = key;
  return ptr;
}

namespace {
// dst = bf16(src), round to nearest even; four elements per thread when src is 16-byte aligned.
__global__ void round_to_bf16_kernel(__nv_bfloat16* dst, const float* src, size_t n, bool vectorized) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t quads = vectorized ? n / 4 : 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < quads; i += stride) {
    const float4 v = reinterpret_cast<const float4*>(src)[i];
    reinterpret_cast<__nv_bfloat162*>(dst)[2 * i] = __floats2bfloat162_rn(v.x, v.y);
    reinterpret_cast<__nv_bfloat162*>(dst)[2 * i + 1] = __floats2bfloat162_rn(v.z, v.w);
  }
  for (size_t i = 4 * quads + blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += stride) dst[i] = __float2bfloat16_rn(src[i]);
}

// Elements from the first to the last one a row-major operand reads: op(X) is rows x cols, stored
// transposed when trans, batch copies `stride` apart.
size_t operand_span(bool trans, int rows, int cols, int ld, long long stride, int batch) {
  const size_t stored_rows = trans ? cols : rows, stored_cols = trans ? rows : cols;
  return static_cast<size_t>(batch - 1) * stride + (stored_rows - 1) * static_cast<size_t>(ld) + stored_cols;
}
}  // namespace

__nv_bfloat16* Context::param_shadow(const float* params, size_t n) {
  for (const ParamShadow& s : shadows_)
    if (s.params == params && s.n == n) return s.copy;
  forget_shadow(params);
  ParamShadow s{params, n, nullptr};
  MM_CUDA_CHECK(cudaMalloc(&s.copy, n * sizeof(__nv_bfloat16)));
  track(static_cast<long long>(n * sizeof(__nv_bfloat16)));
  shadows_.push_back(s);
  return s.copy;
}

const __nv_bfloat16* Context::shadow_of(const float* x, size_t n) const {
  for (const ParamShadow& s : shadows_)
    if (x >= s.params && x + n <= s.params + s.n) return s.copy + (x - s.params);
  return nullptr;
}

void Context::refresh_shadows(const void* dst, size_t bytes) {
  const auto* begin = static_cast<const float*>(dst);
  const float* end = begin + bytes / sizeof(float);
  for (const ParamShadow& s : shadows_) {
    const float* from = std::max(begin, s.params);
    const float* to = std::min(end, s.params + s.n);
    if (from < to) round_to_bf16(*this, s.copy + (from - s.params), from, static_cast<size_t>(to - from));
  }
}

void Context::forget_shadow(const void* params) {
  for (auto it = shadows_.begin(); it != shadows_.end(); ++it)
    if (it->params == params) {
      MM_CUDA_CHECK(cudaStreamSynchronize(stream_));
      MM_CUDA_CHECK(cudaFree(it->copy));
      track(-static_cast<long long>(it->n * sizeof(__nv_bfloat16)));
      shadows_.erase(it);
      return;
    }
}

const __nv_bfloat16* to_bf16(Context& ctx, int slot, const float* src, size_t n) {
  if (const __nv_bfloat16* shadow = ctx.shadow_of(src, n)) return shadow;  // a weight: AdamW keeps its bf16 copy
  auto* dst = reinterpret_cast<__nv_bfloat16*>(ctx.scratch(slot, (n + 1) / 2));
  round_to_bf16(ctx, dst, src, n);
  return dst;
}

void round_to_bf16(Context& ctx, __nv_bfloat16* dst, const float* src, size_t n) {
  const bool vectorized = reinterpret_cast<uintptr_t>(src) % 16 == 0;
  const int blocks = static_cast<int>(std::min<size_t>(blocks_for((vectorized ? n / 4 : n) + 1, 256), static_cast<size_t>(ctx.sm_count()) * 16));
  round_to_bf16_kernel<<<blocks, 256, 0, ctx.stream()>>>(dst, src, n, vectorized);
  MM_LAUNCH_CHECK();
}

void gemm_bf16(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const __nv_bfloat16* A, int lda, long long stride_a,
               const __nv_bfloat16* B, int ldb, long long stride_b, float beta, float* C, int ldc, long long stride_c, int batch) {
  MM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(ctx.cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                             &alpha, B, CUDA_R_16BF, ldb, stride_b, A, CUDA_R_16BF, lda, stride_a, &beta, C, CUDA_R_32F, ldc,
                                             stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void gemm_bf16(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, const __nv_bfloat16* A, int lda, const __nv_bfloat16* B, int ldb,
               __nv_bfloat16* C, int ldc) {
  const float alpha = 1.f, beta = 0.f;
  MM_CUBLAS_CHECK(cublasGemmEx(ctx.cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, CUDA_R_16BF,
                               ldb, A, CUDA_R_16BF, lda, &beta, C, CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void gemm_bf16(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, const __nv_bfloat16* A, int lda, long long stride_a,
               const __nv_bfloat16* B, int ldb, long long stride_b, __nv_bfloat16* C, int ldc, long long stride_c, int batch) {
  const float alpha = 1.f, beta = 0.f;
  MM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(ctx.cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                             &alpha, B, CUDA_R_16BF, ldb, stride_b, A, CUDA_R_16BF, lda, stride_a, &beta, C, CUDA_R_16BF, ldc,
                                             stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

namespace {
// Owners for the timing run's buffers and events.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { MM_CUDA_CHECK(cudaMalloc(&ptr, bytes)); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};
struct Event {
  cudaEvent_t event = nullptr;
  Event() { MM_CUDA_CHECK(cudaEventCreate(&event)); }
  ~Event() { cudaEventDestroy(event); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};
}  // namespace

double measure_gemm_tflops(Context& ctx, int n) {
  const size_t elems = static_cast<size_t>(n) * n, operand_bytes = elems * (ctx.precision() == Precision::Bf16 ? 2 : 4);
  DeviceBuffer a(operand_bytes), b(operand_bytes), c(elems * sizeof(float));
  MM_CUDA_CHECK(cudaMemsetAsync(a.ptr, 0, operand_bytes, ctx.stream()));
  MM_CUDA_CHECK(cudaMemsetAsync(b.ptr, 0, operand_bytes, ctx.stream()));
  Event start, stop;
  std::vector<float> ms;
  for (int run = 0; run < 13; ++run) {  // 3 warm-up runs, then 10 timed
    MM_CUDA_CHECK(cudaEventRecord(start.event, ctx.stream()));
    if (ctx.precision() == Precision::Bf16)
      gemm_bf16(ctx, false, false, n, n, n, 1.f, static_cast<const __nv_bfloat16*>(a.ptr), n, 0, static_cast<const __nv_bfloat16*>(b.ptr), n, 0, 0.f,
                static_cast<float*>(c.ptr), n, 0);
    else
      gemm(ctx, false, false, n, n, n, 1.f, static_cast<const float*>(a.ptr), n, 0, static_cast<const float*>(b.ptr), n, 0, 0.f, static_cast<float*>(c.ptr),
           n, 0);
    MM_CUDA_CHECK(cudaEventRecord(stop.event, ctx.stream()));
    MM_CUDA_CHECK(cudaEventSynchronize(stop.event));
    float elapsed = 0.f;
    MM_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start.event, stop.event));
    if (run >= 3) ms.push_back(elapsed);
  }
  std::sort(ms.begin(), ms.end());
  return 2.0 * n * elems / (ms[ms.size() / 2] * 1e-3) / 1e12;
}

GemmOperand gemm_operand(Context& ctx, int slot, const float* x, size_t n) {
  if (ctx.precision() == Precision::Bf16) return {nullptr, to_bf16(ctx, slot, x, n)};
  return {x, nullptr};
}

void gemm(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, GemmOperand A, int lda, long long stride_a, GemmOperand B,
          int ldb, long long stride_b, float beta, float* C, int ldc, long long stride_c, int batch) {
  if (A.bf16 && B.bf16) gemm_bf16(ctx, trans_a, trans_b, M, N, K, alpha, A.bf16, lda, stride_a, B.bf16, ldb, stride_b, beta, C, ldc, stride_c, batch);
  else if (A.f32 && B.f32) gemm(ctx, trans_a, trans_b, M, N, K, alpha, A.f32, lda, stride_a, B.f32, ldb, stride_b, beta, C, ldc, stride_c, batch);
  else throw_error("maskmix", 1, "gemm operands of mixed precision (internal error)", __FILE__, __LINE__);
}

void gemm(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, long long stride_a,
          const float* B, int ldb, long long stride_b, float beta, float* C, int ldc, long long stride_c, int batch) {
  if (ctx.precision() == Precision::Bf16) {
    const __nv_bfloat16* a16 = to_bf16(ctx, kSlotCastA, A, operand_span(trans_a, M, K, lda, stride_a, batch));
    const __nv_bfloat16* b16 = to_bf16(ctx, kSlotCastB, B, operand_span(trans_b, K, N, ldb, stride_b, batch));
    gemm_bf16(ctx, trans_a, trans_b, M, N, K, alpha, a16, lda, stride_a, b16, ldb, stride_b, beta, C, ldc, stride_c, batch);
    return;
  }
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  MM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(ctx.cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                             &alpha, B, CUDA_R_32F, ldb, stride_b, A, CUDA_R_32F, lda, stride_a, &beta, C, CUDA_R_32F, ldc,
                                             stride_c, batch, ctx.compute_type(), CUBLAS_GEMM_DEFAULT));
}

}  // namespace mm::cuda

namespace mm {
int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}
}  // namespace mm
