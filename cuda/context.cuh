// CUDA context: stream, cuBLAS handle, grow-only scratch buffers, and checked-call macros that turn
// failures into mm::Error with a HINT.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <map>
#include <string>
#include <vector>

#include "ops/ops.h"

namespace mm::cuda {

// Defined in cuda/errors.cpp (host C++): throws mm::Error with a HINT. Keeps fmt out of nvcc's way.
[[noreturn]] void throw_error(const char* library, int code, const char* message, const char* file, int line);

#define MM_CUDA_CHECK(call)                                                                                        \
  do {                                                                                                             \
    cudaError_t status_ = (call);                                                                                  \
    if (status_ != cudaSuccess)                                                                                    \
      ::mm::cuda::throw_error("CUDA", static_cast<int>(status_), cudaGetErrorString(status_), __FILE__, __LINE__); \
  } while (0)

#define MM_CUBLAS_CHECK(call)                                                                                      \
  do {                                                                                                             \
    cublasStatus_t status_ = (call);                                                                               \
    if (status_ != CUBLAS_STATUS_SUCCESS)                                                                          \
      ::mm::cuda::throw_error("cuBLAS", static_cast<int>(status_), "", __FILE__, __LINE__);                       \
  } while (0)

#define MM_LAUNCH_CHECK() MM_CUDA_CHECK(cudaGetLastError())

// Scratch buffers, one slot per use; buffers of different slots may be live at the same time.
enum ScratchSlot : int {
  kSlotMixMasked,     // masked_mix: the masked mixing matrix [To, Ti]
  kSlotMixPartial,    // masked_mix: per-sequence weight gradients [B, To, Ti]
  kSlotMixBiasRows,   // masked_mix: per-(sequence, row) bias-gradient partials [B, G*To]
  kSlotHeadsQ,        // attention: q (or dq) in head-major layout [B, H, T, Dh]
  kSlotHeadsK,        // attention: k
  kSlotHeadsV,        // attention: v
  kSlotHeadsOut,      // attention: o / dO
  kSlotNormProducts,  // norms: partial column sums of dout * x_hat and dout [2, chunks, D]
  kSlotColumnPartial, // reduce: column-sum partials
  kSlotScoresGrad,    // attention: dP / dS [B, H, T, T]
  kSlotHeadsGrad,     // attention: per-head gradient [B, H, T, Dh]
  kSlotAdamPartial,   // adamw / sum_squares: per-block partial sums
  kSlotRopeTable,     // attention: RoPE cos/sin table [T, Dh/2, 2]
  kSlotCastA,         // gemm in bf16: first operand rounded to bf16
  kSlotCastB,         // gemm in bf16: second operand
  kSlotCastC,         // linear backward in bf16: a third operand kept for a second GEMM
  kSlotAttentionDelta,  // flash attention backward: rowsum(dO * O) [B, H, T]
  kSlotRotatedQkv,      // attention (GEMM path) with RoPE: the rotated copy of qkv [B, T, 3D]
  kSlotQkvRows,         // self-attention in bf16 with a qkv bias: the fp32 projection before it is rounded [B, T, 3D]
  kSlotTokenOrder,      // embedding backward: positions, then token ids and positions sorted by token [3, N] (int32)
  kSlotSortTemp,        // embedding backward: the radix sort's temporary storage
  kSlotTokenPieces,     // embedding backward: pieces per token and their exclusive scan [2, V] (int32)
  kSlotScanTemp,        // embedding backward: the scan's temporary storage
  kSlotEmbeddingPieces, // embedding backward: per-piece row sums [pieces, D]
  kSlotFfnAct,          // feed-forward in bf16: the activation act [N, F] (forward for the second GEMM, backward for dw2)
};

// A cuBLASLt plan for one linear-layer shape: descriptors and the heuristic's algorithm, built on first
// use (linear.cu) and kept, so later calls skip the descriptor setup and the heuristic query.
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;  // null until built
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool usable = false;  // false: cuBLASLt offers no algorithm for the shape
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan();
};
struct LtPlanKey {
  int rows, in, out;
  bool bf16, bias;
  auto operator<=>(const LtPlanKey&) const = default;
};

// A bf16 copy of a parameter buffer (precision bf16): AdamW writes it next to the fp32 weights, so GEMMs
// take weights without rounding them in every call; other writes into the buffer (loading, copies) are
// re-rounded into it at once (Context::refresh_shadows), so it always equals the rounded parameters.
struct ParamShadow {
  const float* params = nullptr;
  size_t n = 0;
  __nv_bfloat16* copy = nullptr;
};

class Context {
 public:
  explicit Context(Precision precision);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  cublasLtHandle_t cublas_lt() const { return cublas_lt_; }
  void* lt_workspace() const { return lt_workspace_; }
  static constexpr size_t kLtWorkspaceBytes = 32u << 20;  // what cuBLASLt recommends on Hopper
  // fp32 GEMMs: TF32 tensor cores unless precision is Fp32 (exact, for tight parity tests).
  cublasComputeType_t compute_type() const { return precision_ == Precision::Fp32 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32; }
  Precision precision() const { return precision_; }
  // Scratch slot `slot` with at least `floats` elements; valid until the next call for the same slot.
  float* scratch(int slot, size_t floats);
  // A scratch slot holding data that depends only on `key` (a table for one shape, say). *filled tells
  // whether it still holds that data; false the first time, after another key, or after it grew, and
  // the caller then fills it. Use the slot for nothing else.
  float* keyed_scratch(int slot, size_t floats, long long key, bool* filled);
  int sm_count() const { return sm_count_; }
  // Whether the GPU runs the Hopper (sm_90a) kernel of gemm_gelu.cu: compute capability 9.0 and the
  // environment sets MASKMIX_FUSED_GELU_GEMM=1 (opt-in: it measured slower than cuBLAS and the separate
  // GELU kernel, see gemm_gelu.cuh).
  bool fused_gelu_gemm() const { return fused_gelu_gemm_; }
  // A CUDA driver function by name (cuTensorMapEncodeTiled, say), looked up once; throws if missing.
  void* driver_entry_point(const char* symbol);
  // Bytes held by model buffers and scratch, and their peak (what `bench` reports as memory).
  void track(long long delta) {
    held_ += delta;
    if (held_ > peak_) peak_ = held_;
  }
  size_t peak_bytes() const { return static_cast<size_t>(peak_); }
  const std::string& name() const { return name_; }
  LtPlan& lt_plan(const LtPlanKey& key) { return lt_plans_[key]; }  // an unbuilt plan (desc null) the first time

  // The bf16 shadow of params [0, n), made on first use (AdamW's).
  __nv_bfloat16* param_shadow(const float* params, size_t n);
  // The shadow's copy of x [0, n) when it lies inside a shadowed buffer, else null.
  const __nv_bfloat16* shadow_of(const float* x, size_t n) const;
  // Re-rounds whatever part of a shadowed buffer [dst, dst + bytes) covers (after a write there).
  void refresh_shadows(const void* dst, size_t bytes);
  // Drops the shadow of a buffer that is being freed.
  void forget_shadow(const void* params);

 private:
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cublasLtHandle_t cublas_lt_ = nullptr;
  void* lt_workspace_ = nullptr;
  Precision precision_;
  int sm_count_ = 0;
  bool fused_gelu_gemm_ = false;
  std::map<std::string, void*> driver_functions_;
  std::string name_;
  std::vector<std::pair<void*, size_t>> scratch_;
  std::vector<long long> scratch_keys_;  // per slot, what keyed_scratch last filled it for (-1: nothing)
  std::map<LtPlanKey, LtPlan> lt_plans_;
  std::vector<ParamShadow> shadows_;
  long long held_ = 0, peak_ = 0;
};

// Row-major GEMM mirroring mm::cpu::gemm, strided-batched: for each i < batch,
//   C_i[M,N] = alpha * op(A_i) @ op(B_i) + beta * C_i, with X_i = X + i * stride_x.
void gemm(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, long long stride_a,
          const float* B, int ldb, long long stride_b, float beta, float* C, int ldc, long long stride_c, int batch = 1);

// The same GEMM on operands already rounded to bf16 (fp32 accumulation, fp32 C).
void gemm_bf16(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const __nv_bfloat16* A, int lda, long long stride_a,
               const __nv_bfloat16* B, int ldb, long long stride_b, float beta, float* C, int ldc, long long stride_c, int batch = 1);
// ... and with a bf16 C: fp32 accumulation, each result rounded once (beta 0); one GEMM or strided-batched.
void gemm_bf16(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, const __nv_bfloat16* A, int lda, const __nv_bfloat16* B, int ldb,
               __nv_bfloat16* C, int ldc);
void gemm_bf16(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, const __nv_bfloat16* A, int lda, long long stride_a,
               const __nv_bfloat16* B, int ldb, long long stride_b, __nv_bfloat16* C, int ldc, long long stride_c, int batch);

// TFLOP/s of an n x n x n GEMM at the context's precision (bf16 operands with fp32 output, TF32 or
// fp32), the median of 10 timed runs after 3 warm-up runs; its buffers are not counted as model memory.
double measure_gemm_tflops(Context& ctx, int n);

// Rounds src[0, n) to bf16 into scratch slot `slot`; valid until that slot is used again.
const __nv_bfloat16* to_bf16(Context& ctx, int slot, const float* src, size_t n);
// The same into dst.
void round_to_bf16(Context& ctx, __nv_bfloat16* dst, const float* src, size_t n);

// A GEMM operand prepared once for several GEMMs: the fp32 array itself, or (precision bf16) its bf16
// copy in a scratch slot. Keeps ops from rounding the same tensor twice.
struct GemmOperand {
  const float* f32 = nullptr;
  const __nv_bfloat16* bf16 = nullptr;
  GemmOperand at(size_t offset) const { return {f32 ? f32 + offset : nullptr, bf16 ? bf16 + offset : nullptr}; }
};
GemmOperand gemm_operand(Context& ctx, int slot, const float* x, size_t n);
void gemm(Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, GemmOperand A, int lda, long long stride_a, GemmOperand B,
          int ldb, long long stride_b, float beta, float* C, int ldc, long long stride_c, int batch = 1);

inline int blocks_for(size_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

}  // namespace mm::cuda
