// Factory for the CUDA backend (Ops<float> over device memory). Plain C++ header: no CUDA includes.
#pragma once
#include <memory>

#include "ops/ops.h"

namespace mm {

// precision: how GEMMs run (exact fp32 for tight parity, TF32, or bf16 operands with fp32 accumulation).
std::unique_ptr<Ops<float>> make_cuda_ops(Precision precision);

}  // namespace mm
