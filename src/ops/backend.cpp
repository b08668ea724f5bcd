// Backend selection.
#include "ops/backend.h"

#include "core/error.h"
#include "ops/cpu_ops.h"
#ifdef MASKMIX_CUDA
#include "cuda_ops.h"
#endif

namespace mm {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::Cpu;
  if (name == "cuda" || name == "gpu") return Device::Cuda;
  throw UsageError(fmt::format("unknown device '{}'", name), "use --device cpu or --device cuda");
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::Fp32;
  if (name == "tf32") return Precision::Tf32;
  if (name == "bf16") return Precision::Bf16;
  throw UsageError(fmt::format("unknown precision '{}'", name), "use --precision bf16 (fastest), tf32, or fp32 (exact, for parity checks)");
}

#ifndef MASKMIX_CUDA
int cuda_device_count() { return 0; }
#endif

std::unique_ptr<Ops<float>> make_backend(Device device, Precision precision) {
  if (device == Device::Cpu) return std::make_unique<CpuOps<float>>();
#ifdef MASKMIX_CUDA
  return make_cuda_ops(precision);
#else
  fail("this maskmix was built without CUDA", "rebuild on a machine with nvcc (make clean && make), or use --device cpu");
#endif
}

}  // namespace mm
