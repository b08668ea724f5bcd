// Hopper fc1 GEMM with exact GELU in its epilogue (see gemm_gelu.cuh): TMA + mbarrier ring, wgmma,
// helper warps for the epilogue.
#include "gemm_gelu.cuh"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>

#include "activations.cuh"

namespace mm::cuda {

namespace {
using bf16 = __nv_bfloat16;

constexpr int kBM = 256, kBN = 128, kBK = 64, kStages = 3;
// Warp roles: warpgroups 0 and 1 multiply with wgmma (rows 0-127 and 128-255 of a tile), warp 8 loads
// (one thread issues every TMA copy), warps 9-11 apply GELU.
constexpr int kMmaThreads = 256, kHelperThreads = 96, kThreads = 384;
constexpr int kRowGroups = kHelperThreads / 32;  // helper h takes columns 4(h % 32) .. +3 in rows h / 32 + kRowGroups r
constexpr int kTileABytes = kBM * kBK * 2;               // A slice [256 rows, 64 k] bf16, 128-byte rows
constexpr int kTileBBytes = kBN * kBK * 2;               // B slice [128 rows, 64 k]
constexpr int kStageBytes = kTileABytes + kTileBBytes;   // 48 KB
// The result buffer: a [256, 128] bf16 tile stored as two [256 rows, 64 columns] halves in the 128-byte
// swizzle, so the accumulators' fragment-order writes and the helpers' row reads are conflict-free.
constexpr int kTileBytes = kBM * kBN * 2, kHalfBytes = kTileBytes / 2;
constexpr int kBarriers = 2 * kStages + 2;  // ring full/empty; the buffer written, read
constexpr int kSmemBytes = 1024 + kStages * kStageBytes + kTileBytes + 8 * kBarriers;  // + alignment slack

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MM_GEMM_GELU_DEVICE 1
__device__ __forceinline__ uint32_t smem_address(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void barrier_init(uint32_t bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(arrivals));
}
__device__ __forceinline__ void barrier_expect_bytes(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void barrier_arrive(uint32_t bar) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory"); }
// Waits until the phase with this parity has completed (a fresh barrier counts its phase "1" as done).
__device__ __forceinline__ void barrier_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done)
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");
}
// 2-D tile of `map` at (inner, outer) into shared memory; completes `bar`'s expected bytes.
__device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap* map, int inner, int outer, uint32_t bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
               "l"(reinterpret_cast<uint64_t>(map)), "r"(inner), "r"(outer), "r"(bar)
               : "memory");
}
// wgmma descriptor of a K-major tile of 128-byte rows in the 128-byte swizzle TMA wrote (8-row atoms
// of 1024 bytes: stride 1024; the leading offset is unused for this layout).
__device__ __forceinline__ uint64_t tile_descriptor(uint32_t address) {
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | (static_cast<uint64_t>(1) << 16) | (static_cast<uint64_t>(1024 >> 4) << 32) |
         (static_cast<uint64_t>(1) << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(Pending) : "memory");
}
// d[64 x 128 fragment] (+)= A[64 x 16] B[128 x 16]^T, both from shared memory.
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], uint64_t desc_a, uint64_t desc_b, uint32_t accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

#endif

// Byte offset of (row, col) in the result buffer: the row's 16-byte chunk (col % 64) / 8 of its half
// sits at chunk ^ (row % 8).
__device__ __forceinline__ int tile_offset(int row, int col) {
  return (col / 64) * kHalfBytes + row * 128 + ((((col % 64) / 8) ^ (row % 8)) << 4) + (col % 8) * 2;
}

// Persistent: CTA b takes tiles b, b + G, b + 2G, ... (G CTAs, one per SM; a tile's column block varies
// fastest, so the CTAs at work together share A's rows and all of B in L2). Both multiplying
// warpgroups leave the tile's result in bf16 in the buffer and go on to the next tile while three
// helper warps write it out as pre and act = GELU(pre + bias) (erf on the CUDA cores, global writes
// along rows): the tensor cores keep working while the epilogue runs. Accumulator fragment of thread
// t of warpgroup g (warp w = (t/32) % 4, lane l): d[i][4j + 2h + e] is C at row 128g + 64i + 16w +
// l/4 + 8h, column 8j + 2(l%4) + e of the tile.
__global__ void __launch_bounds__(kThreads, 1) gemm_gelu_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                                                                __nv_bfloat16* pre, __nv_bfloat16* act, const float* bias, int M, int N, int K) {
#ifdef MM_GEMM_GELU_DEVICE
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_address(smem_raw), ring = (raw + 1023u) & ~1023u;  // the swizzle wants 1024-byte alignment
  const uint32_t buffer = ring + kStages * kStageBytes, bars = buffer + kTileBytes;
  auto full = [&](int s) { return bars + 8u * s; };               // ring stage s loaded
  auto empty = [&](int s) { return bars + 8u * (kStages + s); };  // ring stage s consumed (both warpgroups)
  const uint32_t written = bars + 8u * (2 * kStages);             // the buffer holds a tile (256 arrivals)
  const uint32_t read = written + 8u;                             // ... and the helpers are done with it (96)
  const int n_tiles = N / kBN, tiles = (M / kBM) * n_tiles, k_blocks = K / kBK;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      barrier_init(full(s), 1);
      barrier_init(empty(s), 2);
    }
    barrier_init(written, kMmaThreads);
    barrier_init(read, kHelperThreads);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  if (threadIdx.x < kMmaThreads) {  // the multiplying warpgroups
    const int g = threadIdx.x / 128, t = threadIdx.x % 128, warp = t / 32, lane = t % 32;
    int pos = 0;  // ring position: the stage is pos % kStages, its use pos / kStages
    for (int local = 0, tile = blockIdx.x; tile < tiles; ++local, tile += gridDim.x) {
      float d[2][64];
      for (int kb = 0; kb < k_blocks; ++kb, ++pos) {
        const int s = pos % kStages;
        barrier_wait(full(s), (pos / kStages) & 1);
        const uint32_t a = ring + s * kStageBytes + g * 128 * 128, b = ring + s * kStageBytes + kTileABytes;
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < kBK / 16; ++k)
#pragma unroll
          for (int i = 0; i < 2; ++i)
            wgmma_m64n128k16(d[i], tile_descriptor(a + i * 64 * 128 + 32 * k), tile_descriptor(b + 32 * k), (kb > 0 || k > 0) ? 1u : 0u);
        wgmma_commit();
        wgmma_wait<1>();  // the previous slice's multiplies are done: give its stage back
        if (kb > 0 && t == 0) barrier_arrive(empty((pos - 1) % kStages));
      }
      wgmma_wait<0>();
      if (t == 0) barrier_arrive(empty((pos - 1) % kStages));
      // the result in bf16 (pre as the unfused path stores it) into the buffer, once the helpers are done with the last tile
      barrier_wait(read, (local & 1) ^ 1);
      unsigned char* tile_smem = smem_raw + (buffer - raw);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 16; ++j)
#pragma unroll
          for (int h = 0; h < 2; ++h)
            *reinterpret_cast<__nv_bfloat162*>(tile_smem + tile_offset(128 * g + 64 * i + 16 * warp + lane / 4 + 8 * h, 8 * j + 2 * (lane % 4))) =
                __floats2bfloat162_rn(d[i][4 * j + 2 * h], d[i][4 * j + 2 * h + 1]);
      barrier_arrive(written);
    }
    return;
  }

  if (threadIdx.x < kMmaThreads + 32) {  // the loader
    if (threadIdx.x != kMmaThreads) return;
    int pos = 0;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int m0 = (tile / n_tiles) * kBM, n0 = (tile % n_tiles) * kBN;
      for (int kb = 0; kb < k_blocks; ++kb, ++pos) {
        const int s = pos % kStages;
        barrier_wait(empty(s), ((pos / kStages) & 1) ^ 1);
        barrier_expect_bytes(full(s), kStageBytes);
        tma_load(ring + s * kStageBytes, &map_a, kb * kBK, m0, full(s));
        tma_load(ring + s * kStageBytes + kTileABytes, &map_b, kb * kBK, n0, full(s));
      }
    }
    return;
  }

  // the helpers: a warp covers a row's 128 columns (256-byte global writes), thread h columns 4q .. 4q + 3
  const int h = threadIdx.x - kMmaThreads - 32, q = h % 32, row_group = h / 32;
  const unsigned char* tile_smem = smem_raw + (buffer - raw);
  for (int local = 0, tile = blockIdx.x; tile < tiles; ++local, tile += gridDim.x) {
    const int m0 = (tile / n_tiles) * kBM, n0 = (tile % n_tiles) * kBN;
    const float4 b = *reinterpret_cast<const float4*>(bias + n0 + 4 * q);
    const size_t first = static_cast<size_t>(m0) * N + n0 + 4 * q;  // (row 0, column 4q) of the tile in [M, N]
    barrier_wait(written, local & 1);
#pragma unroll 4
    for (int row = row_group; row < kBM; row += kRowGroups) {
      const uint2 v = *reinterpret_cast<const uint2*>(tile_smem + tile_offset(row, 4 * q));  // four bf16 of pre
      const size_t at = first + static_cast<size_t>(row) * N;
      *reinterpret_cast<uint2*>(pre + at) = v;
      if (act) {
        const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v.x));
        const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v.y));
        const __nv_bfloat162 a0 = __floats2bfloat162_rn(gelu(lo.x + b.x), gelu(lo.y + b.y));
        const __nv_bfloat162 a1 = __floats2bfloat162_rn(gelu(hi.x + b.z), gelu(hi.y + b.w));
        uint2 out;
        out.x = *reinterpret_cast<const uint32_t*>(&a0);
        out.y = *reinterpret_cast<const uint32_t*>(&a1);
        *reinterpret_cast<uint2*>(act + at) = out;
      }
    }
    barrier_arrive(read);
  }
#endif
}

// Tensor map of a row-major [rows, cols] bf16 matrix read in boxes of [box_rows, 64] (128-byte swizzle).
CUtensorMap tile_map(Context& ctx, const bf16* matrix, int rows, int cols, int box_rows) {
  auto encode = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ctx.driver_entry_point("cuTensorMapEncodeTiled"));
  CUtensorMap map{};
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(cols) * sizeof(bf16)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kBK), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult status = encode(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<bf16*>(matrix), dims, strides, box, element_strides,
                                 CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                 CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (status != CUDA_SUCCESS)
    throw_error("CUDA driver", static_cast<int>(status), "cuTensorMapEncodeTiled failed (unset MASKMIX_FUSED_GELU_GEMM to avoid it)", __FILE__, __LINE__);
  return map;
}

}  // namespace

bool gemm_gelu_supported(const Context& ctx, int M, int N, int K, const float* bias, std::initializer_list<const void*> arrays) {
  if (!ctx.fused_gelu_gemm() || !bias || M % kBM != 0 || N % kBN != 0 || K % kBK != 0 || M <= 0 || N <= 0 || K <= 0) return false;
  for (const void* p : arrays)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

void gemm_gelu_forward(Context& ctx, bf16* pre, bf16* act, const bf16* x, const bf16* w, const float* bias, int M, int N, int K) {
  const CUtensorMap map_a = tile_map(ctx, x, M, K, kBM), map_b = tile_map(ctx, w, N, K, kBN);
  MM_CUDA_CHECK(cudaFuncSetAttribute(gemm_gelu_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  const int tiles = (M / kBM) * (N / kBN);
  gemm_gelu_kernel<<<std::min(tiles, ctx.sm_count()), kThreads, kSmemBytes, ctx.stream()>>>(map_a, map_b, pre, act, bias, M, N, K);
  MM_LAUNCH_CHECK();
}

}  // namespace mm::cuda
