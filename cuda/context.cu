// CUDA context and the cuBLAS GEMM wrapper.
#include "context.cuh"

namespace mm::cuda {

Context::Context(bool strict_fp32) : strict_(strict_fp32) {
  int device = 0;
  MM_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  MM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  sm_count_ = prop.multiProcessorCount;
  name_ = prop.name;
  MM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  MM_CUBLAS_CHECK(cublasCreate(&cublas_));
  MM_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
}

Context::~Context() {
  for (auto& [ptr, size] : scratch_)
    if (ptr) cudaFree(ptr);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) cudaStreamDestroy(stream_);
}

float* Context::scratch(int slot, size_t floats) {
  if (scratch_.size() <= static_cast<size_t>(slot)) scratch_.resize(slot + 1, {nullptr, 0});
  auto& [ptr, size] = scratch_[slot];
  if (size < floats) {
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

void gemm(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, long long stride_a,
          const float* B, int ldb, long long stride_b, float beta, float* C, int ldc, long long stride_c, int batch) {
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
