// Flash-style causal attention kernels (see flash_attention.cuh). Fragment layouts are those of PTX
// mma.m16n8k16 with bf16 inputs: a lane holds rows g = lane/4 and g + 8, columns 2t, 2t+1 (t = lane%4)
// of a 16-wide tile (and again 8 columns further for A operands).
#include "flash_attention.cuh"

#include <type_traits>

#include "attention.cuh"

namespace mm::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kWarps = 4, kThreads = 32 * kWarps;
constexpr int kBlockRows = 16 * kWarps;  // query rows per block (forward, dQ) and keys per block (dK/dV)
constexpr int kForwardKeys = 64;         // keys per shared-memory tile in forward
constexpr int kBackwardTile = 32;        // queries per tile in dK/dV (64 would not fit its registers)
constexpr int kDqKeys = 64;              // keys per tile in dQ (32: 108 us per llama d512 layer on the H100, 64: 104)
constexpr int kPad = 8;                  // bf16 row padding: fragment loads of 8 rows x 4 lanes hit 32 banks

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Two adjacent results stored as fp32 or rounded to bf16; an fp32 pair read back.
__device__ __forceinline__ void store_pair(float* p, float lo, float hi) { *reinterpret_cast<float2*>(p) = make_float2(lo, hi); }
__device__ __forceinline__ void store_pair(bf16* p, float lo, float hi) { *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(lo, hi); }
__device__ __forceinline__ float2 load_pair(const float* p) { return *reinterpret_cast<const float2*>(p); }

// d[16x8] += a[16x16] b[16x8], bf16 inputs, fp32 accumulators.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 bf16 matrices from shared memory (ldmatrix): lanes 8j..8j+7 give the row addresses of matrix
// j, and each lane receives, of every matrix, row lane/4, columns 2(lane%4) and +1: the mma fragment
// layout. `transposed` delivers the transposed matrices.
template <bool transposed>
__device__ __forceinline__ void load_matrices(uint32_t (&m)[4], const bf16* row_address) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row_address));
  if constexpr (transposed)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(m[0]), "=r"(m[1]), "=r"(m[2]), "=r"(m[3]) : "r"(addr));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(m[0]), "=r"(m[1]), "=r"(m[2]), "=r"(m[3]) : "r"(addr));
}

// A operand: rows r0..r0+15, columns k0..k0+15 of the row-major tile x (row stride ld).
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* x, int ld, int r0, int k0) {
  const int lane = threadIdx.x % 32;
  load_matrices<false>(a, x + (r0 + lane % 16) * ld + k0 + lane / 16 * 8);
}

// B operands of two n-tiles, b[k][n] = y[n][k] (y row-major with k contiguous, row stride ld) for
// k0..k0+15: b[0], b[1] for n0..n0+7 and b[2], b[3] for n0+8..n0+15.
__device__ __forceinline__ void load_b_pair(uint32_t (&b)[4], const bf16* y, int ld, int n0, int k0) {
  const int lane = threadIdx.x % 32;
  load_matrices<false>(b, y + (n0 + lane % 8 + lane / 16 * 8) * ld + k0 + lane / 8 % 2 * 8);
}

// The accumulators of two adjacent 16x8 tiles (columns 16j..16j+15) as an A operand.
__device__ __forceinline__ void accumulators_as_a(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack_bf16(lo[0], lo[1]);
  a[1] = pack_bf16(lo[2], lo[3]);
  a[2] = pack_bf16(hi[0], hi[1]);
  a[3] = pack_bf16(hi[2], hi[3]);
}

// 2^x through the special-function unit (ex2.approx, flushing results below 2^-126 to zero; 2^-inf = 0).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Reductions over the four lanes (t = 0..3) that hold one accumulator row.
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// 16 bytes global -> shared without passing through registers; zero-filled when !inside.
__device__ __forceinline__ void copy_async16(void* dst, const void* src, bool inside) {
  const unsigned dst_addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst_addr), "l"(src), "r"(inside ? 16 : 0));
}
// 4 bytes global -> shared (zero-filled when !inside).
__device__ __forceinline__ void copy_async4(void* dst, const void* src, bool inside) {
  const unsigned dst_addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst_addr), "l"(src), "r"(inside ? 4 : 0));
}
__device__ __forceinline__ void commit_async() { asm volatile("cp.async.commit_group;\n" ::); }
template <int Pending>
__device__ __forceinline__ void wait_async() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
}

// Starts copying rows row0..row0+Rows-1 of a bf16 head slice (Dh wide, row stride `stride` elements)
// into a shared tile with row stride Dh + kPad; rows at or past T are zero.
template <int Dh, int Rows>
__device__ void load_tile_async(bf16* tile, const bf16* src, size_t stride, int row0, int T) {
  constexpr int kChunks = Dh / 8;  // 16-byte chunks per row
  for (int idx = threadIdx.x; idx < Rows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = (idx % kChunks) * 8;
    const bool inside = row0 + r < T;
    copy_async16(tile + r * (Dh + kPad) + c, src + static_cast<size_t>(inside ? row0 + r : 0) * stride + c, inside);
  }
}

// Starts copying the Keys key rows from `first` of a head's k and v (q_src + D, q_src + 2D; row stride
// `stride`) into tile buffer `buffer` of the double-buffered k_tiles / v_tiles.
template <int Dh, int Keys>
__device__ __forceinline__ void load_kv_async(bf16* k_tiles, bf16* v_tiles, int buffer, const bf16* q_src, int D, size_t stride, int first, int T) {
  constexpr int kTile = Keys * (Dh + kPad);
  load_tile_async<Dh, Keys>(k_tiles + buffer * kTile, q_src + D, stride, first, T);
  load_tile_async<Dh, Keys>(v_tiles + buffer * kTile, q_src + 2 * D, stride, first, T);
}

// Before using K/V tile `buffer` (keys k0..): starts the next tile's copy into the other buffer when keys
// up to last_key remain, then waits for this tile's copy and for every thread.
template <int Dh, int Keys>
__device__ __forceinline__ void next_kv_tile(bf16* k_tiles, bf16* v_tiles, int buffer, const bf16* q_src, int D, size_t stride, int k0, int last_key,
                                             int T) {
  if (k0 + Keys <= last_key) {
    load_kv_async<Dh, Keys>(k_tiles, v_tiles, buffer ^ 1, q_src, D, stride, k0 + Keys, T);
    commit_async();
    wait_async<1>();
  } else {
    wait_async<0>();
  }
  __syncthreads();
}

// B operands of two n-tiles, b[k][n] = y[k][n] from a row-major tile y (n contiguous), k0..k0+15:
// b[0], b[1] for n0..n0+7 and b[2], b[3] for n0+8..n0+15. The transposing load does what a transposed
// copy of the tile would.
__device__ __forceinline__ void load_b_pair_transposed(uint32_t (&b)[4], const bf16* y, int ld, int k0, int n0) {
  const int lane = threadIdx.x % 32;
  load_matrices<true>(b, y + (k0 + lane % 16) * ld + n0 + lane / 16 * 8);
}

// dst = qkv [B*T rows, 3D] in bf16, with q and k rotated by RoPE first when `rope` (table [T, Dh/2]) is
// given. Blocks take rows; a thread takes four consecutive i < Dh/2 of one (part, head) and their
// partners i + Dh/2 (16-byte loads; 32-bit index arithmetic only: 64-bit divisions made this pass four
// times slower). Needs Dh % 8 == 0 (flash_attention_supports).
__global__ void round_qkv_kernel(bf16* dst, const float* qkv, const float2* rope, int rows, int T, int D, int H) {
  const int half = D / H / 2, quads = 3 * H * half / 4;
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* src = qkv + static_cast<size_t>(row) * 3 * D;
    bf16* out = dst + static_cast<size_t>(row) * 3 * D;
    const float2* angles = rope ? rope + (row % T) * half : nullptr;
    for (int p = threadIdx.x; p < quads; p += blockDim.x) {
      const int i = 4 * p % half, head_part = 4 * p / half;  // head_part = part * H + h
      const int at = head_part * 2 * half + i;
      float x1[4], x2[4];
      *reinterpret_cast<float4*>(x1) = *reinterpret_cast<const float4*>(src + at);
      *reinterpret_cast<float4*>(x2) = *reinterpret_cast<const float4*>(src + at + half);
      if (angles && head_part < 2 * H) {  // q and k: rope_kernel's forward rotation
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 cs = angles[i + j];
          const float r1 = x1[j] * cs.x - x2[j] * cs.y, r2 = x2[j] * cs.x + x1[j] * cs.y;
          x1[j] = r1;
          x2[j] = r2;
        }
      }
      __nv_bfloat162 lo[2] = {__floats2bfloat162_rn(x1[0], x1[1]), __floats2bfloat162_rn(x1[2], x1[3])};
      __nv_bfloat162 hi[2] = {__floats2bfloat162_rn(x2[0], x2[1]), __floats2bfloat162_rn(x2[2], x2[3])};
      *reinterpret_cast<uint2*>(out + at) = *reinterpret_cast<const uint2*>(lo);
      *reinterpret_cast<uint2*>(out + at + half) = *reinterpret_cast<const uint2*>(hi);
    }
  }
}

// qkv16 [B*T rows, 3D] bf16: q and k rotated by RoPE in place (table [T, Dh/2]), in fp32 and rounded
// once more; round_qkv_kernel's layout of the work (four i < Dh/2 and their partners per thread).
__global__ void rotate_qk_kernel(bf16* qkv16, const float2* rope, int rows, int T, int D, int H) {
  const int half = D / H / 2, quads = 2 * H * half / 4;  // q and k only
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    bf16* x = qkv16 + static_cast<size_t>(row) * 3 * D;
    const float2* angles = rope + (row % T) * half;
    for (int p = threadIdx.x; p < quads; p += blockDim.x) {
      const int i = 4 * p % half, at = 4 * p / half * 2 * half + i;
      uint2 lo_raw = *reinterpret_cast<const uint2*>(x + at), hi_raw = *reinterpret_cast<const uint2*>(x + at + half);
      auto* lo = reinterpret_cast<__nv_bfloat162*>(&lo_raw);
      auto* hi = reinterpret_cast<__nv_bfloat162*>(&hi_raw);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const float2 x1 = __bfloat1622float2(lo[j]), x2 = __bfloat1622float2(hi[j]);
        const float2 c0 = angles[i + 2 * j], c1 = angles[i + 2 * j + 1];
        lo[j] = __floats2bfloat162_rn(x1.x * c0.x - x2.x * c0.y, x1.y * c1.x - x2.y * c1.y);
        hi[j] = __floats2bfloat162_rn(x2.x * c0.x + x1.x * c0.y, x2.y * c1.x + x1.y * c1.y);
      }
      *reinterpret_cast<uint2*>(x + at) = lo_raw;
      *reinterpret_cast<uint2*>(x + at + half) = hi_raw;
    }
  }
}

// Rotates a gradient row held in accumulator layout back through RoPE (the inverse rotation) at
// position `pos`: columns c < Dh/2 (tiles nt < Dh/16) pair with c + Dh/2 (tiles nt + Dh/16).
template <int Dh>
__device__ __forceinline__ void unrotate(float (&acc)[Dh / 8][4], int r, const float2* rope, int pos) {
  const int t = threadIdx.x % 4;
#pragma unroll
  for (int nt = 0; nt < Dh / 16; ++nt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const float2 cs = rope[pos * (Dh / 2) + 8 * nt + 2 * t + e];
      const float x1 = acc[nt][2 * r + e], x2 = acc[nt + Dh / 16][2 * r + e];
      acc[nt][2 * r + e] = x1 * cs.x + x2 * cs.y;
      acc[nt + Dh / 16][2 * r + e] = x2 * cs.x - x1 * cs.y;
    }
}

// acc[16 x Dh] += a[16 x 16] y[k0..k0+15][0..Dh): a row-major tile y (row stride Dh + kPad) read as the
// B operand through transposing loads (o += p v, dV += p dO, dK += dS q, dQ += dS k).
template <int Dh>
__device__ __forceinline__ void accumulate_times_rows(float (&acc)[Dh / 8][4], const uint32_t (&a)[4], const bf16* y, int k0) {
#pragma unroll
  for (int nt = 0; nt < Dh / 8; nt += 2) {
    uint32_t b[4];
    load_b_pair_transposed(b, y, Dh + kPad, k0, 8 * nt);
    mma_bf16(acc[nt], a, b[0], b[1]);
    mma_bf16(acc[nt + 1], a, b[2], b[3]);
  }
}

// The two products a backward tile needs, summed over the head dimension: first += A1 B1^T and
// second += A2 B2^T, with A rows r0..r0+15 of tiles a1, a2 and B the Tile rows of tiles b1, b2
// (dQ: S = q k^T and dP = dO v^T; dK/dV: S^T = k q^T and dP^T = v dO^T).
template <int Dh, int Tile>
__device__ __forceinline__ void paired_products(float (&first)[Tile / 8][4], float (&second)[Tile / 8][4], const bf16* a1,
                                                const bf16* b1, const bf16* a2, const bf16* b2, int r0) {
  constexpr int ld = Dh + kPad;
#pragma unroll
  for (int ks = 0; ks < Dh / 16; ++ks) {
    uint32_t a1_frag[4], a2_frag[4];
    load_a(a1_frag, a1, ld, r0, 16 * ks);
    load_a(a2_frag, a2, ld, r0, 16 * ks);
#pragma unroll
    for (int nt = 0; nt < Tile / 8; nt += 2) {
      uint32_t b[4];
      load_b_pair(b, b1, ld, 8 * nt, 16 * ks);
      mma_bf16(first[nt], a1_frag, b[0], b[1]);
      mma_bf16(first[nt + 1], a1_frag, b[2], b[3]);
      load_b_pair(b, b2, ld, 8 * nt, 16 * ks);
      mma_bf16(second[nt], a2_frag, b[0], b[1]);
      mma_bf16(second[nt + 1], a2_frag, b[2], b[3]);
    }
  }
}

// Where one (sequence, head) starts in the bf16 copies of qkv [B,T,3D] and dout [B,T,D], in out/dout
// (fp32) and in lse/delta [B,H,T].
struct HeadView {
  size_t qkv_offset;  // q of (b, t = 0, head); + D: k, + 2D: v; row stride 3D
  size_t row_offset;  // out/dout element of (b, t = 0, head), row stride D
  size_t lse_offset;  // lse/delta element of (b, h, t = 0)
  __device__ HeadView(int bh, int T, int D, int H, int Dh)
      : qkv_offset(static_cast<size_t>(bh / H) * T * 3 * D + (bh % H) * Dh),
        row_offset(static_cast<size_t>(bh / H) * T * D + (bh % H) * Dh),
        lse_offset(static_cast<size_t>(bh) * T) {}
};

// grid (ceil(T/64), B*H); each warp owns 16 query rows; keys stream through shared memory 64 at a
// time, the next tile loading while the current one is used. qkv16: qkv rounded to bf16; out: fp32 or bf16.
// The q tile passes through the second K buffer into registers before the first prefetch needs it.
// (Capping registers for a third block per SM, 168 a thread, was slower at Dh 128 on the H200: 89 vs 82 us.)
static_assert(kBlockRows == kForwardKeys, "the q tile borrows a K buffer");
template <int Dh, class OutT>
__global__ void __launch_bounds__(kThreads, 2) flash_forward_kernel(OutT* out, float* lse, const bf16* qkv16, int T, int D, int H, float scale) {
  constexpr int ld = Dh + kPad, kTile = kForwardKeys * ld;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* k_tiles = reinterpret_cast<bf16*>(shared);  // [2][64][ld]
  bf16* v_tiles = k_tiles + 2 * kTile;              // [2][64][ld]
  const int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kBlockRows;  // the longest (last) query blocks start first
  const HeadView view(blockIdx.y, T, D, H, Dh);
  const bf16* q_src = qkv16 + view.qkv_offset;
  const size_t stride = 3 * static_cast<size_t>(D);
  load_tile_async<Dh, kBlockRows>(k_tiles + kTile, q_src, stride, q0, T);
  load_kv_async<Dh, kForwardKeys>(k_tiles, v_tiles, 0, q_src, D, stride, 0, T);
  commit_async();
  uint32_t q_frag[Dh / 16][4];
  wait_async<0>();
  __syncthreads();
#pragma unroll
  for (int ks = 0; ks < Dh / 16; ++ks) load_a(q_frag[ks], k_tiles + kTile, ld, 16 * warp, 16 * ks);
  __syncthreads();  // every warp holds its q rows: the buffer is free for the first prefetch

  const int row[2] = {q0 + 16 * warp + g, q0 + 16 * warp + g + 8};
  const float log2_scale = scale * 1.4426950408889634f;  // scores in base-2 units: exp2(x log2 e) = exp(x)
  float o[Dh / 8][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};  // base-2 max; row_sum: this lane's partial
  const int last_key = min(q0 + kBlockRows, T) - 1;
  for (int k0 = 0, buffer = 0; k0 <= last_key; k0 += kForwardKeys, buffer ^= 1) {
    next_kv_tile<Dh, kForwardKeys>(k_tiles, v_tiles, buffer, q_src, D, stride, k0, last_key, T);
    const bf16* k_tile = k_tiles + buffer * kTile;
    const bf16* v_tile = v_tiles + buffer * kTile;
    float s[kForwardKeys / 8][4] = {};  // scores [16 rows x 64 keys]
#pragma unroll
    for (int ks = 0; ks < Dh / 16; ++ks)
#pragma unroll
      for (int nt = 0; nt < kForwardKeys / 8; nt += 2) {
        uint32_t b[4];
        load_b_pair(b, k_tile, ld, 8 * nt, 16 * ks);
        mma_bf16(s[nt], q_frag[ks], b[0], b[1]);
        mma_bf16(s[nt + 1], q_frag[ks], b[2], b[3]);
      }
    // Key k0 <= every row of this block, so each row's running max is finite after the first tile. Only
    // tiles that reach past the warp's first row need the causal mask.
    float tile_max[2] = {-INFINITY, -INFINITY};
    const bool masked = k0 + kForwardKeys - 1 > q0 + 16 * warp;
#pragma unroll
    for (int nt = 0; nt < kForwardKeys / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + 8 * nt + 2 * t + (e & 1);
        s[nt][e] = !masked || key <= row[e / 2] ? s[nt][e] * log2_scale : -INFINITY;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], s[nt][e]);
      }
    float rescale[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float new_max = fmaxf(row_max[r], quad_max(tile_max[r]));
      rescale[r] = fast_exp2(row_max[r] - new_max);
      row_max[r] = new_max;
      row_sum[r] *= rescale[r];
    }
#pragma unroll
    for (int nt = 0; nt < kForwardKeys / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = fast_exp2(s[nt][e] - row_max[e / 2]);
        row_sum[e / 2] += s[nt][e];
      }
#pragma unroll
    for (int nt = 0; nt < Dh / 8; ++nt) {
      o[nt][0] *= rescale[0];
      o[nt][1] *= rescale[0];
      o[nt][2] *= rescale[1];
      o[nt][3] *= rescale[1];
    }
#pragma unroll
    for (int j = 0; j < kForwardKeys / 16; ++j) {  // o += p v over keys 16j..16j+15
      uint32_t p_frag[4];
      accumulators_as_a(p_frag, s[2 * j], s[2 * j + 1]);
      accumulate_times_rows<Dh>(o, p_frag, v_tile, 16 * j);
    }
    __syncthreads();  // this buffer is refilled two tiles from now
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float total = quad_sum(row_sum[r]);
    if (row[r] >= T) continue;
    const float inv = 1.f / total;
    OutT* dst = out + view.row_offset + static_cast<size_t>(row[r]) * D;
#pragma unroll
    for (int nt = 0; nt < Dh / 8; ++nt) store_pair(dst + 8 * nt + 2 * t, o[nt][2 * r] * inv, o[nt][2 * r + 1] * inv);
    if (t == 0) lse[view.lse_offset + row[r]] = (row_max[r] + log2f(total)) * 0.6931471805599453f;  // natural-log units
  }
}

// delta[b,h,t] = sum_d dout[b,t,h,d] * out[b,t,h,d] for the fp32 entry point (the bf16 path computes
// it inside the dQ kernel), one warp per (b, t, h), two values per lane and load (Dh is even).
__global__ void attention_delta_kernel(float* delta, const float* dout, const float* out, int B, int T, int D, int H) {
  const int Dh = D / H;
  const size_t row = blockIdx.x * static_cast<size_t>(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= static_cast<size_t>(B) * T * H) return;
  const int h = static_cast<int>(row % H);
  const size_t bt = row / H;
  const float* a = dout + bt * D + h * Dh;
  const float* o = out + bt * D + h * Dh;
  float sum = 0.f;
  for (int d = 2 * (threadIdx.x % 32); d < Dh; d += 64) {
    const float2 x = load_pair(a + d), y = load_pair(o + d);
    sum += x.x * y.x + x.y * y.y;
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const size_t b = bt / T, t = bt % T;
  if (threadIdx.x % 32 == 0) delta[(b * H + h) * T + t] = sum;
}

// dK and dV: grid (ceil(T/64), B*H); each warp owns 16 keys and sums over the queries at or after
// them, 32 queries per shared tile (double-buffered). dS = P (dP - delta); dK = scale dS^T q,
// dV = P^T dO. qkv16, dout16: bf16 copies; dqkv: fp32 or bf16.
template <int Dh, class OutT>
__global__ void __launch_bounds__(kThreads) flash_backward_dkdv_kernel(OutT* dqkv, const bf16* dout16, const bf16* qkv16, const float* lse,
                                                                        const float* delta, const float2* rope, int T, int D, int H, float scale) {
  constexpr int ld = Dh + kPad, kTile = kBackwardTile * ld;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* k_tile = reinterpret_cast<bf16*>(shared);  // [64][ld]
  bf16* v_tile = k_tile + kBlockRows * ld;         // [64][ld]
  bf16* q_tiles = v_tile + kBlockRows * ld;        // [2][32][ld]
  bf16* do_tiles = q_tiles + 2 * kTile;            // [2][32][ld]
  float* lse_tiles = reinterpret_cast<float*>(do_tiles + 2 * kTile);  // [2][32] lse of the tile's queries
  float* delta_tiles = lse_tiles + 2 * kBackwardTile;                 // [2][32]
  const int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  const int k0 = blockIdx.x * kBlockRows;  // the first key blocks see the most queries and start first
  const HeadView view(blockIdx.y, T, D, H, Dh);
  const bf16* q_src = qkv16 + view.qkv_offset;
  const bf16* do_src = dout16 + view.row_offset;
  const size_t stride = 3 * static_cast<size_t>(D);
  // a query tile: its q and dO rows, and its lse and delta (the latter through threads 0..63)
  auto load_queries = [&](int buffer, int first) {
    load_tile_async<Dh, kBackwardTile>(q_tiles + buffer * kTile, q_src, stride, first, T);
    load_tile_async<Dh, kBackwardTile>(do_tiles + buffer * kTile, do_src, D, first, T);
    if (threadIdx.x < 2 * kBackwardTile) {
      const int i = threadIdx.x % kBackwardTile, q = first + i;
      const float* src = (threadIdx.x < kBackwardTile ? lse : delta) + view.lse_offset + (q < T ? q : 0);
      copy_async4((threadIdx.x < kBackwardTile ? lse_tiles : delta_tiles) + buffer * kBackwardTile + i, src, q < T);
    }
  };
  load_kv_async<Dh, kBlockRows>(k_tile, v_tile, 0, q_src, D, stride, k0, T);
  load_queries(0, k0);
  commit_async();

  const int key[2] = {k0 + 16 * warp + g, k0 + 16 * warp + g + 8};
  const float log2_scale = scale * 1.4426950408889634f, log2e = 1.4426950408889634f;
  float dk[Dh / 8][4] = {}, dv[Dh / 8][4] = {};
  for (int q0 = k0, buffer = 0; q0 < T; q0 += kBackwardTile, buffer ^= 1) {
    if (q0 + kBackwardTile < T) {
      load_queries(buffer ^ 1, q0 + kBackwardTile);
      commit_async();
      wait_async<1>();
    } else {
      wait_async<0>();
    }
    __syncthreads();
    const bf16* q_tile = q_tiles + buffer * kTile;
    const bf16* do_tile = do_tiles + buffer * kTile;
    const float* lse_tile = lse_tiles + buffer * kBackwardTile;
    const float* delta_tile = delta_tiles + buffer * kBackwardTile;
    if (k0 + 16 * warp <= q0 + kBackwardTile - 1) {  // else every query of the tile precedes this warp's keys
      float st[kBackwardTile / 8][4] = {}, dpt[kBackwardTile / 8][4] = {};  // S^T and dP^T [16 keys x 32 queries]
      paired_products<Dh, kBackwardTile>(st, dpt, k_tile, q_tile, v_tile, do_tile, 16 * warp);
#pragma unroll
      for (int nt = 0; nt < kBackwardTile / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = 8 * nt + 2 * t + (e & 1), q = q0 + qi;
          const bool counted = key[e / 2] <= q && q < T;
          const float p = counted ? fast_exp2(st[nt][e] * log2_scale - lse_tile[qi] * log2e) : 0.f;
          st[nt][e] = p;
          dpt[nt][e] = counted ? p * (dpt[nt][e] - delta_tile[qi]) : 0.f;
        }
#pragma unroll
      for (int j = 0; j < kBackwardTile / 16; ++j) {  // sums over queries 16j..16j+15 of the tile
        uint32_t p_frag[4], ds_frag[4];
        accumulators_as_a(p_frag, st[2 * j], st[2 * j + 1]);
        accumulators_as_a(ds_frag, dpt[2 * j], dpt[2 * j + 1]);
        accumulate_times_rows<Dh>(dv, p_frag, do_tile, 16 * j);
        accumulate_times_rows<Dh>(dk, ds_frag, q_tile, 16 * j);
      }
    }
    __syncthreads();  // this buffer is refilled two tiles from now
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (key[r] >= T) continue;
    if (rope) unrotate<Dh>(dk, r, rope, key[r]);
    OutT* dk_row = dqkv + view.qkv_offset + static_cast<size_t>(key[r]) * stride + D;
    OutT* dv_row = dk_row + D;
#pragma unroll
    for (int nt = 0; nt < Dh / 8; ++nt) {
      store_pair(dk_row + 8 * nt + 2 * t, dk[nt][2 * r] * scale, dk[nt][2 * r + 1] * scale);
      store_pair(dv_row + 8 * nt + 2 * t, dv[nt][2 * r], dv[nt][2 * r + 1]);
    }
  }
}

// delta = rowsum(dO * O) of the warp's 16 query rows from the dO tile in shared memory and O (bf16,
// row stride D) in global memory: lanes 2r and 2r+1 take row r, half of the head each; returns, for
// this lane, the deltas of its accumulator rows g and g + 8, and writes the 16 rows' deltas to `delta`.
template <int Dh>
__device__ __forceinline__ void warp_rows_delta(float (&row_delta)[2], float* delta, const bf16* do_tile, const bf16* out16, const HeadView& view,
                                                int first_row, int T, int D) {
  const int lane = threadIdx.x % 32, r = lane / 2, half = lane % 2, row = first_row + r;
  float sum = 0.f;
  if (row < T) {
    const bf16* o = out16 + view.row_offset + static_cast<size_t>(row) * D + half * (Dh / 2);
    const bf16* g = do_tile + (row - first_row + 16 * (threadIdx.x / 32)) * (Dh + kPad) + half * (Dh / 2);
#pragma unroll
    for (int c = 0; c < Dh / 2; c += 8) {
      const uint4 o_raw = *reinterpret_cast<const uint4*>(o + c), g_raw = *reinterpret_cast<const uint4*>(g + c);
      const auto* op = reinterpret_cast<const __nv_bfloat162*>(&o_raw);
      const auto* gp = reinterpret_cast<const __nv_bfloat162*>(&g_raw);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 a = __bfloat1622float2(op[i]), b = __bfloat1622float2(gp[i]);
        sum += a.x * b.x + a.y * b.y;
      }
    }
  }
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);
  if (half == 0 && row < T) delta[view.lse_offset + row] = sum;
  const int g = lane / 4;
  row_delta[0] = __shfl_sync(0xffffffffu, sum, 2 * g);
  row_delta[1] = __shfl_sync(0xffffffffu, sum, 2 * (g + 8));
}

// dQ: grid (ceil(T/64), B*H); each warp owns 16 queries and sums over the keys at or before them, 64
// keys per shared tile (double-buffered). dQ = scale dS k. With out16 (bf16 O), the kernel computes its
// rows' delta itself and writes it for the dK/dV kernel (which then runs after it); otherwise it reads delta.
template <int Dh, class OutT>
__global__ void __launch_bounds__(kThreads) flash_backward_dq_kernel(OutT* dqkv, const bf16* dout16, const bf16* qkv16, const float* lse, float* delta,
                                                                      const bf16* out16, const float2* rope, int T, int D, int H, float scale) {
  constexpr int ld = Dh + kPad, kTile = kDqKeys * ld;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* q_tile = reinterpret_cast<bf16*>(shared);  // [64][ld]
  bf16* do_tile = q_tile + kBlockRows * ld;        // [64][ld]
  bf16* k_tiles = do_tile + kBlockRows * ld;       // [2][64][ld]
  bf16* v_tiles = k_tiles + 2 * kTile;             // [2][64][ld]
  const int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kBlockRows;
  const HeadView view(blockIdx.y, T, D, H, Dh);
  const bf16* q_src = qkv16 + view.qkv_offset;
  const size_t stride = 3 * static_cast<size_t>(D);
  load_tile_async<Dh, kBlockRows>(q_tile, q_src, stride, q0, T);
  load_tile_async<Dh, kBlockRows>(do_tile, dout16 + view.row_offset, D, q0, T);
  load_kv_async<Dh, kDqKeys>(k_tiles, v_tiles, 0, q_src, D, stride, 0, T);
  commit_async();

  const int row[2] = {q0 + 16 * warp + g, q0 + 16 * warp + g + 8};
  const float log2_scale = scale * 1.4426950408889634f;
  float row_lse[2], row_delta[2];  // lse in base-2 units
#pragma unroll
  for (int r = 0; r < 2; ++r) row_lse[r] = row[r] < T ? lse[view.lse_offset + row[r]] * 1.4426950408889634f : INFINITY;
  if (out16) {  // the dO tile first (and the first K/V tile with it)
    wait_async<0>();
    __syncthreads();
    warp_rows_delta<Dh>(row_delta, delta, do_tile, out16, view, q0 + 16 * warp, T, D);
  } else {
#pragma unroll
    for (int r = 0; r < 2; ++r) row_delta[r] = row[r] < T ? delta[view.lse_offset + row[r]] : 0.f;
  }
  float dq[Dh / 8][4] = {};
  const int last_key = min(q0 + kBlockRows, T) - 1;
  for (int k0 = 0, buffer = 0; k0 <= last_key; k0 += kDqKeys, buffer ^= 1) {
    next_kv_tile<Dh, kDqKeys>(k_tiles, v_tiles, buffer, q_src, D, stride, k0, last_key, T);
    const bf16* k_tile = k_tiles + buffer * kTile;
    const bf16* v_tile = v_tiles + buffer * kTile;
    if (k0 <= q0 + 16 * warp + 15) {  // else every key of the tile follows this warp's queries
      float s[kDqKeys / 8][4] = {}, dp[kDqKeys / 8][4] = {};  // S and dP [16 queries x kDqKeys keys]
      paired_products<Dh, kDqKeys>(s, dp, q_tile, k_tile, do_tile, v_tile, 16 * warp);
#pragma unroll
      for (int nt = 0; nt < kDqKeys / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e / 2, key_index = k0 + 8 * nt + 2 * t + (e & 1);
          const float p = key_index <= row[r] ? fast_exp2(s[nt][e] * log2_scale - row_lse[r]) : 0.f;
          dp[nt][e] = p * (dp[nt][e] - row_delta[r]);
        }
#pragma unroll
      for (int j = 0; j < kDqKeys / 16; ++j) {
        uint32_t ds_frag[4];
        accumulators_as_a(ds_frag, dp[2 * j], dp[2 * j + 1]);
        accumulate_times_rows<Dh>(dq, ds_frag, k_tile, 16 * j);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= T) continue;
    if (rope) unrotate<Dh>(dq, r, rope, row[r]);
    OutT* dq_row = dqkv + view.qkv_offset + static_cast<size_t>(row[r]) * stride;
#pragma unroll
    for (int nt = 0; nt < Dh / 8; ++nt) store_pair(dq_row + 8 * nt + 2 * t, dq[nt][2 * r] * scale, dq[nt][2 * r + 1] * scale);
  }
}

constexpr size_t forward_smem(int Dh) { return sizeof(bf16) * 4 * kForwardKeys * (Dh + kPad); }
constexpr size_t dkdv_smem(int Dh) { return sizeof(bf16) * (2 * kBlockRows + 4 * kBackwardTile) * (Dh + kPad) + sizeof(float) * 4 * kBackwardTile; }
constexpr size_t dq_smem(int Dh) { return sizeof(bf16) * (2 * kBlockRows + 4 * kDqKeys) * (Dh + kPad); }

template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  MM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// Launches the three kernels' templates for head size Dh; OutT: fp32 or bf16 results.
template <int Dh, class OutT>
void forward(Context& ctx, OutT* out, float* lse, const bf16* qkv16, int B, int T, int D, int H) {
  const dim3 grid((T + kBlockRows - 1) / kBlockRows, B * H);
  allow_smem(flash_forward_kernel<Dh, OutT>, forward_smem(Dh));
  flash_forward_kernel<Dh, OutT><<<grid, kThreads, forward_smem(Dh), ctx.stream()>>>(out, lse, qkv16, T, D, H, 1.f / sqrtf(static_cast<float>(Dh)));
  MM_LAUNCH_CHECK();
}

// dQ, then dK/dV. With out16 (bf16 O) the dQ kernel computes delta (and writes it for dK/dV); without,
// delta must hold it already.
template <int Dh, class OutT>
void backward(Context& ctx, OutT* dqkv, const bf16* dout16, const bf16* qkv16, const float* lse, float* delta, const bf16* out16, int B, int T, int D,
              int H, bool rope) {
  const float2* table = rope ? rope_table(ctx, T, Dh) : nullptr;
  const dim3 grid((T + kBlockRows - 1) / kBlockRows, B * H);
  const float scale = 1.f / sqrtf(static_cast<float>(Dh));
  allow_smem(flash_backward_dq_kernel<Dh, OutT>, dq_smem(Dh));
  flash_backward_dq_kernel<Dh, OutT><<<grid, kThreads, dq_smem(Dh), ctx.stream()>>>(dqkv, dout16, qkv16, lse, delta, out16, table, T, D, H, scale);
  MM_LAUNCH_CHECK();
  allow_smem(flash_backward_dkdv_kernel<Dh, OutT>, dkdv_smem(Dh));
  flash_backward_dkdv_kernel<Dh, OutT><<<grid, kThreads, dkdv_smem(Dh), ctx.stream()>>>(dqkv, dout16, qkv16, lse, delta, table, T, D, H, scale);
  MM_LAUNCH_CHECK();
}

// Calls launch(std::integral_constant<int, Dh>{}) for head size Dh.
template <class Launch>
void for_head_size(int Dh, Launch&& launch) {
  switch (Dh) {
    case 16: return launch(std::integral_constant<int, 16>{});
    case 32: return launch(std::integral_constant<int, 32>{});
    case 64: return launch(std::integral_constant<int, 64>{});
    case 128: return launch(std::integral_constant<int, 128>{});
    default: throw_error("CUDA", 0, "flash attention: unsupported head size", __FILE__, __LINE__);
  }
}

template <class OutT>
void forward_any(Context& ctx, OutT* out, float* lse, const bf16* qkv16, int B, int T, int D, int H) {
  for_head_size(D / H, [&](auto dh) { forward<decltype(dh)::value>(ctx, out, lse, qkv16, B, T, D, H); });
}

// delta = rowsum(dout * out) per head (inside the dQ kernel where out and dout are bf16), then the
// dQ and dK/dV kernels.
template <class InT, class OutT>
void backward_any(Context& ctx, OutT* dqkv, const bf16* dout16, const InT* dout, const InT* out, const bf16* qkv16, const float* lse, int B, int T,
                  int D, int H, bool rope) {
  float* delta = ctx.scratch(kSlotAttentionDelta, static_cast<size_t>(B) * H * T);
  const bf16* out16 = nullptr;
  if constexpr (std::is_same_v<InT, bf16>) {
    out16 = out;
  } else {
    const size_t rows = static_cast<size_t>(B) * T * H;
    attention_delta_kernel<<<blocks_for(rows * 32, 256), 256, 0, ctx.stream()>>>(delta, dout, out, B, T, D, H);
    MM_LAUNCH_CHECK();
  }
  for_head_size(D / H, [&](auto dh) { backward<decltype(dh)::value>(ctx, dqkv, dout16, qkv16, lse, delta, out16, B, T, D, H, rope); });
}

}  // namespace

bool flash_attention_supports(int head_dim) { return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128; }

void round_qkv(Context& ctx, bf16* dst, const float* qkv, int B, int T, int D, int H, bool rope) {
  const int rows = B * T;
  const float2* table = rope ? rope_table(ctx, T, D / H) : nullptr;
  round_qkv_kernel<<<std::min(rows, ctx.sm_count() * 16), 256, 0, ctx.stream()>>>(dst, qkv, table, rows, T, D, H);
  MM_LAUNCH_CHECK();
}

void rotate_qk(Context& ctx, bf16* qkv16, int B, int T, int D, int H) {
  const int rows = B * T;
  rotate_qk_kernel<<<std::min(rows, ctx.sm_count() * 16), 256, 0, ctx.stream()>>>(qkv16, rope_table(ctx, T, D / H), rows, T, D, H);
  MM_LAUNCH_CHECK();
}

void flash_attention_forward(Context& ctx, float* out, float* lse, const float* qkv, int B, int T, int D, int H, bool rope) {
  auto* qkv16 = reinterpret_cast<bf16*>(ctx.scratch(kSlotCastA, static_cast<size_t>(B) * T * 3 * D / 2));
  round_qkv(ctx, qkv16, qkv, B, T, D, H, rope);
  forward_any(ctx, out, lse, qkv16, B, T, D, H);
}

void flash_attention_forward(Context& ctx, bf16* out, float* lse, const bf16* qkv16, int B, int T, int D, int H) {
  forward_any(ctx, out, lse, qkv16, B, T, D, H);
}

void flash_attention_backward(Context& ctx, float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse, int B, int T, int D,
                              int H, bool rope) {
  auto* qkv16 = reinterpret_cast<bf16*>(ctx.scratch(kSlotCastA, static_cast<size_t>(B) * T * 3 * D / 2));
  round_qkv(ctx, qkv16, qkv, B, T, D, H, rope);
  const bf16* dout16 = to_bf16(ctx, kSlotCastB, dout, static_cast<size_t>(B) * T * D);
  backward_any(ctx, dqkv, dout16, dout, out, qkv16, lse, B, T, D, H, rope);
}

void flash_attention_backward(Context& ctx, bf16* dqkv, const bf16* dout, const bf16* qkv16, const bf16* out, const float* lse, int B, int T, int D,
                              int H, bool rope) {
  backward_any(ctx, dqkv, dout, dout, out, qkv16, lse, B, T, D, H, rope);
}

}  // namespace mm::cuda
