// CUDA/cuBLAS failures as mm::Error (host C++, so the .cu files never include fmt).
#include <string>

#include "context.cuh"
#include "core/error.h"

namespace mm::cuda {

void throw_error(const char* library, int code, const char* message, const char* file, int line) {
  const std::string lib = library;
  std::string hint = "check the GPU with nvidia-smi; if memory ran out, lower --batch";
  if (lib == "cuBLAS") hint = "a matrix shape may be unsupported, or GPU memory ran out; lower --batch";
  if (lib == "CUDA driver") hint = "update the NVIDIA driver, or unset MASKMIX_FUSED_GELU_GEMM (cuBLAS and separate GELU kernels)";
  if (code == 100) hint = "run on a machine with an NVIDIA GPU and driver, or use --device cpu";
  fail(fmt::format("{} error {} at {}:{}{}{}", library, code, file, line, *message ? ": " : "", message), hint);
}

}  // namespace mm::cuda
