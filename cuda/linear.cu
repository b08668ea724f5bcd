// Linear forward/backward. Forward with a bias (or a residual to add) is one cuBLASLt GEMM with the bias
// in its epilogue and the residual as its C (a GEMM plus a bias kernel where cuBLASLt offers no
// algorithm); backward is two GEMMs and a column sum.
#include "linear.cuh"
#include "reduce.cuh"

namespace mm::cuda {

namespace {
struct LtPreference {
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtPreference() { if (pref) cublasLtMatmulPreferenceDestroy(pref); }
};

// Fills `plan` for out[N,OC] = inp[N,IC] @ w[OC,IC]^T (+ bias) in the column-major view
// out^T [OC,N] = (w^T stored [IC,OC])^T @ inp^T [IC,N], the bias along the OC rows of D.
void build_plan(Context& ctx, LtPlan& plan, const LtPlanKey& key) {
  const cudaDataType_t operand_type = key.bf16 ? CUDA_R_16BF : CUDA_R_32F;
  MM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, key.bf16 ? CUBLAS_COMPUTE_32F : ctx.compute_type(), CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  const cublasLtEpilogue_t epilogue = key.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  MM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a));
  MM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b));
  MM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  MM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, operand_type, key.in, key.out, key.in));
  MM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, operand_type, key.in, key.rows, key.in));
  MM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.d, CUDA_R_32F, key.out, key.rows, key.out));
  LtPreference pref;
  MM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.pref));
  const size_t workspace = Context::kLtWorkspaceBytes;
  MM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  plan.usable = cublasLtMatmulAlgoGetHeuristic(ctx.cublas_lt(), plan.desc, plan.a, plan.b, plan.d, plan.d, pref.pref, 1, &heuristic, &found) ==
                    CUBLAS_STATUS_SUCCESS &&
                found > 0;
  plan.algo = heuristic.algo;
}

// out[N,OC] = inp[N,IC] @ w[OC,IC]^T (+ b[OC]) (+ skip[N,OC], as C with beta 1) in one cuBLASLt call
// with the shape's cached plan. Returns false (nothing done) when cuBLASLt has no algorithm for it.
bool linear_forward_lt(Context& ctx, float* out, GemmOperand inp, GemmOperand w, const float* b, const float* skip, int N, int IC, int OC) {
  const bool bf16 = w.bf16 != nullptr;
  const LtPlanKey key{N, IC, OC, bf16, b != nullptr};
  LtPlan& plan = ctx.lt_plan(key);
  if (!plan.desc) build_plan(ctx, plan, key);
  if (!plan.usable) return false;
  if (b) MM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
  const void* a = bf16 ? static_cast<const void*>(w.bf16) : w.f32;
  const void* bm = bf16 ? static_cast<const void*>(inp.bf16) : inp.f32;
  const float alpha = 1.f, beta = skip ? 1.f : 0.f;
  MM_CUBLAS_CHECK(cublasLtMatmul(ctx.cublas_lt(), plan.desc, &alpha, a, plan.a, bm, plan.b, &beta, skip ? skip : out, plan.d, out, plan.d, &plan.algo,
                                 ctx.lt_workspace(), Context::kLtWorkspaceBytes, ctx.stream()));
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
                 b, nullptr, N, IC, OC);
}

void linear_forward(Context& ctx, float* out, GemmOperand inp, GemmOperand w, const float* b, const float* skip, int N, int IC, int OC) {
  if ((b || skip) && linear_forward_lt(ctx, out, inp, w, b, skip, N, IC, OC)) return;
  if (skip && skip != out) MM_CUDA_CHECK(cudaMemcpyAsync(out, skip, sizeof(float) * N * OC, cudaMemcpyDeviceToDevice, ctx.stream()));
  gemm(ctx, false, true, N, OC, IC, 1.f, inp, IC, 0, w, IC, 0, skip ? 1.f : 0.f, out, OC, 0);
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
