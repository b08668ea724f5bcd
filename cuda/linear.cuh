// Linear layer through cuBLAS: out[N,OC] = inp[N,IC] @ w[OC,IC]^T + b; backward dinp = dout @ w,
// dw += dout^T @ inp, db += column sums of dout.
#pragma once
#include "context.cuh"

namespace mm::cuda {
void linear_forward(Context& ctx, float* out, const float* inp, const float* w, const float* b, int N, int IC, int OC);
// The same on operands prepared by gemm_operand (bf16 copies made once elsewhere), plus skip [N,OC]
// (may be null, may be out) added to the result.
void linear_forward(Context& ctx, float* out, GemmOperand inp, GemmOperand w, const float* b, const float* skip, int N, int IC, int OC);
void linear_backward(Context& ctx, float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w, int N, int IC, int OC);
}  // namespace mm::cuda
