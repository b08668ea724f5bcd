// Picks the backend for --device: the CPU reference or CUDA (when built with nvcc and a GPU exists).
#pragma once
#include <memory>
#include <string>

#include "ops/ops.h"

namespace mm {

Device parse_device(const std::string& name);
Precision parse_precision(const std::string& name);  // fp32, tf32 or bf16
// precision: how CUDA matmuls run (ignored on the CPU).
std::unique_ptr<Ops<float>> make_backend(Device device, Precision precision = Precision::Tf32);
// Number of usable CUDA devices (0 when built without CUDA or when no GPU/driver is present).
int cuda_device_count();

}  // namespace mm
