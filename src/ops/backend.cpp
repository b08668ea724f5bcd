// Backend selection.
#include "ops/backend.h"

#include "core/error.h"
#include "ops/cpu_ops.h"

namespace mm {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::Cpu;
  if (name == "cuda" || name == "gpu") return Device::Cuda;
  throw UsageError(fmt::format("unknown device '{}'", name), "use --device cpu or --device cuda");
}

#ifndef MASKMIX_CUDA
int cuda_device_count() { return 0; }
#endif

std::unique_ptr<Ops<float>> make_backend(Device device) {
  if (device == Device::Cpu) return std::make_unique<CpuOps<float>>();
  fail("the CUDA backend is not built yet", "it arrives with the CUDA issue (#4); use --device cpu for now");
}

}  // namespace mm
