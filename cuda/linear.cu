// Linear forward/backward. Forward with a bias is one cuBLASLt GEMM with the bias added in its epilogue
// (a GEMM plus a bias kernel where cuBLASLt offers no algorithm); backward is two GEMMs and a column sum.
#include "linear.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
// Owners of cuBLASLt descriptors.
struct LtDesc {
  cublasLtMatmulDesc_t desc = nullptr;
  ~LtDesc() { if (desc) cublasLtMatmulDescDestroy(desc); }
};
struct LtLayout {
  cublasLtMatrixLayout_t layout = nullptr;
  LtLayout(cudaDataType_t type, int rows, int cols, int ld) { MM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, type, rows, cols, ld)); }
  ~LtLayout() { if (layout) cublasLtMatrixLayoutDestroy(layout); }
};
struct LtPreference {
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtPreference() { if (pref) cublasLtMatmulPreferenceDestroy(pref); }
};

// out[N,OC] = inp[N,IC] @ w[OC,IC]^T + b[OC] in one cuBLASLt call. Column-major view:
// out^T [OC,N] = (w^T stored [IC,OC])^T @ inp^T [IC,N], bias along the OC rows of D.
// Returns false (nothing done) when cuBLASLt has no algorithm for the shape.
bool linear_forward_bias_epilogue(Context& ctx, float* out, GemmOperand inp, GemmOperand w, const float* b, int N, int IC, int OC) {
  const bool bf16 = w.bf16 != nullptr;
  const void* a = bf16 ? static_cast<const void*>(w.bf16) : w.f32;
  const void* bm = bf16 ? static_cast<const void*>(inp.bf16) : inp.f32;
  const cudaDataType_t operand_type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  LtDesc op;
  MM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op.desc, bf16 ? CUBLAS_COMPUTE_32F : ctx.compute_type(), CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
  MM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a));
  MM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b));
  MM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  MM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
  LtLayout a_layout(operand_type, IC, OC, IC), b_layout(operand_type, IC, N, IC), d_layout(CUDA_R_32F, OC, N, OC);
  LtPreference pref;
  MM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.pref));
  const size_t workspace = Context::kLtWorkspaceBytes;
  MM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(ctx.cublas_lt(), op.desc, a_layout.layout, b_layout.layout, d_layout.layout, d_layout.layout, pref.pref, 1,
                                     &heuristic, &found) != CUBLAS_STATUS_SUCCESS || found == 0)
    return false;
  const float alpha = 1.f, beta = 0.f;
  MM_CUBLAS_CHECK(cublasLtMatmul(ctx.cublas_lt(), op.desc, &alpha, a, a_layout.layout, bm, b_layout.layout, &beta, out, d_layout.layout, out,
                                 d_layout.layout, &heuristic.algo, ctx.lt_workspace(), workspace, ctx.stream()));
  return true;
}

__global__ void add_bias_kernel(float* out, const float* b, int N, int OC) {
  const size_t total = static_cast<size_t>(N) * OC;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] += b[i % OC];
}
}  // namespace

void linear_forward(Context& ctx, float* out, const float* inp, const float* w, const float* b, int N, int IC, int OC) {
  linear_forward(ctx, out, gemm_operand(ctx, kSlotCastB, inp, static_cast<size_t>(N) * IC), gemm_operand(ctx, kSlotCastA, w, static_cast<size_t>(OC) * IC),
                 b, N, IC, OC);
}

void linear_forward(Context& ctx, float* out, GemmOperand inp, GemmOperand w, const float* b, int N, int IC, int OC) {
  if (b && linear_forward_bias_epilogue(ctx, out, inp, w, b, N, IC, OC)) return;
  gemm(ctx, false, true, N, OC, IC, 1.f, inp, IC, 0, w, IC, 0, 0.f, out, OC, 0);
  if (b) {
    const size_t total = static_cast<size_t>(N) * OC;
    add_bias_kernel<<<static_cast<int>(std::min<size_t>(blocks_for(total, 256), ctx.sm_count() * 16)), 256, 0, ctx.stream()>>>(out, b, N, OC);
    MM_LAUNCH_CHECK();
  }
}

void linear_backward(Context& ctx, float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w, int N, int IC, int OC) {
  const GemmOperand dout_op = gemm_operand(ctx, kSlotCastC, dout, static_cast<size_t>(N) * OC);  // rounded once for both GEMMs
  if (dinp) gemm(ctx, false, false, N, IC, OC, 1.f, dout_op, OC, 0, gemm_operand(ctx, kSlotCastB, w, static_cast<size_t>(OC) * IC), IC, 0, 0.f, dinp, IC, 0);
  gemm(ctx, true, false, OC, IC, N, 1.f, dout_op, OC, 0, gemm_operand(ctx, kSlotCastB, inp, static_cast<size_t>(N) * IC), IC, 0, 1.f, dw, IC, 0);
  if (db) column_sum_accumulate(ctx, db, dout, N, OC);
}

}  // namespace mm::cuda
