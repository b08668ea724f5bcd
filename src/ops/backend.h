// Picks the backend for --device: the CPU reference or CUDA (when built with nvcc and a GPU exists).
#pragma once
#include <memory>
#include <string>

#include "ops/ops.h"

namespace mm {

Device parse_device(const std::string& name);
// strict_fp32 (CUDA only): exact fp32 GEMMs instead of TF32 tensor cores.
std::unique_ptr<Ops<float>> make_backend(Device device, bool strict_fp32 = false);
// Number of usable CUDA devices (0 when built without CUDA or when no GPU/driver is present).
int cuda_device_count();

}  // namespace mm
