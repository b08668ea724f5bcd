// CUDA runtime queries used on every build with nvcc; returns 0 devices when no GPU or driver exists.
#include <cuda_runtime.h>

namespace mm {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

}  // namespace mm
