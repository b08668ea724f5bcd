// Factory for the CUDA backend (Ops<float> over device memory). Plain C++ header: no CUDA includes.
#pragma once
#include <memory>

#include "ops/ops.h"

namespace mm {

// strict_fp32: exact fp32 GEMMs (for tight parity); otherwise TF32 tensor cores.
std::unique_ptr<Ops<float>> make_cuda_ops(bool strict_fp32);

}  // namespace mm
