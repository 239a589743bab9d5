// Low-bit CPU kernels (mmext.quant.kernels): bit-packed binary GEMM and convolution, and the int8 helpers.
//
// Signs are packed 64 to a word: bit j of word w is 1 where element 64 w + j is >= 0 (+1) and
// 0 where it is negative (-1); bits past the end of a row are 0 in both operands, so that their
// XOR is 0 and they add nothing. For two packed rows of K signs,
//     dot = sum_k a_k b_k = K - 2 popcount(a XOR b).
// The AVX-512 paths (VPOPCNTDQ: eight 64-bit popcounts per instruction) are chosen at run time;
// the portable paths give the same integers.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

constexpr int64_t kBlockN = 16;  // output channels per inner block (two 8 x 64-bit vectors)
constexpr int kBlockM = 8;       // rows (or output pixels) sharing one load of the weights

// The mask of the first min(16, n - c) lanes.
inline __mmask16 lanes_mask(int64_t n, int64_t c) {
  const int64_t end = std::min<int64_t>(kBlockN, n - c);
  return end >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << end) - 1);
}

// MMEXT_LOWBIT_PORTABLE=1 takes the portable paths on any CPU (read once per process), so that
// they can be tested on machines with AVX-512.
bool use_avx512() {
  static const char* portable = std::getenv("MMEXT_LOWBIT_PORTABLE");
  static const bool ok = !(portable && std::string(portable) == "1") &&
                         __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") &&
                         __builtin_cpu_supports("avx512vpopcntdq");
  return ok;
}

// ------------------------------------------------------------------------------------ packing
// Bit j is 1 where p[j] - t[j] >= 0 (t null: p[j] >= 0), as torch's (x - threshold) >= 0.
uint64_t pack_word_portable(const float* p, const float* t, int64_t n) {
  uint64_t word = 0;
  for (int64_t j = 0; j < n; ++j)
    word |= static_cast<uint64_t>((t ? p[j] - t[j] : p[j]) >= 0.f) << j;
  return word;
}

__attribute__((target("avx512f"))) uint64_t pack_word_avx512(const float* p, const float* t,
                                                             int64_t n) {
  uint64_t word = 0;
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes_mask(n, j);
    __m512 v = _mm512_maskz_loadu_ps(m, p + j);
    if (t) v = _mm512_sub_ps(v, _mm512_maskz_loadu_ps(m, t + j));
    const __mmask16 ge = _mm512_mask_cmp_ps_mask(m, v, _mm512_setzero_ps(), _CMP_GE_OQ);
    word |= static_cast<uint64_t>(ge) << j;
  }
  return word;
}

// A row of k values as ceil(k / 64) words (bit j of word w from p[64 w + j] - t[64 w + j] >= 0,
// as pack_word_avx512): whole words with unmasked loads, the last one through pack_word_avx512.
template <bool kThreshold>
__attribute__((target("avx512f"))) void pack_row_avx512(const float* p, const float* t,
                                                        int64_t k, uint64_t* dst) {
  const __m512 zero = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 64 <= k; j += 64) {
    uint64_t word = 0;
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      __m512 v = _mm512_loadu_ps(p + j + 16 * q);
      if (kThreshold) v = _mm512_sub_ps(v, _mm512_loadu_ps(t + j + 16 * q));
      word |= static_cast<uint64_t>(_mm512_cmp_ps_mask(v, zero, _CMP_GE_OQ)) << (16 * q);
    }
    *dst++ = word;
  }
  if (j < k) *dst = pack_word_avx512(p + j, kThreshold ? t + j : nullptr, k - j);
}

// A row of k values as sign words (bit = p - t >= 0; t null: p >= 0), on either path.
void pack_row(bool avx, const float* p, const float* t, int64_t k, uint64_t* dst) {
  if (avx) {
    if (t)
      pack_row_avx512<true>(p, t, k, dst);
    else
      pack_row_avx512<false>(p, t, k, dst);
    return;
  }
  for (int64_t w = 0; 64 * w < k; ++w)
    dst[w] = pack_word_portable(p + 64 * w, t ? t + 64 * w : nullptr,
                                std::min<int64_t>(64, k - 64 * w));
}

// Bit j is 1 where p[j] / s + z >= 0 (the levels of a learnable-scale binarizer, rounded as
// torch's (x / s) + z).
uint64_t pack_word_affine_portable(const float* p, int64_t n, float s, float z) {
  uint64_t word = 0;
  for (int64_t j = 0; j < n; ++j) word |= static_cast<uint64_t>(p[j] / s + z >= 0.f) << j;
  return word;
}

__attribute__((target("avx512f"))) uint64_t pack_word_affine_avx512(const float* p, int64_t n,
                                                                    float s, float z) {
  const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(z);
  uint64_t word = 0;
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes_mask(n, j);
    const __m512 t = _mm512_add_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, p + j), vs), vz);
    const __mmask16 ge = _mm512_mask_cmp_ps_mask(m, t, _mm512_setzero_ps(), _CMP_GE_OQ);
    word |= static_cast<uint64_t>(ge) << j;
  }
  return word;
}

// ------------------------------------------------------------------------- the inner products
// Rows r of `a` (pointers, kBlockM of them, repeated when fewer are real) against the weight
// words wt[w * npad + c .. c + 15] summed over the word offsets `offsets` (one per tap and word:
// the row pointer's offset and the weight row). Writes 16 popcounts per row into pop[r][16].
struct Taps {
  const int64_t* a_offset;  // per term: offset added to each row's base pointer
  const int64_t* w_row;     // per term: row of wt
  int64_t count;
};

// The popcounts of kBlockM rows against 16 output channels, in registers.
__attribute__((target("avx512f,avx512vpopcntdq"), always_inline)) inline void accumulate_avx512(
    const uint64_t* const* rows, const uint64_t* wt, int64_t npad, int64_t c, const Taps& taps,
    __m512i acc[kBlockM][2]) {
  for (int r = 0; r < kBlockM; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t t = 0; t < taps.count; ++t) {
    const uint64_t* w = wt + taps.w_row[t] * npad + c;
    const __m512i b0 = _mm512_loadu_si512(w), b1 = _mm512_loadu_si512(w + 8);
    const int64_t off = taps.a_offset[t];
    for (int r = 0; r < kBlockM; ++r) {
      const __m512i a = _mm512_set1_epi64(static_cast<long long>(rows[r][off]));
      acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_popcnt_epi64(_mm512_xor_si512(a, b0)));
      acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_popcnt_epi64(_mm512_xor_si512(a, b1)));
    }
  }
}

__attribute__((target("avx512f,avx512vpopcntdq"))) void popcounts_avx512(
    const uint64_t* const* rows, const uint64_t* wt, int64_t npad, int64_t c, const Taps& taps,
    int64_t pop[kBlockM][kBlockN]) {
  __m512i acc[kBlockM][2];
  accumulate_avx512(rows, wt, npad, c, taps, acc);
  for (int r = 0; r < kBlockM; ++r) {
    _mm512_storeu_si512(pop[r], acc[r][0]);
    _mm512_storeu_si512(pop[r] + 8, acc[r][1]);
  }
}

void popcounts_portable(const uint64_t* const* rows, const uint64_t* wt, int64_t npad, int64_t c,
                        const Taps& taps, int64_t pop[kBlockM][kBlockN]) {
  for (int r = 0; r < kBlockM; ++r)
    for (int64_t j = 0; j < kBlockN; ++j) pop[r][j] = 0;
  for (int64_t t = 0; t < taps.count; ++t) {
    const uint64_t* w = wt + taps.w_row[t] * npad + c;
    const int64_t off = taps.a_offset[t];
    for (int r = 0; r < kBlockM; ++r) {
      const uint64_t a = rows[r][off];
      for (int64_t j = 0; j < kBlockN; ++j) pop[r][j] += __builtin_popcountll(a ^ w[j]);
    }
  }
}

// One block's popcounts on the AVX-512 path where the CPU has it, else the portable loop.
inline void popcounts(bool avx, const uint64_t* const* rows, const uint64_t* wt, int64_t npad,
                      int64_t c, const Taps& taps, int64_t pop[kBlockM][kBlockN]) {
  if (avx)
    popcounts_avx512(rows, wt, npad, c, taps, pop);
  else
    popcounts_portable(rows, wt, npad, c, taps, pop);
}

// The same sums with the float output computed in registers, rounded as `store` rounds:
// dot = full - 2 pop exactly in integers, then y = fma(dot, scale, bias); rows < `real` stored.
__attribute__((target("avx512f,avx512dq,avx512vl,avx512vpopcntdq,fma"))) void fused_avx512(
    const uint64_t* const* rows, const uint64_t* wt, int64_t npad, int64_t c, const Taps& taps,
    int64_t full, const float* scale, const float* bias, float* const* out, int64_t real,
    int64_t n) {
  __m512i acc[kBlockM][2];
  accumulate_avx512(rows, wt, npad, c, taps, acc);
  const int64_t end = std::min<int64_t>(kBlockN, n - c);
  const __mmask8 m0 = end >= 8 ? 0xFF : static_cast<__mmask8>((1u << end) - 1);
  const __mmask8 m1 = end >= 16 ? 0xFF : end <= 8 ? 0 : static_cast<__mmask8>((1u << (end - 8)) - 1);
  const __m512i f = _mm512_set1_epi64(full);
  const __m256 s0 = _mm256_loadu_ps(scale + c), s1 = _mm256_loadu_ps(scale + c + 8);
  const __m256 b0 = _mm256_loadu_ps(bias + c), b1 = _mm256_loadu_ps(bias + c + 8);
  for (int64_t r = 0; r < real; ++r) {
    const __m512i d0 = _mm512_sub_epi64(f, _mm512_slli_epi64(acc[r][0], 1));
    const __m512i d1 = _mm512_sub_epi64(f, _mm512_slli_epi64(acc[r][1], 1));
    _mm256_mask_storeu_ps(out[r] + c, m0, _mm256_fmadd_ps(_mm512_cvtepi64_ps(d0), s0, b0));
    _mm256_mask_storeu_ps(out[r] + c + 8, m1, _mm256_fmadd_ps(_mm512_cvtepi64_ps(d1), s1, b1));
  }
}

// The popcounts of kBlockM rows against every block of 16 output channels c < n, from 32-bit
// sign words (the 64-bit words read as two halves, low first), summed in 32-bit lanes: one
// vector holds 16 finished popcounts. wt32 (2W, npad): row 2w + h holds half h of weight word w
// of every channel. For each block, `epilogue(c, acc)` gets acc[r], row r's 16 popcounts.
// The whole row block is one call, with the row loops unrolled, so that the accumulators stay
// in registers: called per block of 16 channels, they went through the stack each time.
template <typename Epilogue>
__attribute__((target("avx512f,avx512vpopcntdq,fma"), always_inline)) inline void
popcount_blocks32_avx512(const uint32_t* const* rows, const uint32_t* wt32, int64_t npad,
                         int64_t n, int64_t half_words, Epilogue& epilogue) {
  for (int64_t c = 0; c < n; c += kBlockN) {
    __m512i acc[kBlockM];
#pragma GCC unroll 8
    for (int r = 0; r < kBlockM; ++r) acc[r] = _mm512_setzero_si512();
    const uint32_t* w = wt32 + c;
    for (int64_t t = 0; t < half_words; ++t, w += npad) {
      const __m512i b = _mm512_loadu_si512(w);
#pragma GCC unroll 8
      for (int r = 0; r < kBlockM; ++r) {
        const __m512i a = _mm512_set1_epi32(static_cast<int>(rows[r][t]));
        acc[r] = _mm512_add_epi32(acc[r], _mm512_popcnt_epi32(_mm512_xor_si512(a, b)));
      }
    }
    epilogue(c, acc);
  }
}

// A linear layer's float outputs: dot = full - 2 pop is exact in float (|dot| <= K < 2^24),
// then y = fma(dot, scale, bias), as `store` rounds; rows < `real` stored.
struct LinearOutputs {
  const float* scale;
  const float* bias;
  float* const* out;
  int64_t real, n;
  float full;
  __attribute__((target("avx512f,fma"), always_inline)) inline void operator()(
      int64_t c, const __m512i* acc) const {
    const __mmask16 mask = lanes_mask(n, c);
    const __m512 f = _mm512_set1_ps(full), minus_two = _mm512_set1_ps(-2.0f);
    const __m512 s = _mm512_loadu_ps(scale + c), b = _mm512_loadu_ps(bias + c);
#pragma GCC unroll 8
    for (int r = 0; r < kBlockM; ++r) {
      if (r >= real) break;
      const __m512 dot = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r]), minus_two, f);  // exact
      _mm512_mask_storeu_ps(out[r] + c, mask, _mm512_fmadd_ps(dot, s, b));
    }
  }
};

// Bits c .. c + 15 of a row of sign words, blocks c = 0, 16, 32, ... in turn: the first block
// of a word sets it, the next ones add theirs, so that the words need no zeroing first.
inline void put_bits(uint64_t* words, int64_t c, uint64_t bits) {
  if (c % 64 == 0)
    words[c / 64] = bits;
  else
    words[c / 64] |= bits << (c % 64);
}

// The next binary layer's input signs: bit j of each row's 16 bits for block c is 1 where
// dot = full - 2 pop is <= below[c + j] or >= above[c + j] (put_bits); channels past n give 0.
struct SignOutputs {
  const int32_t* below;
  const int32_t* above;
  uint64_t* const* out;
  int64_t real, n;
  int32_t full;
  __attribute__((target("avx512f"), always_inline)) inline void operator()(
      int64_t c, const __m512i* acc) const {
    const __mmask16 valid = lanes_mask(n, c);
    const __m512i f = _mm512_set1_epi32(full);
    const __m512i lo = _mm512_loadu_si512(below + c), hi = _mm512_loadu_si512(above + c);
#pragma GCC unroll 8
    for (int r = 0; r < kBlockM; ++r) {
      if (r >= real) break;
      const __m512i dot = _mm512_sub_epi32(f, _mm512_slli_epi32(acc[r], 1));
      const uint64_t bits = static_cast<uint16_t>(
          _mm512_mask_cmple_epi32_mask(valid, dot, lo) |
          _mm512_mask_cmpge_epi32_mask(valid, dot, hi));
      put_bits(out[r], c, bits);
    }
  }
};

// One block of rows of a linear layer, every channel, into `outputs` (LinearOutputs or
// SignOutputs): one call per row block.
template <typename Outputs>
__attribute__((target("avx512f,avx512vpopcntdq,fma"))) void linear_rows32_avx512(
    const uint32_t* const* rows, const uint32_t* wt32, int64_t npad, int64_t half_words,
    Outputs outputs) {
  popcount_blocks32_avx512(rows, wt32, npad, outputs.n, half_words, outputs);
}

// The weight words wt (W, npad) as 32-bit halves (2W, npad): row 2w + h holds half h (low first)
// of word w of every channel, the layout accumulate32_avx512 reads.
std::vector<uint32_t> weight_halves(const uint64_t* wt, int64_t words, int64_t npad) {
  std::vector<uint32_t> halves(2 * words * npad);
  for (int64_t w = 0; w < words; ++w)
    for (int64_t c = 0; c < npad; ++c) {
      halves[(2 * w) * npad + c] = static_cast<uint32_t>(wt[w * npad + c]);
      halves[(2 * w + 1) * npad + c] = static_cast<uint32_t>(wt[w * npad + c] >> 32);
    }
  return halves;
}

// Output of one row block: dot = full - 2 pop - fix (fix: padded taps, or nothing); either the
// integer dot (raw) or dot * scale + bias.
struct Epilogue {
  int64_t n;            // real output channels
  const float* scale;   // (npad)
  const float* bias;    // (npad)
  bool raw;
};

__attribute__((target("avx512f"))) void store_avx512(const Epilogue& e, int64_t c,
                                                     int64_t full, const int64_t* pop,
                                                     const int32_t* fix, float* out,
                                                     int32_t* out_raw) {
  const int64_t end = std::min<int64_t>(kBlockN, e.n - c);
  const __mmask16 mask = end == 16 ? 0xFFFF : static_cast<__mmask16>((1u << end) - 1);
  const __m256i lo = _mm512_cvtepi64_epi32(_mm512_loadu_si512(pop));
  const __m256i hi = _mm512_cvtepi64_epi32(_mm512_loadu_si512(pop + 8));
  const __m512i p = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  __m512i dot = _mm512_sub_epi32(_mm512_set1_epi32(static_cast<int32_t>(full)),
                                 _mm512_slli_epi32(p, 1));
  if (fix) dot = _mm512_sub_epi32(dot, _mm512_loadu_si512(fix + c));
  if (e.raw) {
    _mm512_mask_storeu_epi32(out_raw + c, mask, dot);
    return;
  }
  const __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(e.scale + c),
                                   _mm512_loadu_ps(e.bias + c));
  _mm512_mask_storeu_ps(out + c, mask, y);
}

inline void store(const Epilogue& e, int64_t c, int64_t full, const int64_t* pop,
                  const int32_t* fix, float* out, int32_t* out_raw) {
  if (use_avx512()) return store_avx512(e, c, full, pop, fix, out, out_raw);
  const int64_t end = std::min<int64_t>(kBlockN, e.n - c);
  for (int64_t j = 0; j < end; ++j) {
    int64_t dot = full - 2 * pop[j] - (fix ? fix[c + j] : 0);
    if (e.raw)
      out_raw[c + j] = static_cast<int32_t>(dot);
    else
      out[c + j] = std::fma(static_cast<float>(dot), e.scale[c + j], e.bias[c + j]);
  }
}

// The levels round(clamp(x / s + z, lo, hi)) of 16 inputs, rounding half to even (as
// std::nearbyint, which is a library call per element); the bound comes first in max / min so
// that a NaN passes through as it does in torch.clamp.
__attribute__((target("avx512f"), always_inline)) inline __m512 levels16(
    __m512 x, __m512 vs, __m512 vz, __m512 vlo, __m512 vhi) {
  const __m512 t = _mm512_add_ps(_mm512_div_ps(x, vs), vz);
  return _mm512_roundscale_ps(_mm512_min_ps(vhi, _mm512_max_ps(vlo, t)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

__attribute__((target("avx512f"), always_inline)) inline __m512 input_levels16(
    const float* src, __m512 vs, __m512 vz, __m512 vlo, __m512 vhi) {
  return levels16(_mm512_loadu_ps(src), vs, vz, vlo, vhi);
}

// An LSQ+ input's levels round(clamp(x / s + z, lo, hi)) and its fake-quantized values
// (levels - z) * s, 16 at a time; returns the first element it did not do.
__attribute__((target("avx512f"))) int64_t levels_avx512(const float* src, float* dst,
                                                         float* fake, int64_t n, float s,
                                                         float z, float lo, float hi) {
  const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(z);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 t = input_levels16(src + i, vs, vz, vlo, vhi);
    _mm512_storeu_ps(dst + i, t);
    _mm512_storeu_ps(fake + i, _mm512_mul_ps(_mm512_sub_ps(t, vz), vs));
  }
  return i;
}

// Levels round(clamp(x / s + z, lo, hi)) - off of 16 elements at a time (the fake quantizer's
// float operations), as int8 or as float; returns the first element it did not do.
template <typename T>
__attribute__((target("avx512f"))) int64_t quantize_levels_avx512(const float* src, T* dst,
                                                                  int64_t n, float s, float z,
                                                                  float lo, float hi, float off) {
  const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(z), voff = _mm512_set1_ps(off);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 t = _mm512_sub_ps(input_levels16(src + i, vs, vz, vlo, vhi), voff);
    if constexpr (std::is_same_v<T, int8_t>)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                       _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(t)));
    else
      _mm512_storeu_ps(dst + i, t);
  }
  return i;
}

// One output row y = (a + c * ws) * sc + bi over n columns, a int32 (the int8 GEMM's sums) or
// float (a product of levels, where y may be a), 16 at a time; returns the first column it did
// not do. Each operation is rounded as the torch expression it replaces.
template <typename T>
__attribute__((target("avx512f"))) int64_t affine_row_avx512(const T* a, float* y, int64_t n,
                                                             float c, const float* ws,
                                                             const float* sc, const float* bi) {
  const __m512 vc = _mm512_set1_ps(c);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 acc;
    if constexpr (std::is_same_v<T, int32_t>)
      acc = _mm512_cvtepi32_ps(_mm512_loadu_si512(a + j));
    else
      acc = _mm512_loadu_ps(a + j);
    const __m512 shifted = _mm512_add_ps(acc, _mm512_mul_ps(vc, _mm512_loadu_ps(ws + j)));
    _mm512_storeu_ps(y + j, _mm512_add_ps(_mm512_mul_ps(shifted, _mm512_loadu_ps(sc + j)),
                                          _mm512_loadu_ps(bi + j)));
  }
  return j;
}

// y may alias a, also an int32 a (the epilogue in place): the 16-lane pass loads each vector
// before it stores it, and the rest goes through memcpy, which may read and write the same
// bytes as another type.
template <typename T>
void affine_row(const T* a, float* y, int64_t n, float c, const float* ws, const float* sc,
                const float* bi) {
  int64_t j = use_avx512() ? affine_row_avx512(a, y, n, c, ws, sc, bi) : 0;
  for (; j < n; ++j) {
    T v;
    std::memcpy(&v, a + j, sizeof(T));
    const float r = (static_cast<float>(v) + c * ws[j]) * sc[j] + bi[j];
    std::memcpy(y + j, &r, sizeof(float));
  }
}

// The LSQ / LSQ+ backward of 16 lanes with t = x / s + z: stores gx (g inside, 0 outside) and
// returns d = round(t) - t inside, bound - z outside; `inside` gets the lanes inside.
__attribute__((target("avx512f"), always_inline)) inline __m512 lsq_backward_lanes(
    __m512 gv, __m512 t, __m512 vz, __m512 vlo, __m512 vhi, float* gx, __mmask16& inside) {
  inside = _mm512_cmp_ps_mask(t, vlo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(t, vhi, _CMP_LE_OQ);
  const __mmask16 below = _mm512_cmp_ps_mask(t, vlo, _CMP_LT_OQ);
  _mm512_storeu_ps(gx, _mm512_maskz_mov_ps(inside, gv));
  const __m512 rounded = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 d = _mm512_sub_ps(_mm512_mask_blend_ps(below, vhi, vlo), vz);  // bound - z
  return _mm512_mask_blend_ps(inside, d, _mm512_sub_ps(rounded, t));        // round(t) - t
}

// The LSQ / LSQ+ backward over [0, n) 16 at a time (see lsq_backward_range); returns the first
// element it did not do and adds its two sums to ds / out.
__attribute__((target("avx512f"))) int64_t lsq_backward_avx512(const float* g, const float* src,
                                                               float* gx, int64_t n, float s,
                                                               float z, float lo, float hi,
                                                               double& ds, double& out) {
  const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(z);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  __m512 step = _mm512_setzero_ps(), outside = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gv = _mm512_loadu_ps(g + i);
    const __m512 t = _mm512_add_ps(_mm512_div_ps(_mm512_loadu_ps(src + i), vs), vz);
    __mmask16 inside;
    const __m512 d = lsq_backward_lanes(gv, t, vz, vlo, vhi, gx + i, inside);
    step = _mm512_fmadd_ps(gv, d, step);
    outside = _mm512_add_ps(outside, _mm512_maskz_mov_ps(static_cast<__mmask16>(~inside), gv));
  }
  ds += _mm512_reduce_add_ps(step);
  out += _mm512_reduce_add_ps(outside);
  return i;
}

// One row of an LSQ weight (step s): levels round(clamp(w / s, lo, hi)) and the fake-quantized
// weight levels * s, 16 at a time; returns the first element it did not do and adds the
// levels to level_sum.
__attribute__((target("avx512f"))) int64_t weight_row_avx512(const float* w, float* levels,
                                                             float* fake, int64_t n, float s,
                                                             float lo, float hi,
                                                             float& level_sum) {
  const __m512 vs = _mm512_set1_ps(s), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  __m512 sum = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 t = _mm512_div_ps(_mm512_loadu_ps(w + i), vs);
    t = _mm512_roundscale_ps(_mm512_min_ps(vhi, _mm512_max_ps(vlo, t)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_storeu_ps(levels + i, t);
    _mm512_storeu_ps(fake + i, _mm512_mul_ps(t, vs));
    sum = _mm512_add_ps(sum, t);
  }
  level_sum += _mm512_reduce_add_ps(sum);
  return i;
}

// Fake quantization s * (round(clamp(x / s + z, lo, hi)) - z) over [0, n) 16 at a time, with the
// eager quantizer's float operations in its order (IEEE division, addition, clamp, round half to
// even, subtraction, multiplication); without a zero point (LSQ) the z steps are left out, as
// there. Returns the first element it did not do.
template <bool kZero>
__attribute__((target("avx512f"))) int64_t fake_quantize_avx512(const float* src, float* dst,
                                                                int64_t n, float s, float z,
                                                                float lo, float hi) {
  const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(z);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 t = _mm512_div_ps(_mm512_loadu_ps(src + i), vs);
    if (kZero) t = _mm512_add_ps(t, vz);
    t = _mm512_roundscale_ps(_mm512_min_ps(vhi, _mm512_max_ps(vlo, t)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (kZero) t = _mm512_sub_ps(t, vz);
    _mm512_storeu_ps(dst + i, _mm512_mul_ps(t, vs));
  }
  return i;
}

template <bool kZero>
void fake_quantize_range(const float* src, float* dst, int64_t n, float s, float z, float lo,
                         float hi) {
  int64_t i = use_avx512() ? fake_quantize_avx512<kZero>(src, dst, n, s, z, lo, hi) : 0;
  for (; i < n; ++i) {
    float t = src[i] / s;
    if (kZero) t = t + z;
    t = std::nearbyint(std::min(std::max(t, lo), hi));
    if (kZero) t = t - z;
    dst[i] = t * s;
  }
}

// One row of C elements with a step (and zero point) per element, the steps' rows (inner = 1:
// a per-channel input with the channels last in memory), 16 at a time; returns the first
// element it did not do.
template <bool kZero>
__attribute__((target("avx512f"))) int64_t fake_quantize_row_avx512(
    const float* src, float* dst, int64_t n, const float* sc, const float* zp, float lo,
    float hi) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 vs = _mm512_loadu_ps(sc + i);
    __m512 t = _mm512_div_ps(_mm512_loadu_ps(src + i), vs);
    if (kZero) t = _mm512_add_ps(t, _mm512_loadu_ps(zp + i));
    t = _mm512_roundscale_ps(_mm512_min_ps(vhi, _mm512_max_ps(vlo, t)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (kZero) t = _mm512_sub_ps(t, _mm512_loadu_ps(zp + i));
    _mm512_storeu_ps(dst + i, _mm512_mul_ps(t, vs));
  }
  return i;
}

template <bool kZero>
void fake_quantize_row(const float* src, float* dst, int64_t n, const float* sc, const float* zp,
                       float lo, float hi) {
  int64_t i = use_avx512() ? fake_quantize_row_avx512<kZero>(src, dst, n, sc, zp, lo, hi) : 0;
  for (; i < n; ++i) {
    float t = src[i] / sc[i];
    if (kZero) t = t + zp[i];
    t = std::nearbyint(std::min(std::max(t, lo), hi));
    if (kZero) t = t - zp[i];
    dst[i] = t * sc[i];
  }
}

// The backward of one such row: gx, and per element g * (round(t) - t) inside or g * (bound - z)
// outside added to step[i], g outside added to out[i] (zp null: z = 0).
__attribute__((target("avx512f"))) int64_t lsq_backward_row_avx512(
    const float* g, const float* src, float* gx, int64_t n, const float* sc, const float* zp,
    float lo, float hi, float* step, float* out) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gv = _mm512_loadu_ps(g + i);
    const __m512 vz = zp ? _mm512_loadu_ps(zp + i) : _mm512_setzero_ps();
    const __m512 t = _mm512_add_ps(_mm512_div_ps(_mm512_loadu_ps(src + i),
                                                 _mm512_loadu_ps(sc + i)), vz);
    __mmask16 inside;
    const __m512 d = lsq_backward_lanes(gv, t, vz, vlo, vhi, gx + i, inside);
    _mm512_storeu_ps(step + i, _mm512_fmadd_ps(gv, d, _mm512_loadu_ps(step + i)));
    _mm512_storeu_ps(out + i, _mm512_add_ps(_mm512_loadu_ps(out + i),
                                            _mm512_maskz_mov_ps(static_cast<__mmask16>(~inside),
                                                                gv)));
  }
  return i;
}

void lsq_backward_row(const float* g, const float* src, float* gx, int64_t n, const float* sc,
                      const float* zp, float lo, float hi, float* step, float* out) {
  int64_t i = use_avx512() ? lsq_backward_row_avx512(g, src, gx, n, sc, zp, lo, hi, step, out)
                           : 0;
  for (; i < n; ++i) {  // g read before gx is written: gx may be g's memory
    const float z = zp ? zp[i] : 0.0f, gi = g[i];
    const float t = src[i] / sc[i] + z;
    if (t >= lo && t <= hi) {
      gx[i] = gi;
      step[i] += gi * (std::nearbyint(t) - t);
    } else {
      gx[i] = 0.0f;
      step[i] += gi * ((t < lo ? lo : hi) - z);
      out[i] += gi;
    }
  }
}

// A dense tensor read in memory order as (outer, channels, inner), one step (and zero point)
// per channel, cut into tasks of at most kPiece elements of one channel row.
struct Groups {
  int64_t outer, channels, inner, pieces;
  static constexpr int64_t kPiece = 16384;
  Groups(int64_t o, int64_t c, int64_t i)
      : outer(o), channels(c), inner(i), pieces(std::max<int64_t>(1, (i + kPiece - 1) / kPiece)) {}
  int64_t tasks() const { return outer * channels * pieces; }
  // task -> (first element, length, channel)
  void task(int64_t t, int64_t& begin, int64_t& length, int64_t& channel) const {
    const int64_t row = t / pieces, piece = t % pieces;
    channel = row % channels;
    begin = row * inner + piece * kPiece;
    length = std::min(kPiece, inner - piece * kPiece);
  }
  // tasks per parallel_for grain: about kPiece elements
  int64_t grain() const { return std::max<int64_t>(1, kPiece / std::max<int64_t>(1, inner)); }
};

// rows of `channels` elements per parallel_for grain (or backward block): about kPiece elements
int64_t row_grain(int64_t channels) {
  return std::max<int64_t>(1, Groups::kPiece / std::max<int64_t>(1, channels));
}

// The kernels read raw pointers on the CPU: a tensor on another device is refused.
void check_cpu(std::initializer_list<torch::Tensor> tensors, const char* op) {
  for (const auto& t : tensors)
    TORCH_CHECK(t.device().is_cpu(), op, ": the low-bit kernels take CPU tensors, got one on ",
                t.device(), " (move the model with .cpu())");
}

// x dense, scale (and zero) float32 with `channels` entries each (any view shape: the
// quantizer's parameter broadcast against x). Returns the groups; scale and zero made flat.
Groups check_groups(const torch::Tensor& x, torch::Tensor& scale,
                    c10::optional<torch::Tensor>& zero, int64_t outer, int64_t channels,
                    int64_t inner, const char* op) {
  check_cpu({x, scale}, op);
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && scale.scalar_type() == torch::kFloat32 &&
                  (!zero || zero->scalar_type() == torch::kFloat32),
              op, ": x, scale and zero_point must be float32");
  TORCH_CHECK(x.is_non_overlapping_and_dense(), op, ": x must be dense in memory");
  TORCH_CHECK(outer * channels * inner == x.numel() && outer >= 0 && channels >= 1 && inner >= 0,
              op, ": (outer, channels, inner) = (", outer, ", ", channels, ", ", inner,
              ") does not cover x of ", x.numel(), " elements");
  TORCH_CHECK(scale.numel() == channels, op, ": scale needs ", channels, " entries");
  scale = scale.reshape(-1).contiguous();
  if (zero) {
    check_cpu({*zero}, op);
    TORCH_CHECK(zero->numel() == channels, op, ": zero_point needs ", channels, " entries");
    zero = zero->reshape(-1).contiguous();
  }
  return Groups(outer, channels, inner);
}

// The LSQ / LSQ+ backward over n elements (t = x / s + z; z = 0 for a weight): gx = g where
// lo <= t <= hi, else 0; adds sum g * (round(t) - t) inside plus g * (bound - z) outside to ds
// and sum g outside to out.
void lsq_backward_range(const float* g, const float* src, float* gx, int64_t n, float s,
                        float z, float lo, float hi, double& ds, double& out) {
  int64_t i = use_avx512() ? lsq_backward_avx512(g, src, gx, n, s, z, lo, hi, ds, out) : 0;
  for (; i < n; ++i) {  // g read before gx is written: gx may be g's memory
    const float t = src[i] / s + z, gi = g[i];
    if (t >= lo && t <= hi) {
      gx[i] = gi;
      ds += static_cast<double>(gi) * (std::nearbyint(t) - t);
    } else {
      gx[i] = 0.0f;
      ds += static_cast<double>(gi) * ((t < lo ? lo : hi) - z);
      out += gi;
    }
  }
}

// An LSQ weight is (N, K) float32 with a float32 step per row (N) or one for all (1).
void check_weight_rows(const torch::Tensor& w, const torch::Tensor& scale, const char* op) {
  TORCH_CHECK(w.scalar_type() == torch::kFloat32 && scale.scalar_type() == torch::kFloat32 &&
                  w.dim() == 2, op, ": w must be a (N, K) float32 tensor, scale float32");
  TORCH_CHECK(scale.numel() == w.size(0) || scale.numel() == 1, op,
              ": scale needs N entries or one");
}

}  // namespace

// x (M, K) float -> (M, ceil(K / 64)) int64 sign words.
// With a threshold (K) float, the signs of x - threshold (a learnable-threshold binarizer's).
torch::Tensor pack_signs(torch::Tensor x, c10::optional<torch::Tensor> threshold) {
  check_cpu({x}, "pack_signs");
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32,
              "pack_signs: x must be a 2-d float32 tensor, got ", x.sizes(), " ", x.dtype());
  x = x.contiguous();
  if (threshold) {
    check_cpu({*threshold}, "pack_signs");
    TORCH_CHECK(threshold->scalar_type() == torch::kFloat32 && threshold->numel() == x.size(1),
                "pack_signs: threshold needs one float32 per column (", x.size(1), ")");
    threshold = threshold->reshape(-1).contiguous();
  }
  const float* th = threshold ? threshold->data_ptr<float>() : nullptr;
  const int64_t m = x.size(0), k = x.size(1), words = (k + 63) / 64;
  auto out = torch::empty({m, words}, x.options().dtype(torch::kInt64));
  const float* src = x.data_ptr<float>();
  auto* dst = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  const bool avx = use_avx512();
  at::parallel_for(0, m, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) pack_row(avx, src + i * k, th, k, dst + i * words);
  });
  return out;
}

// Checks a per-head packing's operands: x (B, H, R, K) float32 with K contiguous, one float32
// step and zero point per head; returns the steps and zero points flattened.
std::pair<torch::Tensor, torch::Tensor> head_steps(const torch::Tensor& x, torch::Tensor scale,
                                                   torch::Tensor zero, const char* op) {
  check_cpu({x, scale, zero}, op);
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat32 && x.stride(3) == 1, op,
              ": x must be (B, H, R, K) float32 with K contiguous, got ", x.sizes(), " strides ",
              x.strides());
  const int64_t h = x.size(1);
  TORCH_CHECK(scale.scalar_type() == torch::kFloat32 && zero.scalar_type() == torch::kFloat32 &&
                  scale.numel() == h && zero.numel() == h,
              op, ": scale and zero need one float32 per head (", h, ")");
  return {scale.reshape(-1).contiguous(), zero.reshape(-1).contiguous()};
}

// x (B, H, R, K) float with its last dimension contiguous (any other strides: a head view),
// one step and zero point per head -> (B * H, R, ceil(K / 64)) int64 words of the signs of
// x / s + z, without the levels written out.
torch::Tensor pack_head_signs(torch::Tensor x, torch::Tensor scale, torch::Tensor zero) {
  std::tie(scale, zero) = head_steps(x, scale, zero, "pack_head_signs");
  const int64_t b = x.size(0), h = x.size(1), r = x.size(2), k = x.size(3);
  const float *sc = scale.data_ptr<float>(), *zp = zero.data_ptr<float>();
  const int64_t words = (k + 63) / 64;
  auto out = torch::empty({b * h, r, words}, x.options().dtype(torch::kInt64));
  const float* src = x.data_ptr<float>();
  auto* dst = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  const int64_t sb = x.stride(0), sh = x.stride(1), sr = x.stride(2);
  const bool avx = use_avx512();
  at::parallel_for(0, b * h * r, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t bi = row / (h * r), hi = (row / r) % h, ri = row % r;
      const float* base = src + bi * sb + hi * sh + ri * sr;
      for (int64_t w = 0; w < words; ++w) {
        const int64_t n = std::min<int64_t>(64, k - 64 * w);
        dst[row * words + w] = avx ? pack_word_affine_avx512(base + 64 * w, n, sc[hi], zp[hi])
                                   : pack_word_affine_portable(base + 64 * w, n, sc[hi], zp[hi]);
      }
    }
  });
  return out;
}

// The signs of 16 columns x[.., c .. c + 15] / s + z of `count` rows (row stride `stride`)
// gathered per column: bit r of words[j] is the sign of row r of column c + j (r < count <= 64);
// columns past `valid` give 0.
__attribute__((target("avx512f,avx512bw"))) void column_signs_avx512(
    const float* x, int64_t stride, int64_t count, int64_t valid, float s, float z,
    uint64_t words[16]) {
  const __mmask16 m = valid >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << valid) - 1);
  const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(z);
  alignas(64) uint16_t rows[64] = {};     // row r's 16 signs as the bits of one 16-bit lane
  for (int64_t r = 0; r < count; ++r) {
    const __m512 t = _mm512_add_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + r * stride), vs), vz);
    rows[r] = _mm512_mask_cmp_ps_mask(m, t, _mm512_setzero_ps(), _CMP_GE_OQ);
  }
  // the bit-matrix transpose: bit j of the 64 lanes, tested 32 lanes at a time, is column j
  const __m512i lo = _mm512_load_si512(rows), hi = _mm512_load_si512(rows + 32);
  for (int j = 0; j < 16; ++j) {
    const __m512i bit = _mm512_set1_epi16(static_cast<int16_t>(1u << j));
    words[j] = static_cast<uint64_t>(_mm512_test_epi16_mask(lo, bit)) |
               static_cast<uint64_t>(_mm512_test_epi16_mask(hi, bit)) << 32;
  }
}

// The sign bits of `count` (<= 16) floats p[j] - t (t one threshold; p[j] - 0 >= 0 exactly where
// p[j] >= 0) as the low bits of a mask.
__attribute__((target("avx512f"))) uint32_t sign_mask_avx512(const float* p, int64_t count,
                                                             float t) {
  const __mmask16 m = count >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << count) - 1);
  const __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, p), _mm512_set1_ps(t));
  return _mm512_mask_cmp_ps_mask(m, v, _mm512_setzero_ps(), _CMP_GE_OQ);
}

uint32_t sign_mask(bool avx, const float* p, int64_t count, float t) {
  if (avx) return sign_mask_avx512(p, count, t);
  uint32_t mask = 0;
  for (int64_t j = 0; j < count; ++j) mask |= static_cast<uint32_t>(p[j] - t >= 0.f) << j;
  return mask;
}

// The patches of a convolution whose stride is its kernel (no padding, no dilation; a ViT's
// patch embedding) as the rows of a binary linear layer: x (B, C, H, W) float, threshold (C)
// or none -> (B * OH * OW, ceil(C * kh * kw / 64)) int64 sign words of x - threshold[c], bit
// (c * kh + i) * kw + j of a row being patch element (c, i, j) (the order of a flattened
// (N, C, kh, kw) weight); OH = H / kh and OW = W / kw rounded down, as the convolution's.
torch::Tensor pack_patches(torch::Tensor x, int64_t kh, int64_t kw,
                           c10::optional<torch::Tensor> threshold) {
  check_cpu({x}, "pack_patches");
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat32,
              "pack_patches: x must be (B, C, H, W) float32, got ", x.sizes(), " ", x.dtype());
  TORCH_CHECK(kh > 0 && kw > 0 && x.size(2) >= kh && x.size(3) >= kw,
              "pack_patches: a ", kh, "x", kw, " patch does not fit ", x.sizes());
  x = x.contiguous();
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (threshold) {
    check_cpu({*threshold}, "pack_patches");
    TORCH_CHECK(threshold->scalar_type() == torch::kFloat32 && threshold->numel() == c,
                "pack_patches: threshold needs one float32 per channel (", c, ")");
    threshold = threshold->reshape(-1).contiguous();
  }
  const float* th = threshold ? threshold->data_ptr<float>() : nullptr;
  const int64_t oh = h / kh, ow = w / kw, words = (c * kh * kw + 63) / 64;
  auto out = torch::zeros({b * oh * ow, words}, x.options().dtype(torch::kInt64));
  const float* src = x.data_ptr<float>();
  auto* dst = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  const bool avx = use_avx512();
  at::parallel_for(0, b * oh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t bi = row / oh, y = row % oh;
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t i = 0; i < kh; ++i) {
          const float* line = src + ((bi * c + ch) * h + y * kh + i) * w;
          const float t = th ? th[ch] : 0.f;       // x - 0 has the sign bits of x
          for (int64_t px = 0; px < ow; ++px) {
            uint64_t* patch = dst + (row * ow + px) * words;
            for (int64_t j = 0; j < kw; j += 16) {
              const int64_t count = std::min<int64_t>(16, kw - j);
              const uint64_t mask = sign_mask(avx, line + px * kw + j, count, t);
              const int64_t bit = (ch * kh + i) * kw + j, at = bit % 64;
              patch[bit / 64] |= mask << at;
              if (at + count > 64) patch[bit / 64 + 1] |= mask >> (64 - at);
            }
          }
        }
    }
  });
  return out;
}

// x (B, H, R, K) float with its last dimension contiguous, one step and zero point per head ->
// (B * H, K, ceil(R / 64)) int64 words of the signs of x / s + z packed along R (the operand
// layout of x transposed, without the transposed copy).
torch::Tensor pack_head_signs_transposed(torch::Tensor x, torch::Tensor scale, torch::Tensor zero) {
  std::tie(scale, zero) = head_steps(x, scale, zero, "pack_head_signs_transposed");
  const int64_t b = x.size(0), h = x.size(1), r = x.size(2), k = x.size(3);
  const float *sc = scale.data_ptr<float>(), *zp = zero.data_ptr<float>();
  const int64_t words = (r + 63) / 64;
  auto out = torch::empty({b * h, k, words}, x.options().dtype(torch::kInt64));
  const float* src = x.data_ptr<float>();
  auto* dst = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  const int64_t sb = x.stride(0), sh = x.stride(1), sr = x.stride(2);
  const bool avx = use_avx512();
  at::parallel_for(0, b * h, 1, [&](int64_t begin, int64_t end) {
    uint64_t col[16];
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t hi = bh % h;
      const float* base = src + (bh / h) * sb + hi * sh;
      for (int64_t c = 0; c < k; c += 16)
        for (int64_t w = 0; w < words; ++w) {
          const int64_t count = std::min<int64_t>(64, r - 64 * w);
          const int64_t valid = std::min<int64_t>(16, k - c);
          const float* p = base + 64 * w * sr + c;
          if (avx) {
            column_signs_avx512(p, sr, count, valid, sc[hi], zp[hi], col);
          } else {
            for (int64_t j = 0; j < 16; ++j) col[j] = 0;
            for (int64_t i = 0; i < count; ++i)
              for (int64_t j = 0; j < valid; ++j)
                col[j] |= static_cast<uint64_t>(p[i * sr + j] / sc[hi] + zp[hi] >= 0.f) << i;
          }
          for (int64_t j = 0; j < valid; ++j) dst[(bh * k + c + j) * words + w] = col[j];
        }
    }
  });
  return out;
}

// ------------------------------------------------------------- LayerNorm, then binarizer signs
// A learnable-scale binarizer's sign words after a LayerNorm over the last dimension (K <= 64),
// sign(LayerNorm(x) / s + z), as torch's float32 LayerNorm and the binarizer round them, without
// the normalised values written out. torch normalises a row with a mean m' and a variance v' of
// its own (Welford's updates in vector lanes, the lanes then combined), r' = 1 / sqrt(v' + eps)
// and y' = (x r' - m' r') gamma + beta, each operation rounded to float32. This kernel takes the
// row's mean m_f and mean square q_f in float32 (one pass, side by side), bounds both its own and
// torch's distance from the exact value of LayerNorm(x) / s + z, and decides a bit only where
// its own value lies farther from 0 than the two bounds together (ln_row_factors8). Rows it
// cannot decide go to torch's own LayerNorm (at::layer_norm on those rows alone: each row is
// normalised by itself) and are packed as pack_head_signs packs: the same words, bit for bit,
// as the two steps unfused.
//
// The bounds (u = 2^-24, X = max |x|, m and v the exact mean and variance), first order in u,
// for roundings relative to their results (normal floats: see the ranges below):
// - torch: |m' - m| <= e_m = (K + 16) u X and |v' - v| <= e_v = 6 e_m (2 X + e_m) + (K + 24) u v
//   (a summation of K terms in any order, each product of deviations rounded, the mean's error
//   through them); with t = (e_v + u (v + eps)) / (v + eps) <= 0.01, |r' - r| <= e_r r,
//   e_r = 0.51 t / (1 - t) + 4 u; whatever the order of torch's roundings,
//   |y' - y| <= |gamma| r ((|x| + |m|)(e_r + u) + e_m + 3 u |x - m|) + u |beta|, and the
//   binarizer's division and sum add u |y / s| + u |value|;
// - this kernel: |m_f - m| <= e_f = 10 u X (a sum of depth 8, times 1 / K rounded); its
//   variance q_f - m_f^2 (in double) lies within e_own = 10 u q_f (1 + 11 u) + e_f (2 X + e_f)
//   of v, so that with D = v_f - e_own + eps <= v + eps its step r_f = sqrt(1 / D) lies within
//   e_g = 1.02 e_own / D + 3 u of r (and r <= r_f); its value fma(x - m_f, r_f gamma / s,
//   beta / s + z) adds |gamma / s| r (e_f + (|x| + |m|)(e_g + 3 u)) + u (|beta / s| + |z| +
//   |value|).
// Together, with |gamma / s| <= G (the head's largest), the bound widened by a quarter and the
// 2 u |value| folded into it: |value - torch's| <= G (|x| c1 + c2) + 1.25 u (3 max |beta / s| +
// |z|), c1 = 1.25 r_f (e_r + e_g + 8 u), c2 = c1 (|m_f| + e_f) + 1.25 r_f (e_m + e_f).
// Ranges: the relative bounds fail where torch's intermediates leave the normal floats (its
// squared deviations below 2^-126 or past 2^128, its mean rounded to a multiple of 2^-149), and
// where this kernel's own products do; so a row is decided only where 2^-50 <= X <= 2^50,
// v_f - e_own + eps >= 2^-100 and 2^-90 <= G r_f <= 2^90, and a head only where every
// |gamma / s| and |beta / s| is at most 2^60 and every gamma that is not 0 is at least 2^-60,
// as is its |gamma / s| (else its rows all go to torch).
struct LayerNormSigns {
  const float* scale;  // gamma / s, (H, K)
  const float* shift;  // beta / s + z, (H, K)
  const float* most;   // G: the largest |gamma / s| per head, (H)
  const float* floor;  // 1.25 u (3 max |beta / s| + |z|) + 2^-140 + extra_margin per head, (H);
                       // infinite for a head outside the ranges (every row undecided)
};

// The factors of 8 rows' bounds at once (the scalar math per row is most of a row's
// instructions otherwise), in double from their float32 mean m_f, mean square q_f and largest
// |x|: the row's float32 step r_f and the margin's factors P = G c1 and Q = G c2 + floor
// (rounded up). Returns the rows that can be decided (every value finite and in range,
// t <= 0.01).
__attribute__((target("avx512f,avx512dq,avx512vl"))) __mmask8 ln_row_factors8(
    int64_t k, double eps, const float* mean_f, const float* square_f, const float* big_f,
    const float* most, const float* floor, float* rstd_f, float* p_out, float* q_out) {
  const double u = 0x1p-24;
  const __m512d mean = _mm512_cvtps_pd(_mm256_loadu_ps(mean_f));
  const __m512d square = _mm512_cvtps_pd(_mm256_loadu_ps(square_f));
  const __m512d big = _mm512_cvtps_pd(_mm256_loadu_ps(big_f));
  const __m512d g = _mm512_cvtps_pd(_mm256_loadu_ps(most));
  // NaN fails every comparison; an infinite mean or mean square goes with X past 2^50
  __mmask8 ok = _mm512_cmp_pd_mask(big, _mm512_set1_pd(0x1p-50), _CMP_GE_OQ) &
                _mm512_cmp_pd_mask(big, _mm512_set1_pd(0x1p50), _CMP_LE_OQ) &
                _mm512_cmp_pd_mask(_mm512_abs_pd(mean), _mm512_set1_pd(0x1p50), _CMP_LE_OQ) &
                _mm512_cmp_pd_mask(square, _mm512_set1_pd(0x1p100), _CMP_LE_OQ);
  const __m512d e_f = _mm512_mul_pd(_mm512_set1_pd(10 * u), big);
  const __m512d e_own = _mm512_fmadd_pd(
      square, _mm512_set1_pd(10 * u * (1 + 11 * u) + 0x1p-50),
      _mm512_mul_pd(e_f, _mm512_fmadd_pd(_mm512_set1_pd(2), big, e_f)));
  const __m512d var = _mm512_fnmadd_pd(mean, mean, square);
  const __m512d var_up = _mm512_add_pd(var, e_own);
  const __m512d denom_low =  // <= v + eps
      _mm512_add_pd(_mm512_sub_pd(var, e_own), _mm512_set1_pd(eps));
  ok &= _mm512_cmp_pd_mask(denom_low, _mm512_set1_pd(0x1p-100), _CMP_GE_OQ);
  const __m512d inv = _mm512_div_pd(_mm512_set1_pd(1), denom_low);
  const __m512d e_g =
      _mm512_fmadd_pd(_mm512_mul_pd(_mm512_set1_pd(1.02), e_own), inv, _mm512_set1_pd(3 * u));
  const __m512d e_m = _mm512_mul_pd(_mm512_set1_pd((k + 16) * u), big);
  const __m512d e_v = _mm512_fmadd_pd(_mm512_mul_pd(_mm512_set1_pd(6), e_m),
                                      _mm512_fmadd_pd(_mm512_set1_pd(2), big, e_m),
                                      _mm512_mul_pd(_mm512_set1_pd((k + 24) * u), var_up));
  const __m512d t = _mm512_mul_pd(
      _mm512_fmadd_pd(_mm512_set1_pd(u), _mm512_add_pd(var_up, _mm512_set1_pd(eps)), e_v), inv);
  ok &= _mm512_cmp_pd_mask(t, _mm512_set1_pd(0.01), _CMP_LE_OQ);
  // 0.51 t / (1 - t) + 4 u for t <= 0.01
  const __m512d e_r = _mm512_fmadd_pd(_mm512_set1_pd(0.5152), t, _mm512_set1_pd(4 * u));
  const __m512d root = _mm512_sqrt_pd(inv);  // r_f, >= r
  const __m512d g_root = _mm512_mul_pd(g, root);
  ok &= _mm512_cmp_pd_mask(g_root, _mm512_set1_pd(0x1p-90), _CMP_GE_OQ) &
        _mm512_cmp_pd_mask(g_root, _mm512_set1_pd(0x1p90), _CMP_LE_OQ);
  // the quarter, rounded up
  const __m512d r = _mm512_mul_pd(_mm512_set1_pd(1.25 * (1 + 0x1p-20)), root);
  const __m512d c1 =
      _mm512_mul_pd(r, _mm512_add_pd(_mm512_add_pd(e_r, e_g), _mm512_set1_pd(8 * u)));
  const __m512d c2 = _mm512_fmadd_pd(c1, _mm512_add_pd(_mm512_abs_pd(mean), e_f),
                                     _mm512_mul_pd(r, _mm512_add_pd(e_m, e_f)));
  const __m512d up = _mm512_set1_pd(1 + 0x1p-20);
  _mm256_storeu_ps(rstd_f, _mm512_cvtpd_ps(root));
  _mm256_storeu_ps(p_out, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_mul_pd(g, c1), up)));
  _mm256_storeu_ps(q_out, _mm512_cvtpd_ps(_mm512_mul_pd(
      _mm512_fmadd_pd(g, c2, _mm512_cvtps_pd(_mm256_loadu_ps(floor))), up)));
  return ok;
}

// Up to 8 rows of K <= 16 NV elements: the sign words of the rows decided (decided[i] set).
template <int NV>
__attribute__((target("avx512f,avx512dq,avx512vl,fma"))) void layer_norm_sign_rows8(
    const float* const* x, int64_t count, int64_t k, float inv_k, const LayerNormSigns& p,
    const int64_t* head, double eps, uint64_t* word, bool* decided) {
  __mmask16 masks[NV];
  for (int i = 0; i < NV; ++i) masks[i] = lanes_mask(k, 16 * i);
  alignas(32) float mean_f[8] = {}, square_f[8] = {}, big_f[8] = {}, most[8] = {}, floor[8] = {};
  alignas(32) float rstd_f[8], vp[8], vq[8];
  for (int64_t row = 0; row < count; ++row) {
    // the sum and the sum of squares side by side (depth NV, then the reduction's 4)
    __m512 sum = _mm512_setzero_ps(), squares = _mm512_setzero_ps(), big = _mm512_setzero_ps();
    for (int i = 0; i < NV; ++i) {
      const __m512 v = _mm512_maskz_loadu_ps(masks[i], x[row] + 16 * i);
      sum = _mm512_add_ps(sum, v);
      squares = _mm512_fmadd_ps(v, v, squares);
      big = _mm512_max_ps(big, _mm512_abs_ps(v));  // NaN: caught by the sum
    }
    mean_f[row] = _mm512_reduce_add_ps(sum) * inv_k;
    square_f[row] = _mm512_reduce_add_ps(squares) * inv_k;
    big_f[row] = _mm512_reduce_max_ps(big);
    most[row] = p.most[head[row]];
    floor[row] = p.floor[head[row]];
  }
  const __mmask8 ok = ln_row_factors8(k, eps, mean_f, square_f, big_f, most, floor, rstd_f, vp, vq);
  for (int64_t row = 0; row < count; ++row) {
    decided[row] = (ok >> row) & 1;
    if (!decided[row]) continue;
    // |value| against the margin P |x| + Q (the bound's 2 u |value| folded into the quarter)
    const __m512 mp = _mm512_set1_ps(vp[row]), mq = _mm512_set1_ps(vq[row]);
    const __m512 vr = _mm512_set1_ps(rstd_f[row]), vm = _mm512_set1_ps(mean_f[row]);
    const float *scale = p.scale + head[row] * k, *shift = p.shift + head[row] * k;
    uint64_t bits = 0;
    __mmask16 far = 0xFFFF;
    for (int i = 0; i < NV; ++i) {
      const __m512 v = _mm512_maskz_loadu_ps(masks[i], x[row] + 16 * i);
      const __m512 value = _mm512_fmadd_ps(
          _mm512_sub_ps(v, vm), _mm512_mul_ps(vr, _mm512_maskz_loadu_ps(masks[i], scale + 16 * i)),
          _mm512_maskz_loadu_ps(masks[i], shift + 16 * i));
      const __m512 margin = _mm512_fmadd_ps(_mm512_abs_ps(v), mp, mq);
      far &= _mm512_mask_cmp_ps_mask(masks[i], _mm512_abs_ps(value), margin, _CMP_GT_OQ) |
             static_cast<__mmask16>(~masks[i]);
      bits |= static_cast<uint64_t>(
                  _mm512_mask_cmp_ps_mask(masks[i], value, _mm512_setzero_ps(), _CMP_GT_OQ))
              << (16 * i);
    }
    decided[row] = far == 0xFFFF;
    word[row] = bits;
  }
}

template <int NV>
__attribute__((target("avx512f,avx512dq,avx512vl,fma"))) void layer_norm_sign_block_avx512(
    const float* const* x, int64_t count, int64_t k, const LayerNormSigns& p,
    const int64_t* head, double eps, uint64_t* word, bool* decided) {
  const float inv_k = 1.0f / static_cast<float>(k);
  for (int64_t i = 0; i < count; i += 8)
    layer_norm_sign_rows8<NV>(x + i, std::min<int64_t>(8, count - i), k, inv_k, p, head + i, eps,
                              word + i, decided + i);
}

// Up to kLnBlock rows (pointers x, heads `head`): their words where decided.
constexpr int64_t kLnBlock = 16;
void layer_norm_sign_block(bool avx, const float* const* x, int64_t count, int64_t k,
                           const LayerNormSigns& p, const int64_t* head, double eps,
                           uint64_t* word, bool* decided) {
  if (!avx) {  // the portable path: every row through torch's LayerNorm
    std::fill(decided, decided + count, false);
    return;
  }
  switch ((k + 15) / 16) {
    case 1: return layer_norm_sign_block_avx512<1>(x, count, k, p, head, eps, word, decided);
    case 2: return layer_norm_sign_block_avx512<2>(x, count, k, p, head, eps, word, decided);
    case 3: return layer_norm_sign_block_avx512<3>(x, count, k, p, head, eps, word, decided);
    default: return layer_norm_sign_block_avx512<4>(x, count, k, p, head, eps, word, decided);
  }
}

// x (B, H, R, K) float32 with K <= 64 contiguous (any other strides: a head view of a
// projection's output); weight, bias (K) float32 or None (the LayerNorm's affine); eps the
// LayerNorm's; scale, zero one float32 per head (the binarizer's: finite, the
// step not 0); extra_margin >= 0 widens every element's bound (tests use it to send rows to
// torch's LayerNorm). Returns ((B * H, R, 1) int64 sign words of LayerNorm(x) / s + z, the
// number of rows torch's LayerNorm finished). Without AVX-512 every row goes through torch's
// LayerNorm (the same words, without the speed).
std::tuple<torch::Tensor, int64_t> layer_norm_head_signs(
    torch::Tensor x, c10::optional<torch::Tensor> weight, c10::optional<torch::Tensor> bias,
    double eps, torch::Tensor scale, torch::Tensor zero, double extra_margin) {
  const char* op = "layer_norm_head_signs";
  std::tie(scale, zero) = head_steps(x, scale, zero, op);
  const int64_t b = x.size(0), h = x.size(1), r = x.size(2), k = x.size(3);
  TORCH_CHECK(k > 0 && k <= 64, op, ": rows of 1 to 64 elements (a head), got ", k);
  // the fallback gives torch's LayerNorm the affine as the module has it (none, weight only, or
  // both: torch rounds the cases apart); the bound takes ones and zeros for the missing ones
  for (auto* t : {&weight, &bias})
    if (*t) {
      check_cpu({**t}, op);
      TORCH_CHECK((*t)->scalar_type() == torch::kFloat32 && (*t)->numel() == k, op,
                  ": weight and bias need one float32 per element of a row (", k, ")");
      **t = (*t)->reshape(-1).contiguous();
    }
  TORCH_CHECK(eps >= 0 && std::isfinite(eps) && extra_margin >= 0 && std::isfinite(extra_margin),
              op, ": needs a finite eps >= 0 and a finite extra_margin >= 0");
  const auto gamma = weight ? *weight : torch::ones({k}, x.options());
  const auto beta = bias ? *bias : torch::zeros({k}, x.options());
  const float *sc = scale.data_ptr<float>(), *zp = zero.data_ptr<float>();
  const float *ga = gamma.data_ptr<float>(), *be = beta.data_ptr<float>();
  std::vector<float> scaled(h * k), shift(h * k), most(h), floor(h);
  const double u = 0x1p-24;
  for (int64_t hi = 0; hi < h; ++hi) {
    const double s = sc[hi], z = zp[hi];
    TORCH_CHECK(std::isfinite(s) && s != 0 && std::isfinite(z), op, ": head ", hi, " has step ",
                s, " and zero point ", z, " (the step must be finite and not 0, the zero point "
                "finite)");
    double g = 0, bmax = 0;
    bool in_range = std::fabs(z) <= 0x1p60;
    for (int64_t j = 0; j < k; ++j) {
      TORCH_CHECK(std::isfinite(ga[j]) && std::isfinite(be[j]), op,
                  ": gamma and beta must be finite");
      const double gs = std::fabs(ga[j] / s), bs = std::fabs(be[j] / s);
      scaled[hi * k + j] = static_cast<float>(ga[j] / s);
      shift[hi * k + j] = static_cast<float>(be[j] / s + z);
      g = std::max(g, gs);
      bmax = std::max(bmax, bs);
      in_range &= gs <= 0x1p60 && bs <= 0x1p60 &&
                  (ga[j] == 0 || (std::fabs(ga[j]) >= 0x1p-60 && gs >= 0x1p-60));
    }
    most[hi] = static_cast<float>(g * (1 + 0x1p-20));
    floor[hi] = in_range ? static_cast<float>((1.25 * u * (3 * bmax + std::fabs(z)) + 0x1p-140 +
                                               extra_margin) * (1 + 0x1p-20))
                         : INFINITY;  // every row of the head through torch's LayerNorm
  }
  const double eps_f = static_cast<float>(eps);  // torch adds eps as the input's type
  const LayerNormSigns params{scaled.data(), shift.data(), most.data(), floor.data()};
  const int64_t rows = b * h * r;
  auto out = torch::empty({b * h, r, 1}, x.options().dtype(torch::kInt64));
  std::vector<uint8_t> undecided(rows, 0);
  const float* src = x.data_ptr<float>();
  auto* dst = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  const int64_t sb = x.stride(0), sh = x.stride(1), sr = x.stride(2);
  auto row_start = [&](int64_t row) {
    return src + (row / (h * r)) * sb + ((row / r) % h) * sh + (row % r) * sr;
  };
  const bool avx = use_avx512();
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    // the rows' image, head and index counted along (no divisions per row), a block at a time
    int64_t bi = begin / (h * r), hi = (begin / r) % h, ri = begin % r;
    const float* starts[kLnBlock];
    int64_t heads_of[kLnBlock];
    bool decided[kLnBlock];
    for (int64_t first = begin; first < end; first += kLnBlock) {
      const int64_t count = std::min<int64_t>(kLnBlock, end - first);
      for (int64_t i = 0; i < count; ++i) {
        starts[i] = src + bi * sb + hi * sh + ri * sr;
        heads_of[i] = hi;
        if (++ri == r) {
          ri = 0;
          if (++hi == h) hi = 0, ++bi;
        }
      }
      layer_norm_sign_block(avx, starts, count, k, params, heads_of, eps_f, dst + first, decided);
      for (int64_t i = 0; i < count; ++i) undecided[first + i] = !decided[i];
    }
  });
  std::vector<int64_t> left;
  for (int64_t row = 0; row < rows; ++row)
    if (undecided[row]) left.push_back(row);
  const int64_t count = static_cast<int64_t>(left.size());
  if (count) {  // torch's LayerNorm on these rows alone, then the binarizer as pack_head_signs
    auto gathered = torch::empty({count, k}, x.options());
    float* g = gathered.data_ptr<float>();
    for (int64_t i = 0; i < count; ++i)
      std::memcpy(g + i * k, row_start(left[i]), k * sizeof(float));
    const auto normed = at::layer_norm(gathered, {k}, weight, bias, eps).contiguous();
    const float* y = normed.data_ptr<float>();
    for (int64_t i = 0; i < count; ++i) {
      const int64_t hi = (left[i] / r) % h;
      dst[left[i]] = avx ? pack_word_affine_avx512(y + i * k, k, sc[hi], zp[hi])
                         : pack_word_affine_portable(y + i * k, k, sc[hi], zp[hi]);
    }
  }
  return {out, count};
}

// The sign words a binary linear GEMM reads: int64 words a (M, W) as they are, or float32
// values a (M, k) packed a block of rows at a time inside the GEMM (bit = (x - threshold) >= 0,
// as pack_signs), so that the packing shares the GEMM's pass and its threads.
struct SignRows {
  const uint64_t* words = nullptr;
  const float* values = nullptr;
  const float* threshold = nullptr;
  int64_t k = 0, w = 0;

  // rows[r] = row m0 + min(r, real - 1); float rows are packed into buf (kBlockM x w words).
  void block(int64_t m0, int64_t real, bool avx, uint64_t* buf, const uint64_t** rows) const {
    for (int r = 0; r < kBlockM; ++r) {
      const int64_t i = m0 + std::min<int64_t>(r, real - 1);
      if (words) {
        rows[r] = words + i * w;
      } else if (r >= real) {
        rows[r] = rows[real - 1];
      } else {
        pack_row(avx, values + i * k, threshold, k, buf + r * w);
        rows[r] = buf + r * w;
      }
    }
  }
};

// Checks a binary linear GEMM's input against wt (W, Npad) and rows of k signs: int64 sign words
// (M, W), or float32 values (..., k) with an optional threshold (k entries) subtracted first,
// taken as (M, k). Makes them contiguous and 2-d (kept alive by the caller's tensors); returns
// the leading dimensions of the output in `lead`.
SignRows sign_rows(torch::Tensor& a, c10::optional<torch::Tensor>& threshold,
                   const torch::Tensor& wt, int64_t k, const char* op,
                   std::vector<int64_t>& lead) {
  check_cpu({a, wt}, op);
  TORCH_CHECK(wt.dim() == 2 && a.dim() >= 1, op, ": needs 2-d weight words and an input");
  TORCH_CHECK(k >= 1 && (k + 63) / 64 == wt.size(0), op, ": rows of ", k,
              " signs do not fit weight words ", wt.sizes());
  lead.assign(a.sizes().begin(), a.sizes().end() - 1);
  SignRows rows;
  rows.k = k, rows.w = wt.size(0);
  TORCH_CHECK(!a.is_floating_point() || a.scalar_type() == torch::kFloat32, op,
              ": float input must be float32, got ", a.scalar_type());
  if (a.scalar_type() == torch::kFloat32) {
    TORCH_CHECK(a.size(-1) == k, op, ": float input ", a.sizes(), " does not have ", k,
                " columns");
    a = a.reshape({-1, k}).contiguous();
    rows.values = a.data_ptr<float>();
    if (threshold) {
      check_cpu({*threshold}, op);
      TORCH_CHECK(threshold->scalar_type() == torch::kFloat32 && threshold->numel() == k, op,
                  ": threshold needs one float32 per column (", k, ")");
      threshold = threshold->reshape(-1).contiguous();
      rows.threshold = threshold->data_ptr<float>();
    }
  } else {
    TORCH_CHECK(a.dim() == 2 && a.scalar_type() == torch::kInt64 && a.size(1) == wt.size(0), op,
                ": input words ", a.sizes(), " ", a.scalar_type(), " do not fit weight words ",
                wt.sizes());
    a = a.contiguous();
    TORCH_CHECK(!threshold, op, ": a threshold applies to float input, not to sign words");
    rows.words = reinterpret_cast<const uint64_t*>(a.data_ptr<int64_t>());
  }
  return rows;
}

// a (M, W) sign words, or (..., k) float32 values packed here (after subtracting `threshold`,
// one per column, if given); wt (W, Npad) weight words (transposed, Npad a multiple of 16), k
// the real length of a row; scale, bias (Npad) float. -> (M, n) or (..., n) float, or int32
// dots if raw.
torch::Tensor binary_linear(torch::Tensor a, torch::Tensor wt, int64_t k, torch::Tensor scale,
                            torch::Tensor bias, int64_t n, bool raw,
                            c10::optional<torch::Tensor> threshold) {
  check_cpu({scale, bias}, "binary_linear");
  std::vector<int64_t> lead;
  const SignRows source = sign_rows(a, threshold, wt, k, "binary_linear", lead);
  wt = wt.contiguous();
  scale = scale.reshape(-1).contiguous(), bias = bias.reshape(-1).contiguous();
  TORCH_CHECK(wt.size(1) % kBlockN == 0 && n <= wt.size(1), "binary_linear: bad padding");
  TORCH_CHECK(scale.numel() >= wt.size(1) && bias.numel() >= wt.size(1) &&
                  scale.scalar_type() == torch::kFloat32 && bias.scalar_type() == torch::kFloat32,
              "binary_linear: scale and bias must be float32 with ", wt.size(1), " entries");
  const int64_t m = a.size(0), words = wt.size(0), npad = wt.size(1);
  lead.push_back(n);
  auto out = torch::empty(lead, a.options().dtype(raw ? torch::kInt32 : torch::kFloat32));
  const auto* W = reinterpret_cast<const uint64_t*>(wt.data_ptr<int64_t>());
  std::vector<int64_t> offsets(words), w_rows(words);
  for (int64_t w = 0; w < words; ++w) offsets[w] = w, w_rows[w] = w;
  const Taps taps{offsets.data(), w_rows.data(), words};
  const Epilogue e{n, scale.data_ptr<float>(), bias.data_ptr<float>(), raw};
  float* out_f = raw ? nullptr : out.data_ptr<float>();
  int32_t* out_i = raw ? out.data_ptr<int32_t>() : nullptr;
  const bool avx = use_avx512();
  // the float output's path reads 32-bit halves of the words: the weight's halves as rows
  const std::vector<uint32_t> wt32 =
      avx && !raw ? weight_halves(W, words, npad) : std::vector<uint32_t>();
  const int64_t blocks = (m + kBlockM - 1) / kBlockM;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    int64_t pop[kBlockM][kBlockN];
    const uint64_t* rows[kBlockM];
    const uint32_t* rows32[kBlockM];
    float* outs[kBlockM];
    std::vector<uint64_t> packed(source.values ? kBlockM * words : 0);
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t m0 = blk * kBlockM, real = std::min<int64_t>(kBlockM, m - m0);
      source.block(m0, real, avx, packed.data(), rows);
      if (avx && !raw) {
        for (int r = 0; r < kBlockM; ++r) rows32[r] = reinterpret_cast<const uint32_t*>(rows[r]);
        for (int r = 0; r < kBlockM; ++r) outs[r] = out_f + (m0 + r) * n;
        const LinearOutputs outputs{e.scale, e.bias, outs, real, n, static_cast<float>(k)};
        linear_rows32_avx512(rows32, wt32.data(), npad, 2 * words, outputs);
        continue;
      }
      for (int64_t c = 0; c < npad && c < n; c += kBlockN) {
        popcounts(avx, rows, W, npad, c, taps, pop);
        for (int64_t r = 0; r < real; ++r)
          store(e, c, k, pop[r], nullptr, out_f ? out_f + (m0 + r) * n : nullptr,
                out_i ? out_i + (m0 + r) * n : nullptr);
      }
    }
  });
  return out;
}

// A binary linear layer whose output is the next binary layer's input signs, not floats:
// a (M, W) sign words or (..., k) float32 values taken as (M, k) rows (as binary_linear, with
// `threshold`), wt (W, Npad) weight words, k the real length of a row; below, above
// (Npad) int32: output n's sign is +1 (bit 1) where its dot <= below[n] or dot >= above[n], the
// caller's fold of dot -> dot * scale + bias -> elementwise function -> sign (minus a threshold)
// into two integer thresholds. -> (M, ceil(n / 64)) int64 sign words, bits past n zero (the
// layout of pack_signs).
torch::Tensor binary_linear_signs(torch::Tensor a, torch::Tensor wt, int64_t k,
                                  torch::Tensor below, torch::Tensor above, int64_t n,
                                  c10::optional<torch::Tensor> threshold) {
  check_cpu({below, above}, "binary_linear_signs");
  std::vector<int64_t> lead;
  const SignRows source = sign_rows(a, threshold, wt, k, "binary_linear_signs", lead);
  wt = wt.contiguous();
  TORCH_CHECK(wt.size(1) % kBlockN == 0 && n <= wt.size(1), "binary_linear_signs: bad padding");
  TORCH_CHECK(below.scalar_type() == torch::kInt32 && above.scalar_type() == torch::kInt32 &&
                  below.numel() >= wt.size(1) && above.numel() >= wt.size(1),
              "binary_linear_signs: below and above must be int32 with ", wt.size(1), " entries");
  below = below.contiguous(), above = above.contiguous();
  const int64_t m = a.size(0), words = wt.size(0), npad = wt.size(1), out_words = (n + 63) / 64;
  auto out = torch::empty({m, out_words}, a.options().dtype(torch::kInt64));   // put_bits
  const auto* W = reinterpret_cast<const uint64_t*>(wt.data_ptr<int64_t>());
  auto* O = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  const int32_t *lo = below.data_ptr<int32_t>(), *hi = above.data_ptr<int32_t>();
  const bool avx = use_avx512();
  const std::vector<uint32_t> wt32 = avx ? weight_halves(W, words, npad) : std::vector<uint32_t>();
  std::vector<int64_t> offsets(words), w_rows(words);
  for (int64_t w = 0; w < words; ++w) offsets[w] = w, w_rows[w] = w;
  const Taps taps{offsets.data(), w_rows.data(), words};
  const int64_t blocks = (m + kBlockM - 1) / kBlockM;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    int64_t pop[kBlockM][kBlockN];
    const uint64_t* rows[kBlockM];
    const uint32_t* rows32[kBlockM];
    uint64_t* outs[kBlockM];
    std::vector<uint64_t> packed(source.values ? kBlockM * words : 0);
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t m0 = blk * kBlockM, real = std::min<int64_t>(kBlockM, m - m0);
      source.block(m0, real, avx, packed.data(), rows);
      for (int r = 0; r < kBlockM; ++r) outs[r] = O + (m0 + r) * out_words;
      if (avx) {
        for (int r = 0; r < kBlockM; ++r) rows32[r] = reinterpret_cast<const uint32_t*>(rows[r]);
        const SignOutputs outputs{lo, hi, outs, real, n, static_cast<int32_t>(k)};
        linear_rows32_avx512(rows32, wt32.data(), npad, 2 * words, outputs);
        continue;
      }
      for (int64_t c = 0; c < n; c += kBlockN) {
        popcounts_portable(rows, W, npad, c, taps, pop);
        for (int64_t r = 0; r < real; ++r) {
          uint64_t bits = 0;
          for (int64_t j = 0; j < std::min<int64_t>(kBlockN, n - c); ++j) {
            const int64_t dot = k - 2 * pop[r][j];
            bits |= static_cast<uint64_t>(dot <= lo[c + j] || dot >= hi[c + j]) << j;
          }
          put_bits(outs[r], c, bits);
        }
      }
    }
  });
  return out;
}

// dot * scale + bias rounded once (as the binary layers' float outputs): dots (D) int32, scale,
// bias (N) float32 -> (N, D) float32.
torch::Tensor binary_affine_values(torch::Tensor dots, torch::Tensor scale, torch::Tensor bias) {
  check_cpu({dots, scale, bias}, "binary_affine_values");
  TORCH_CHECK(dots.scalar_type() == torch::kInt32 && scale.scalar_type() == torch::kFloat32 &&
                  bias.scalar_type() == torch::kFloat32 && scale.numel() == bias.numel(),
              "binary_affine_values: int32 dots, float32 scale and bias of one length");
  dots = dots.reshape(-1).contiguous(), scale = scale.reshape(-1).contiguous(),
  bias = bias.reshape(-1).contiguous();
  const int64_t d = dots.numel(), n = scale.numel();
  auto out = torch::empty({n, d}, scale.options());
  const int32_t* dp = dots.data_ptr<int32_t>();
  const float *sp = scale.data_ptr<float>(), *bp = bias.data_ptr<float>();
  float* op = out.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      op[i * d + j] = std::fma(static_cast<float>(dp[j]), sp[i], bp[i]);
  return out;
}

// exp(L) of a q k^T logit L = scale (dot - zb sum_a - za sum_b + kzz), factored as
// T[pop] U[j] R: T[p] = exp(scale (k - 2 p)) over the popcount p (dot = k - 2 p), U[j] =
// exp(-scale za sum_b[j]) per column (0 past the last) and R = exp(scale (kzz - zb sum_a)) per
// row, so that a row's softmax sum is R sum_j T[pop_j] U[j]: a table lookup and a multiply per
// logit instead of an exponential. For heads of at most 64 dimensions (p <= 64).
struct SoftmaxTables {
  alignas(64) float table[80];      // T[0 .. 64], zeros after
  std::vector<float> column;        // U (npad)
};

// T[p] of 16 lanes p in [0, 64]: two two-register permutes (entries 0-31 and 32-63, picked by
// bit 5) and entry 64 blended in.
__attribute__((target("avx512f"), always_inline)) inline __m512 lookup65(const float* t,
                                                                         __m512i p) {
  const __m512 lo = _mm512_permutex2var_ps(_mm512_load_ps(t), p, _mm512_load_ps(t + 16));
  const __m512 hi = _mm512_permutex2var_ps(_mm512_load_ps(t + 32), p, _mm512_load_ps(t + 48));
  const __mmask16 upper = _mm512_test_epi32_mask(p, _mm512_set1_epi32(32));
  const __mmask16 last = _mm512_cmpeq_epi32_mask(p, _mm512_set1_epi32(64));
  return _mm512_mask_blend_ps(last, _mm512_mask_blend_ps(upper, lo, hi), _mm512_set1_ps(t[64]));
}

// Bi-ViT's binary attention product of a block of kBlockM rows: the dots of
// popcount_blocks32_avx512, then
//     ((dot - a_part[r]) - za sum_b[c + j] + kzz) * scale,   a_part[r] = zb sum_a[r],
// each operation rounded as the torch expression of the reference path; rows < `real` stored.
// With `tables`, each real row's sums of T[pop] U[j] gather in 16 lanes in sums[r].
struct AttentionOutputs {
  const float* a_part;
  const float* sum_b;
  float za, kzz, scale;
  float* const* out;
  int64_t real, n, k;
  const SoftmaxTables* tables;
  __m512* sums;
  __attribute__((target("avx512f"), always_inline)) inline void operator()(
      int64_t c, const __m512i* acc) const {
    const __mmask16 mask = lanes_mask(n, c);
    const __m512i vk = _mm512_set1_epi32(static_cast<int32_t>(k));
    const __m512 b_part = _mm512_mul_ps(_mm512_set1_ps(za), _mm512_loadu_ps(sum_b + c));
    const __m512 vkzz = _mm512_set1_ps(kzz), vs = _mm512_set1_ps(scale);
#pragma GCC unroll 8
    for (int r = 0; r < kBlockM; ++r) {
      if (r >= real) break;
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(vk, _mm512_slli_epi32(acc[r], 1)));
      const __m512 t = _mm512_sub_ps(_mm512_sub_ps(dot, _mm512_set1_ps(a_part[r])), b_part);
      _mm512_mask_storeu_ps(out[r] + c, mask, _mm512_mul_ps(_mm512_add_ps(t, vkzz), vs));
      if (tables) {
        const __m512 u = _mm512_loadu_ps(tables->column.data() + c);
        sums[r] = _mm512_add_ps(sums[r], _mm512_mul_ps(lookup65(tables->table, acc[r]), u));
      }
    }
  }
};

// The attention product of one block of rows (AttentionOutputs); with `tables`, row_sums
// (kBlockM x 16 lanes) receives the rows' table sums.
__attribute__((target("avx512f,avx512vpopcntdq,fma"))) void attention_rows32_avx512(
    const uint32_t* const* rows, const uint32_t* bt32, int64_t npad, int64_t half_words,
    const float* a_part, const float* sum_b, float za, float kzz, float scale, float* const* out,
    int64_t real, int64_t n, int64_t k, const SoftmaxTables* tables, float* row_sums) {
  __m512 sums[kBlockM];
#pragma GCC unroll 8
  for (int r = 0; r < kBlockM; ++r) sums[r] = _mm512_setzero_ps();
  AttentionOutputs epilogue{a_part, sum_b, za, kzz, scale, out, real, n, k, tables, sums};
  popcount_blocks32_avx512(rows, bt32, npad, n, half_words, epilogue);
  if (tables)
#pragma GCC unroll 8
    for (int r = 0; r < kBlockM; ++r) _mm512_storeu_ps(row_sums + 16 * r, sums[r]);
}

int64_t sign_sum(const uint64_t* words, int64_t count, int64_t k) {
  int64_t pop = 0;
  for (int64_t w = 0; w < count; ++w) pop += __builtin_popcountll(words[w]);
  return 2 * pop - k;
}

// The products of one group (one image and head) of Bi-ViT's binary attention:
//     out[row][j] = ((dot - zb sum_a) - za sum_b + kzz) * scale,
// dot = sign(a_row) . sign(b_j) and sum_a, sum_b the rows' sign sums (2 popcount - k), each
// operation rounded as the torch expression of the reference path. Rows go in blocks of
// kBlockM: `row_out(row, first)` gives where row `row` of the block starting at `first` is
// written (n floats), and `finished(first, real)` is called once the block's `real` rows are.
// bt32 and sum_b are the caller's scratch (2 W npad and npad entries).
// With `tables` (the AVX-512 path only), each block's rows also get their softmax sums in
// row_sums (kBlockM x 16 lanes, written per block; attention_rows32_avx512).
template <typename RowOut, typename Finished>
void attention_group(const uint64_t* Ag, const uint64_t* Bg, int64_t m, int64_t n, int64_t words,
                     int64_t k, float za, float zb, float kzz, float scale, int64_t npad,
                     bool avx, std::vector<uint32_t>& bt32, std::vector<float>& sum_b,
                     RowOut&& row_out, Finished&& finished,
                     const SoftmaxTables* tables = nullptr, float* row_sums = nullptr) {
  float a_part[kBlockM];
  const uint32_t* rows32[kBlockM];
  float* outs[kBlockM];
  std::fill(bt32.begin(), bt32.end(), 0u);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t w = 0; w < words; ++w) {
      bt32[(2 * w) * npad + j] = static_cast<uint32_t>(Bg[j * words + w]);
      bt32[(2 * w + 1) * npad + j] = static_cast<uint32_t>(Bg[j * words + w] >> 32);
    }
    sum_b[j] = static_cast<float>(sign_sum(Bg + j * words, words, k));
  }
  for (int64_t m0 = 0; m0 < m; m0 += kBlockM) {
    const int64_t real = std::min<int64_t>(kBlockM, m - m0);
    for (int r = 0; r < kBlockM; ++r) {
      const int64_t row = m0 + std::min<int64_t>(r, real - 1);
      rows32[r] = reinterpret_cast<const uint32_t*>(Ag + row * words);
      a_part[r] = zb * static_cast<float>(sign_sum(Ag + row * words, words, k));
      outs[r] = row_out(row, m0);
    }
    if (avx) {
      attention_rows32_avx512(rows32, bt32.data(), npad, 2 * words, a_part, sum_b.data(), za,
                              kzz, scale, outs, real, n, k, tables, row_sums);
    } else {
      for (int64_t r = 0; r < real; ++r)
        for (int64_t j = 0; j < n; ++j) {
          int64_t pop = 0;
          for (int64_t w = 0; w < words; ++w)
            pop += __builtin_popcountll(Ag[(m0 + r) * words + w] ^ Bg[j * words + w]);
          float t = static_cast<float>(k - 2 * pop) - a_part[r];
          t = t - za * sum_b[j];
          outs[r][j] = (t + kzz) * scale;
        }
    }
    finished(m0, real);
  }
}

// Checks the attention product's operands: a (G, M, W) and b (G, N, W) sign words of rows of k
// signs, za, zb, kzz and scale one float32 per head with G a multiple of the heads; makes them
// contiguous and flat.
void check_attention_operands(torch::Tensor& a, torch::Tensor& b, int64_t k, torch::Tensor& za,
                              torch::Tensor& zb, torch::Tensor& kzz, torch::Tensor& scale,
                              const char* op) {
  check_cpu({a, b, za, zb, kzz, scale}, op);
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(2) &&
                  a.scalar_type() == torch::kInt64 && b.scalar_type() == torch::kInt64 &&
                  a.size(2) == (k + 63) / 64,
              op, ": sign words ", a.sizes(), " and ", b.sizes(), " do not fit rows of ", k,
              " signs");
  const int64_t heads = za.numel();
  for (const auto& t : {za, zb, kzz, scale})
    TORCH_CHECK(t.scalar_type() == torch::kFloat32 && t.numel() == heads, op,
                ": za, zb, kzz and scale need one float32 per head");
  TORCH_CHECK(heads > 0 && a.size(0) % heads == 0, op, ": G is not a multiple of the heads");
  a = a.contiguous(), b = b.contiguous();
  auto flat = [](const torch::Tensor& t) { return t.reshape(-1).contiguous(); };
  za = flat(za), zb = flat(zb), kzz = flat(kzz), scale = flat(scale);
}

// Bi-ViT's binary attention product in one pass: a (G, M, W) and b (G, N, W) sign words of
// rows of k signs; za, zb, kzz (= k za zb) and scale one float per head (G = B * heads, head
// g % heads). out (G, M, N) float (see attention_group); with heads_last (B, M, heads, N), the
// layout a transformer's "(B, heads, M, N) -> (B, M, heads * N)" reads without a copy.
torch::Tensor binary_attention_product(torch::Tensor a, torch::Tensor b, int64_t k,
                                       torch::Tensor za, torch::Tensor zb, torch::Tensor kzz,
                                       torch::Tensor scale, bool heads_last) {
  check_attention_operands(a, b, k, za, zb, kzz, scale, "binary_attention_product");
  const int64_t heads = za.numel();
  const int64_t g = a.size(0), m = a.size(1), n = b.size(1), words = a.size(2);
  const int64_t npad = (n + kBlockN - 1) / kBlockN * kBlockN;
  auto out = heads_last ? torch::empty({g / heads, m, heads, n}, za.options())
                        : torch::empty({g, m, n}, za.options());
  const auto* A = reinterpret_cast<const uint64_t*>(a.data_ptr<int64_t>());
  const auto* B = reinterpret_cast<const uint64_t*>(b.data_ptr<int64_t>());
  float* O = out.data_ptr<float>();
  const float *pa = za.data_ptr<float>(), *pb = zb.data_ptr<float>();
  const float *pk = kzz.data_ptr<float>(), *ps = scale.data_ptr<float>();
  const bool avx = use_avx512();
  at::parallel_for(0, g, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint32_t> bt32(2 * words * npad);   // b's words as 32-bit halves, per column
    std::vector<float> sum_b(npad, 0.f);
    for (int64_t gi = begin; gi < end; ++gi) {
      const int64_t h = gi % heads;
      // row r of group g: at ((g / heads) m + r) heads + h with heads_last, else g m + r
      float* Og = heads_last ? O + ((gi / heads) * m * heads + h) * n : O + gi * m * n;
      const int64_t row_stride = heads_last ? heads * n : n;
      attention_group(A + gi * m * words, B + gi * n * words, m, n, words, k, pa[h], pb[h], pk[h],
                      ps[h], npad, avx, bt32, sum_b,
                      [&](int64_t row, int64_t) { return Og + row * row_stride; },
                      [](int64_t, int64_t) {});
    }
  });
  return out;
}

// ------------------------------------------------------------- softmax straight to sign words
// exp(x) of 16 floats x <= 0 to within 1e-6 relative (a Cody-Waite reduction to |r| <= ln2 / 2
// and a degree-6 Taylor polynomial, whose truncation is below 1.2e-7); x below -87 gives
// exp(-87), which a sum that holds exp(0) = 1 cannot tell from less.
__attribute__((target("avx512f"))) inline __m512 exp_nonpositive_avx512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);   // ln 2, high bits
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);         // ln 2, the rest
  __m512 p = _mm512_set1_ps(1.f / 720.f);
  for (float c : {1.f / 120.f, 1.f / 24.f, 1.f / 6.f, 0.5f, 1.f, 1.f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

// How far (in log space) the natural log of any softmax output p = exp(x_j - max) / sum over a
// row of n entries can lie from the one torch's float32 softmax computes, leaving out the
// rounding of x_j - max (added per entry): its sum in any order ((n - 1) roundings of 2^-24),
// its exponential (allowed 40 ulps), the division or the multiplication by the reciprocal and the
// division by the binarizer's step (4 roundings), the roundings of the other entries' x_k - max
// in the sum (at most n e^-1 2^-24 relative, as |d| e^d <= e^-1), plus this kernel's own
// exponential (1e-6), its float sum in 16 lanes (n / 16 + 4 roundings) and the same roundings
// of x_k - max.
double softmax_log_margin(int64_t n) {
  return static_cast<double>(3 * n + 16) * 0x1p-24 + 40 * 0x1p-23 + 4e-6;
}

// Bit j of words is 1 where x[j] >= centre + big and 0 where x[j] <= centre - big; returns false
// (words undefined) where an x[j] lies between them or is NaN. The two bounds are computed in
// double (within 2^-50 of their size) and moved outwards by 2^-22 of their size (and 2^-126)
// before rounding to float, which moves a value by at most 2^-24 of its size (or 2^-150 near 0).
__attribute__((target("avx512f"))) bool signs_beyond(const float* x, int64_t n, double centre,
                                                     double big, uint64_t* words) {
  const double hi = centre + big, lo = centre - big;
  const double out = 0x1p-22 * (std::fabs(centre) + big) + 0x1p-126;
  const float hi_f = static_cast<float>(hi + out), lo_f = static_cast<float>(lo - out);
  const __m512 vhi = _mm512_set1_ps(hi_f), vlo = _mm512_set1_ps(lo_f);
  std::fill(words, words + (n + 63) / 64, 0ull);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes_mask(n, j);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
    const __mmask16 one = _mm512_mask_cmp_ps_mask(m, v, vhi, _CMP_GE_OQ);
    const __mmask16 zero = _mm512_mask_cmp_ps_mask(m, v, vlo, _CMP_LE_OQ);
    if ((one | zero) != m) return false;
    words[j / 64] |= static_cast<uint64_t>(one) << (j % 64);
  }
  return true;
}

// Every bit of a row of n: 1 (a zero point >= 0 passes every probability).
void all_signs(int64_t n, uint64_t* words) {
  std::fill(words, words + (n + 63) / 64, 0ull);
  for (int64_t j = 0; j < n; ++j) words[j / 64] |= 1ull << (j % 64);
}

// Sign words of a binarized softmax row: bit j is 1 where softmax(x)_j / s + z >= 0 as torch's
// float32 softmax and the binarizer round it. `log_theta` = log(-z s) (the probability at the
// threshold; -inf where z >= 0, which makes every bit 1). Decides each bit only where the exact
// log probability lies farther than `margin` (+ the rounding of x_j - max) from log_theta, so
// that no rounding of torch's can change it; returns false, leaving `words` undefined, where
// one is too close or the row holds NaN or +inf or only -inf (the caller then asks torch).
__attribute__((target("avx512f,avx512dq"))) bool softmax_sign_row(const float* x, int64_t n,
                                                                   double log_theta,
                                                                   double margin,
                                                                   uint64_t* words) {
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes_mask(n, j);
    vmax = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, x + j), vmax);
  }
  // a NaN may or may not reach the maximum: one that does not fails both comparisons below
  const float mx = _mm512_reduce_max_ps(vmax);
  if (!(mx < INFINITY) || mx == -INFINITY) return false;
  if (log_theta == -INFINITY) {                     // every probability passes the threshold
    all_signs(n, words);
    return true;
  }
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = lanes_mask(n, j);
    sum = _mm512_mask_add_ps(
        sum, m, sum, exp_nonpositive_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), vm)));
  }
  // Bit j is 1 where d - tau >= margin + |d| 2^-23 and 0 where d - tau <= -(margin + |d| 2^-23)
  // (d = x_j - max exactly; |d| 2^-23 covers torch rounding d to float). As x_j >= max + tau
  // + big and x_j <= max + tau - big, big = (margin + |tau| 2^-23)(1 + 2^-22), imply these for
  // d <= 0, the row's two bounds in x decide each bit by one comparison.
  const double tau = std::log(static_cast<double>(_mm512_reduce_add_ps(sum))) + log_theta;
  return signs_beyond(x, n, mx + tau, (margin + std::fabs(tau) * 0x1p-23) * (1 + 0x1p-22),
                      words);
}

// The logits rows a softmax-sign pass could not decide: their indices and values, gathered per
// thread and returned as (U,) int64 and (U, N) float32 in increasing row order.
struct UndecidedRows {
  std::vector<std::vector<std::pair<int64_t, std::vector<float>>>> per_task;
  explicit UndecidedRows(int64_t tasks) : per_task(tasks) {}
  std::pair<torch::Tensor, torch::Tensor> tensors(int64_t n) const {
    int64_t count = 0;
    for (const auto& t : per_task) count += static_cast<int64_t>(t.size());
    auto rows = torch::empty({count}, torch::kInt64);
    auto logits = torch::empty({count, n}, torch::kFloat32);
    int64_t i = 0;
    for (const auto& task : per_task)
      for (const auto& [row, values] : task) {
        rows.data_ptr<int64_t>()[i] = row;
        std::memcpy(logits.data_ptr<float>() + i * n, values.data(), n * sizeof(float));
        ++i;
      }
    return {rows, logits};
  }
};

// log(-z s) per head (-inf where z >= 0: every probability passes), after checking the
// binarizer's steps: one positive, finite float32 step and a finite zero point per head, and a
// threshold -z s that, where positive, is at least 1e-30 (a smaller one would compare
// probabilities that float32 holds only as subnormals).
std::vector<double> log_thresholds(const torch::Tensor& prob_scale, const torch::Tensor& prob_zero,
                                   int64_t heads, const char* op) {
  check_cpu({prob_scale, prob_zero}, op);
  TORCH_CHECK(prob_scale.scalar_type() == torch::kFloat32 &&
                  prob_zero.scalar_type() == torch::kFloat32 && prob_scale.numel() == heads &&
                  prob_zero.numel() == heads,
              op, ": prob_scale and prob_zero need one float32 per head (", heads, ")");
  const auto s = prob_scale.reshape(-1).contiguous(), z = prob_zero.reshape(-1).contiguous();
  std::vector<double> out(heads);
  for (int64_t h = 0; h < heads; ++h) {
    const double sh = s.data_ptr<float>()[h], zh = z.data_ptr<float>()[h];
    TORCH_CHECK(std::isfinite(sh) && sh > 0 && std::isfinite(zh), op, ": head ", h,
                " has step ", sh, " and zero point ", zh, "; the fused softmax needs a positive "
                "finite step and a finite zero point (use the unfused path)");
    const double theta = -zh * sh;
    TORCH_CHECK(theta <= 0 || theta >= 1e-30, op, ": head ", h, "'s threshold ", theta,
                " is below 1e-30 (use the unfused path)");
    out[h] = theta <= 0 ? -INFINITY : std::log(theta);
  }
  return out;
}

// Bi-ViT's binarized attention probabilities straight from the operands of q k^T: the logits
// of binary_attention_product(a, b, k, za, zb, kzz, scale), a row block at a time in a scratch
// buffer (never written out), then each row's softmax to the sign words of
// softmax / prob_scale + prob_zero (one step and zero point per head), rounded as torch's
// softmax and binarizer would: the row's sum from SoftmaxTables, gathered with the logits, for
// heads of up to 64 dimensions whose logits stay in range, else softmax_sign_row. Returns (words (G, M, ceil(N / 64)) int64, rows (U,)
// int64, logits (U, N) float32): the rows (flat indices g * M + m) whose words are left undefined
// because a probability lies too close to the threshold, with their logits, for the caller to
// finish with torch. extra_margin widens the margin (tests use it to send rows to the caller).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> binary_attention_softmax_signs(
    torch::Tensor a, torch::Tensor b, int64_t k, torch::Tensor za, torch::Tensor zb,
    torch::Tensor kzz, torch::Tensor scale, torch::Tensor prob_scale, torch::Tensor prob_zero,
    double extra_margin) {
  const char* op = "binary_attention_softmax_signs";
  check_attention_operands(a, b, k, za, zb, kzz, scale, op);
  TORCH_CHECK(use_avx512(), op, ": needs AVX-512 (use the unfused path)");
  const int64_t heads = za.numel();
  const auto log_theta = log_thresholds(prob_scale, prob_zero, heads, op);
  const int64_t g = a.size(0), m = a.size(1), n = b.size(1), words = a.size(2);
  const int64_t npad = (n + kBlockN - 1) / kBlockN * kBlockN, out_words = (n + 63) / 64;
  const double margin = softmax_log_margin(n) + extra_margin;
  auto out = torch::empty({g, m, out_words}, a.options());
  const auto* A = reinterpret_cast<const uint64_t*>(a.data_ptr<int64_t>());
  const auto* B = reinterpret_cast<const uint64_t*>(b.data_ptr<int64_t>());
  auto* W = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  const float *pa = za.data_ptr<float>(), *pb = zb.data_ptr<float>();
  const float *pk = kzz.data_ptr<float>(), *ps = scale.data_ptr<float>();
  UndecidedRows undecided(g);
  at::parallel_for(0, g, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint32_t> bt32(2 * words * npad);
    std::vector<float> sum_b(npad, 0.f), block(kBlockM * npad);
    SoftmaxTables tables;
    alignas(64) float row_sums[kBlockM * 16];
    for (int64_t gi = begin; gi < end; ++gi) {
      const int64_t h = gi % heads;
      const uint64_t *Ag = A + gi * m * words, *Bg = B + gi * n * words;
      auto& rows = undecided.per_task[gi];
      // |logit| <= reach, and each table product T U lies within exp(+-2 reach): where a lane's
      // sum of ceil(n / 16) of them stays below exp(85) (float32 holds up to exp(88.7)), the
      // sums come from the tables (SoftmaxTables), else from softmax_sign_row
      const double sc = ps[h], zah = pa[h], zbh = pb[h], kz = pk[h];
      const double reach =
          std::fabs(sc) * (k * (1 + std::fabs(zah) + std::fabs(zbh)) + std::fabs(kz));
      const bool use_tables = k <= 64 && 2 * reach + std::log((n + 15) / 16) <= 85 &&
                              log_theta[h] != -INFINITY;
      if (use_tables) {
        std::fill(std::begin(tables.table), std::end(tables.table), 0.f);
        for (int64_t p = 0; p <= k; ++p)
          tables.table[p] = static_cast<float>(std::exp(sc * static_cast<double>(k - 2 * p)));
        tables.column.assign(npad, 0.f);
        for (int64_t j = 0; j < n; ++j)
          tables.column[j] = static_cast<float>(
              std::exp(-sc * zah * static_cast<double>(sign_sum(Bg + j * words, words, k))));
      }
      // this kernel's sums against the exact logits: |float logit - exact| <= 5 2^-24 reach
      // (the kernel's five roundings), and torch's rounding of x - max, |x - max| <= 2 reach
      const double table_margin = margin + 9 * 0x1p-24 * reach;
      attention_group(
          Ag, Bg, m, n, words, k, pa[h], pb[h], pk[h], ps[h], npad, true, bt32, sum_b,
          [&](int64_t row, int64_t first) { return block.data() + (row - first) * npad; },
          [&](int64_t first, int64_t real) {
            for (int64_t r = 0; r < real; ++r) {
              const float* logits = block.data() + r * npad;
              const int64_t flat = gi * m + first + r;
              bool decided;
              if (use_tables) {
                double sum = 0;
                for (int i = 0; i < 16; ++i) sum += row_sums[r * 16 + i];
                const double sum_a = static_cast<double>(sign_sum(Ag + (first + r) * words, words, k));
                const double centre = std::log(sum) + sc * (kz - zbh * sum_a) + log_theta[h];
                const double big =
                    (table_margin + (std::fabs(centre) + reach) * 0x1p-23) * (1 + 0x1p-22);
                decided = signs_beyond(logits, n, centre, big, W + flat * out_words);
              } else {
                decided = softmax_sign_row(logits, n, log_theta[h], margin, W + flat * out_words);
              }
              if (!decided) rows.emplace_back(flat, std::vector<float>(logits, logits + n));
            }
          },
          use_tables ? &tables : nullptr, row_sums);
    }
  });
  auto [rows, logits] = undecided.tensors(n);
  return {out, rows, logits};
}

// The same for logits already computed (G, M, N) float32 (say, with an attention mask added;
// -inf entries give probability 0), one step and zero point per head of G = B * heads.
std::tuple<torch::Tensor, torch::Tensor> softmax_signs(torch::Tensor logits,
                                                      torch::Tensor prob_scale,
                                                      torch::Tensor prob_zero,
                                                      double extra_margin) {
  const char* op = "softmax_signs";
  check_cpu({logits}, op);
  TORCH_CHECK(use_avx512(), op, ": needs AVX-512 (use the unfused path)");
  TORCH_CHECK(logits.dim() == 3 && logits.scalar_type() == torch::kFloat32, op,
              ": logits must be (G, M, N) float32, got ", logits.sizes(), " ",
              logits.scalar_type());
  const int64_t heads = prob_scale.numel();
  TORCH_CHECK(heads > 0 && logits.size(0) % heads == 0, op, ": G is not a multiple of the heads");
  const auto log_theta = log_thresholds(prob_scale, prob_zero, heads, op);
  logits = logits.contiguous();
  const int64_t g = logits.size(0), m = logits.size(1), n = logits.size(2);
  const int64_t out_words = (n + 63) / 64;
  const double margin = softmax_log_margin(n) + extra_margin;
  auto out = torch::empty({g, m, out_words}, logits.options().dtype(torch::kInt64));
  const float* X = logits.data_ptr<float>();
  auto* W = reinterpret_cast<uint64_t*>(out.data_ptr<int64_t>());
  std::vector<uint8_t> decided(g * m);
  at::parallel_for(0, g * m, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row)
      decided[row] = softmax_sign_row(X + row * n, n, log_theta[(row / m) % heads], margin,
                                      W + row * out_words);
  });
  std::vector<int64_t> rows;
  for (int64_t row = 0; row < g * m; ++row)
    if (!decided[row]) rows.push_back(row);
  return {out, torch::tensor(rows, torch::kInt64)};
}

// x (B, Hp, Wp, Wc) sign words of the zero-padded input (channels last, padding pixels all-zero
// words), wt (KH * KW * Wc, Npad) weight words (tap-major, then channel word), channels the real
// C, tap_dot (KH * KW, Npad) int32: per tap the dot an all-zero-word pixel gives
// (C - 2 popcount(w_tap)), subtracted for the taps that fall in the padding. -> (B, OH, OW, n)
// float (channels last), or int32 dots if raw.
torch::Tensor binary_conv2d(torch::Tensor x, torch::Tensor wt, int64_t channels, int64_t kh,
                            int64_t kw, int64_t stride, int64_t pad, int64_t dilation,
                            int64_t height, int64_t width, torch::Tensor tap_dot,
                            torch::Tensor scale, torch::Tensor bias, int64_t n, bool raw) {
  check_cpu({x, wt, tap_dot, scale, bias}, "binary_conv2d");
  TORCH_CHECK(x.dim() == 4 && wt.dim() == 2, "binary_conv2d: bad operand ranks");
  x = x.contiguous(), wt = wt.contiguous(), tap_dot = tap_dot.contiguous();
  scale = scale.reshape(-1).contiguous(), bias = bias.reshape(-1).contiguous();
  const int64_t b = x.size(0), hp = x.size(1), wp = x.size(2), wc = x.size(3);
  const int64_t npad = wt.size(1);
  TORCH_CHECK(wt.size(0) == kh * kw * wc && npad % kBlockN == 0,
              "binary_conv2d: weight words ", wt.sizes(), " do not fit ", kh, "x", kw, "x", wc);
  TORCH_CHECK(hp == height + 2 * pad && wp == width + 2 * pad,
              "binary_conv2d: padded input ", hp, "x", wp, " is not ", height, "x", width,
              " padded by ", pad);
  TORCH_CHECK(scale.numel() >= npad && bias.numel() >= npad &&
                  scale.scalar_type() == torch::kFloat32 && bias.scalar_type() == torch::kFloat32,
              "binary_conv2d: scale and bias must be float32 with ", npad, " entries");
  TORCH_CHECK(tap_dot.scalar_type() == torch::kInt32 && tap_dot.numel() >= kh * kw * npad,
              "binary_conv2d: tap_dot must be int32 with ", kh * kw * npad, " entries");
  const int64_t oh = (height + 2 * pad - dilation * (kh - 1) - 1) / stride + 1;
  const int64_t ow = (width + 2 * pad - dilation * (kw - 1) - 1) / stride + 1;
  auto out = raw ? torch::empty({b, oh, ow, n}, x.options().dtype(torch::kInt32))
                 : torch::empty({b, oh, ow, n}, x.options().dtype(torch::kFloat32));
  const auto* X = reinterpret_cast<const uint64_t*>(x.data_ptr<int64_t>());
  const auto* W = reinterpret_cast<const uint64_t*>(wt.data_ptr<int64_t>());
  const int32_t* fix_tap = tap_dot.data_ptr<int32_t>();
  std::vector<int64_t> offsets, w_rows;
  for (int64_t i = 0; i < kh; ++i)
    for (int64_t j = 0; j < kw; ++j)
      for (int64_t w = 0; w < wc; ++w) {
        offsets.push_back((i * dilation * wp + j * dilation) * wc + w);
        w_rows.push_back((i * kw + j) * wc + w);
      }
  const Taps taps{offsets.data(), w_rows.data(), static_cast<int64_t>(offsets.size())};
  const Epilogue e{n, scale.data_ptr<float>(), bias.data_ptr<float>(), raw};
  const int64_t full = kh * kw * channels;
  float* out_f = raw ? nullptr : out.data_ptr<float>();
  int32_t* out_i = raw ? out.data_ptr<int32_t>() : nullptr;
  const bool avx = use_avx512();
  // output pixels whose taps all fall inside the image: [lo, hi) per axis
  auto inside = [&](int64_t o, int64_t size, int64_t k) {
    return o * stride - pad >= 0 && o * stride - pad + (k - 1) * dilation < size;
  };
  const int64_t col_blocks = (ow + kBlockM - 1) / kBlockM;
  at::parallel_for(0, b * oh, 1, [&](int64_t begin, int64_t end) {
    int64_t pop[kBlockM][kBlockN];
    const uint64_t* rows[kBlockM];
    float* outs[kBlockM];
    std::vector<int32_t> fix(npad);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t bi = row / oh, oy = row % oh;
      for (int64_t cb = 0; cb < col_blocks; ++cb) {
        const int64_t ox0 = cb * kBlockM, real = std::min<int64_t>(kBlockM, ow - ox0);
        for (int r = 0; r < kBlockM; ++r) {
          const int64_t ox = ox0 + std::min<int64_t>(r, real - 1);
          rows[r] = X + ((bi * hp + oy * stride) * wp + ox * stride) * wc;
          outs[r] = out_f ? out_f + ((bi * oh + oy) * ow + ox) * n : nullptr;
        }
        const bool interior = inside(oy, height, kh) && inside(ox0, width, kw) &&
                              inside(ox0 + real - 1, width, kw);
        for (int64_t c = 0; c < npad && c < n; c += kBlockN) {
          if (avx && !raw && interior) {
            fused_avx512(rows, W, npad, c, taps, full, e.scale, e.bias, outs, real, n);
            continue;
          }
          popcounts(avx, rows, W, npad, c, taps, pop);
          for (int64_t r = 0; r < real; ++r) {
            const int64_t ox = ox0 + r;
            // taps in the padding: their all-zero words contributed tap_dot, not 0
            bool border = false;
            for (int64_t c2 = c; c2 < c + kBlockN; ++c2) fix[c2] = 0;
            for (int64_t i = 0; i < kh; ++i) {
              const int64_t iy = oy * stride - pad + i * dilation;
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t ix = ox * stride - pad + j * dilation;
                if (iy < 0 || iy >= height || ix < 0 || ix >= width) {
                  border = true;
                  const int32_t* t = fix_tap + (i * kw + j) * npad;
                  for (int64_t c2 = c; c2 < c + kBlockN; ++c2) fix[c2] += t[c2];
                }
              }
            }
            const int64_t at = ((bi * oh + oy) * ow + ox) * n;
            store(e, c, full, pop[r], border ? fix.data() : nullptr,
                  out_f ? out_f + at : nullptr, out_i ? out_i + at : nullptr);
          }
        }
      }
    }
  });
  return out;
}

// ---------------------------------------------------------------------- integer (2..8 bit)
// A float32 x made dense (kept as it is when it already is: channels-last stays
// channels-last) and an empty tensor of dtype with its strides, so that element i of the one's
// memory and of the other's is the same element (for passes that go element by element).
std::pair<torch::Tensor, torch::Tensor> dense_like(torch::Tensor x, torch::ScalarType dtype,
                                                   const char* op) {
  check_cpu({x}, op);
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, op, ": x must be float32");
  if (!x.is_non_overlapping_and_dense())
    x = x.contiguous();
  auto out = torch::empty_like(x, x.options().dtype(dtype), at::MemoryFormat::Preserve);
  TORCH_CHECK(out.strides() == x.strides(), op, ": could not keep the input's layout");
  return {x, out};
}

// round(clamp(src / s + z, lo, hi)) - off over [0, n), as float or int8 (modulo 256).
template <typename T>
void quantize_range(const float* src, T* dst, int64_t n, float s, float z, float lo, float hi,
                    float off) {
  int64_t i = use_avx512() ? quantize_levels_avx512<T>(src, dst, n, s, z, lo, hi, off) : 0;
  for (; i < n; ++i) {
    float t = src[i] / s + z;
    t = std::nearbyint(std::min(std::max(t, lo), hi)) - off;
    if constexpr (std::is_same_v<T, int8_t>)
      dst[i] = static_cast<int8_t>(static_cast<int32_t>(t));  // modulo 256
    else
      dst[i] = t;
  }
}

// q = round(clamp(x / s + z, qn, qp)) - offset as a byte (int8; modulo 256, so offset = qn
// gives the uint8 levels q - qn as an int8 tensor to view) or as float, with the fake
// quantizer's own float operations (IEEE division, addition, clamp, round half to even), so
// the integers are equal; in x's memory layout (channels-last levels of a channels-last input,
// without a copy).
template <typename T>
torch::Tensor quantize_levels(torch::Tensor input, double scale, double zero_point, int64_t qn,
                              int64_t qp, int64_t offset, const char* op) {
  torch::Tensor x, out;
  std::tie(x, out) = dense_like(input, c10::CppTypeToScalarType<T>::value, op);
  const float* src = x.data_ptr<float>();
  T* dst = static_cast<T*>(out.data_ptr());
  const float s = static_cast<float>(scale), z = static_cast<float>(zero_point);
  const float lo = static_cast<float>(qn), hi = static_cast<float>(qp);
  const float off = static_cast<float>(offset);
  at::parallel_for(0, x.numel(), 16384, [&](int64_t begin, int64_t end) {
    quantize_range<T>(src + begin, dst + begin, end - begin, s, z, lo, hi, off);
  });
  return out;
}

torch::Tensor quantize_int8(torch::Tensor x, double scale, double zero_point, int64_t qn,
                            int64_t qp, int64_t offset) {
  return quantize_levels<int8_t>(x, scale, zero_point, qn, qp, offset, "quantize_int8");
}

// out[j][i] = in[i][j] for a 16 x 16 block of bytes (rows `in_stride` and `out_stride` apart):
// four rounds of SSE2 unpacks (8, 16, 32 and 64 bits).
inline void transpose_bytes16(const int8_t* in, int64_t in_stride, int8_t* out,
                              int64_t out_stride) {
  __m128i r[16], t[16], u[16], v[16];
  for (int i = 0; i < 16; ++i)
    r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i * in_stride));
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 16; g += 4)
    for (int j = 0; j < 2; ++j) {
      u[g + 2 * j] = _mm_unpacklo_epi16(t[g + j], t[g + j + 2]);
      u[g + 2 * j + 1] = _mm_unpackhi_epi16(t[g + j], t[g + j + 2]);
    }
  for (int g = 0; g < 16; g += 8)
    for (int j = 0; j < 4; ++j) {
      v[g + 2 * j] = _mm_unpacklo_epi32(u[g + j], u[g + j + 4]);
      v[g + 2 * j + 1] = _mm_unpackhi_epi32(u[g + j], u[g + j + 4]);
    }
  for (int j = 0; j < 8; ++j) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * j * out_stride),
                     _mm_unpacklo_epi64(v[j], v[j + 8]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + (2 * j + 1) * out_stride),
                     _mm_unpackhi_epi64(v[j], v[j + 8]));
  }
}

// The levels of quantize_int8 for x (B, C, H, W) float32, written in channels-last memory
// (strides H W C, 1, W C, C): the layout the depthwise and GEMM kernels read, made in the
// quantizing pass. For an NCHW x, torch's transposing copy of the levels afterwards took as long
// as a 3 x 3 depthwise layer. Each task takes 128 pixels of one image: it quantizes each
// channel's run of them with quantize_range (the same integers) into a scratch tile, then
// transposes the tile 16 x 16 bytes at a time.
torch::Tensor quantize_int8_channels_last(torch::Tensor x, double scale, double zero_point,
                                          int64_t qn, int64_t qp, int64_t offset) {
  const char* op = "quantize_int8_channels_last";
  check_cpu({x}, op);
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat32, op,
              ": x must be (B, C, H, W) float32, got ", x.sizes(), " ", x.scalar_type());
  x = x.contiguous();
  const int64_t b = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  auto out = torch::empty(x.sizes(), x.options().dtype(torch::kInt8),
                          at::MemoryFormat::ChannelsLast);
  const float* src = x.data_ptr<float>();
  int8_t* dst = out.data_ptr<int8_t>();
  const float s = static_cast<float>(scale), z = static_cast<float>(zero_point);
  const float lo = static_cast<float>(qn), hi = static_cast<float>(qp);
  const float off = static_cast<float>(offset);
  constexpr int64_t kPixels = 128;   // pixels of one image per task (a tile of C x 128 bytes)
  const int64_t chunks = (hw + kPixels - 1) / kPixels;
  at::parallel_for(0, b * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<int8_t> tile(c * kPixels);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bi = task / chunks, p0 = (task % chunks) * kPixels;
      const int64_t np = std::min(kPixels, hw - p0);
      for (int64_t ci = 0; ci < c; ++ci)   // tile[ci][j]: channel ci of pixel p0 + j
        quantize_range<int8_t>(src + (bi * c + ci) * hw + p0, tile.data() + ci * kPixels, np,
                               s, z, lo, hi, off);
      int8_t* pixels = dst + (bi * hw + p0) * c;   // pixels[j c + ci] = tile[ci][j]
      const int64_t c16 = c / 16 * 16, p16 = np / 16 * 16;
      for (int64_t ci = 0; ci < c16; ci += 16)
        for (int64_t j = 0; j < p16; j += 16)
          transpose_bytes16(tile.data() + ci * kPixels + j, kPixels, pixels + j * c + ci, c);
      for (int64_t j = 0; j < np; ++j)
        for (int64_t ci = j < p16 ? c16 : 0; ci < c; ++ci)
          pixels[j * c + ci] = tile[ci * kPixels + j];
    }
  });
  return out;
}

torch::Tensor quantize_float_levels(torch::Tensor x, double scale, double zero_point,
                                    int64_t qn, int64_t qp, int64_t offset) {
  return quantize_levels<float>(x, scale, zero_point, qn, qp, offset, "quantize_float_levels");
}

// +1 where x >= 0 and -1 elsewhere (NaN included), as float, in x's memory layout: the
// signs the packing kernels pack, for a float convolution of them (grouped layers).
__attribute__((target("avx512f"))) int64_t float_signs_avx512(const float* src, float* dst,
                                                             int64_t n) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  const __m512 minus_one = _mm512_set1_ps(-1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __mmask16 ge = _mm512_cmp_ps_mask(_mm512_loadu_ps(src + i), zero, _CMP_GE_OQ);
    _mm512_storeu_ps(dst + i, _mm512_mask_blend_ps(ge, minus_one, one));
  }
  return i;
}

torch::Tensor float_signs(torch::Tensor input) {
  torch::Tensor x, out;
  std::tie(x, out) = dense_like(input, torch::kFloat32, "float_signs");
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, x.numel(), 16384, [&](int64_t begin, int64_t end) {
    if (use_avx512())
      begin += float_signs_avx512(src + begin, dst + begin, end - begin);
    for (int64_t i = begin; i < end; ++i)
      dst[i] = src[i] >= 0.0f ? 1.0f : -1.0f;
  });
  return out;
}

// The integer epilogue's operands checked and made contiguous: acc (M, N) int32 or float32,
// weight_sum (R, N), scale and bias (N). Returns whether acc is int32.
bool check_epilogue(torch::Tensor& acc, torch::Tensor& weight_sum, torch::Tensor& scale,
                    torch::Tensor& bias, const char* op) {
  check_cpu({acc, weight_sum, scale, bias}, op);
  const bool is_int = acc.scalar_type() == torch::kInt32;
  TORCH_CHECK(acc.dim() == 2 && (is_int || acc.scalar_type() == torch::kFloat32), op,
              ": acc must be (M, N) int32 or float32, got ", acc.sizes(), " ", acc.dtype());
  const int64_t n = acc.size(1);
  TORCH_CHECK(weight_sum.dim() == 2 && weight_sum.size(1) == n && scale.numel() == n &&
                  bias.numel() == n,
              op, ": weight_sum must be (R, N) and scale, bias (N) for N = ", n);
  acc = acc.contiguous();
  weight_sum = weight_sum.contiguous();
  scale = scale.contiguous();
  bias = bias.contiguous();
  return is_int;
}

// y[m, n] = (acc[m, n] + c * weight_sum[row, n]) * scale[n] + bias[n], float; acc holds
// integer sums (int32, or float32 from a GEMM whose sums are exact); weight_sum has one row
// (a Linear) or one per output pixel (m % rows, a convolution's padded borders).
torch::Tensor int_epilogue(torch::Tensor acc, double c, torch::Tensor weight_sum,
                           torch::Tensor scale, torch::Tensor bias, bool in_place) {
  TORCH_CHECK(!in_place || acc.is_contiguous(), "int_epilogue: in place needs a contiguous acc");
  const bool is_int = check_epilogue(acc, weight_sum, scale, bias, "int_epilogue");
  const int64_t m = acc.size(0), n = acc.size(1), rows = weight_sum.size(0);
  // in place: the floats take the sums' memory (same size; no fresh block to fault in)
  auto out = in_place ? acc.view(torch::kFloat32)
                      : torch::empty({m, n}, acc.options().dtype(torch::kFloat32));
  const float* ws = weight_sum.data_ptr<float>();
  const float* sc = scale.data_ptr<float>();
  const float* bi = bias.data_ptr<float>();
  float* y = out.data_ptr<float>();
  const float cf = static_cast<float>(c);
  const void* a = acc.data_ptr();
  at::parallel_for(0, m, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (is_int)
        affine_row(static_cast<const int32_t*>(a) + i * n, y + i * n, n, cf, ws + (i % rows) * n,
                   sc, bi);
      else
        affine_row(static_cast<const float*>(a) + i * n, y + i * n, n, cf, ws + (i % rows) * n,
                   sc, bi);
    }
  });
  return out;
}

// y clamped to [lo, hi] (NaN kept: a comparison with NaN is false, as in torch's clamp), then
// round(clamp(y / s + z, qlo, qhi)) - off as int8, 16 at a time; returns the first it did not do.
__attribute__((target("avx512f,avx512bw,avx512vl"))) int64_t clamp_levels_avx512(
    const float* y, int8_t* dst, int64_t n, float lo, float hi, float s, float z, float qlo,
    float qhi, float off) {
  const __m512 alo = _mm512_set1_ps(lo), ahi = _mm512_set1_ps(hi), vs = _mm512_set1_ps(s);
  const __m512 vz = _mm512_set1_ps(z), vlo = _mm512_set1_ps(qlo), vhi = _mm512_set1_ps(qhi);
  const __m512 voff = _mm512_set1_ps(off);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 v = _mm512_loadu_ps(y + j);
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, alo, _CMP_LT_OQ), v, alo);
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, ahi, _CMP_GT_OQ), v, ahi);
    const __m512 t = _mm512_sub_ps(levels16(v, vs, vz, vlo, vhi), voff);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j),
                     _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(t)));
  }
  return j;
}

// The same over [0, n), the rest after the 16-lane part in scalar code; y may be overwritten.
void clamp_levels_row(float* y, int8_t* dst, int64_t n, float lo, float hi, float s, float z,
                      float qlo, float qhi, float off) {
  int64_t j = use_avx512() ? clamp_levels_avx512(y, dst, n, lo, hi, s, z, qlo, qhi, off) : 0;
  for (int64_t k = j; k < n; ++k) y[k] = y[k] < lo ? lo : (y[k] > hi ? hi : y[k]);
  quantize_range<int8_t>(y + j, dst + j, n - j, s, z, qlo, qhi, off);
}

// The epilogue of an integer layer whose output feeds, through a clamp activation (ReLU, ReLU6,
// Hardtanh: act_lo <= y <= act_hi, NaN kept, as torch's), the integer input of the next layer:
// y = (acc + c * weight_sum[m % rows]) * scale + bias rounded as int_epilogue rounds it, the
// clamp, then the next layer's levels round(clamp(y / s + z, qn, qp)) - offset as quantize_int8
// gives them; int8 (M, N), the floats never written out (a row at a time in a buffer).
torch::Tensor int_epilogue_levels(torch::Tensor acc, double c, torch::Tensor weight_sum,
                                  torch::Tensor scale, torch::Tensor bias, double act_lo,
                                  double act_hi, double q_scale, double q_zero, int64_t qn,
                                  int64_t qp, int64_t offset) {
  const bool is_int = check_epilogue(acc, weight_sum, scale, bias, "int_epilogue_levels");
  const int64_t m = acc.size(0), n = acc.size(1), rows = weight_sum.size(0);
  auto out = torch::empty({m, n}, acc.options().dtype(torch::kInt8));
  const float* ws = weight_sum.data_ptr<float>();
  const float* sc = scale.data_ptr<float>();
  const float* bi = bias.data_ptr<float>();
  int8_t* dst = out.data_ptr<int8_t>();
  const float cf = static_cast<float>(c), lo = static_cast<float>(act_lo);
  const float hi = static_cast<float>(act_hi), s = static_cast<float>(q_scale);
  const float z = static_cast<float>(q_zero), qlo = static_cast<float>(qn);
  const float qhi = static_cast<float>(qp), off = static_cast<float>(offset);
  const void* a = acc.data_ptr();
  at::parallel_for(0, m, 64, [&](int64_t begin, int64_t end) {
    std::vector<float> y(n);
    for (int64_t i = begin; i < end; ++i) {
      if (is_int)
        affine_row(static_cast<const int32_t*>(a) + i * n, y.data(), n, cf, ws + (i % rows) * n,
                   sc, bi);
      else
        affine_row(static_cast<const float*>(a) + i * n, y.data(), n, cf, ws + (i % rows) * n,
                   sc, bi);
      clamp_levels_row(y.data(), dst + i * n, n, lo, hi, s, z, qlo, qhi, off);
    }
  });
  return out;
}

// ------------------------------------------------------------------- depthwise convolution
// One output channel per input channel (groups = C), channels last. The inputs are integers (an
// integer layer's levels q - offset, float32 or int8) or, with `signs`, +1 where x - t[ch] >= 0
// (x >= 0 without t; NaN gives -1) and -1 elsewhere, taken at each tap as float_signs takes
// them; the weights are integers. acc, the sum over the taps inside the image (a padded tap
// adds 0), is exact in float32 (integers below 2^24: the caller checks the bound) in any order.
// Then the integer epilogue, rounded as int_epilogue rounds it:
//     y = (acc + c * weight_sum[p % rows, ch]) * scale[ch] + bias[ch],  p the output pixel.
struct Depthwise {
  const void* x;  // float, or int8_t levels
  const float *wt, *t, *ws, *sc, *bi;
  bool signs;
  float c;
  int64_t rows, h, w, ch, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
};

constexpr int64_t kMaxDepthwiseTaps = 256;

// The taps of output pixel (oy, ox) that fall inside the image: their input pixel (iy * w + ix)
// and tap (i * kw + j), at most kMaxDepthwiseTaps; returns how many.
int64_t taps_inside(const Depthwise& d, int64_t oy, int64_t ox, int64_t* pixel, int64_t* tap) {
  int64_t n = 0;
  for (int64_t i = 0; i < d.kh; ++i) {
    const int64_t iy = oy * d.sh - d.ph + i * d.dh;
    if (iy < 0 || iy >= d.h) continue;
    for (int64_t j = 0; j < d.kw; ++j) {
      const int64_t ix = ox * d.sw - d.pw + j * d.dw;
      if (ix < 0 || ix >= d.w) continue;
      pixel[n] = iy * d.w + ix;
      tap[n++] = i * d.kw + j;
    }
  }
  return n;
}

// The values of 16 channels at one tap, as float; with SIGNS their signs (x - t >= 0: x >= 0
// where t is 0, NaN -1).
template <bool SIGNS, typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512
depthwise_input(const T* p, __mmask16 m, __m512 vt) {
  if constexpr (std::is_same_v<T, int8_t>)
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
  const __m512 v = _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(p));
  if (!SIGNS) return v;
  const __mmask16 ge = _mm512_cmp_ps_mask(_mm512_sub_ps(v, vt), _mm512_setzero_ps(), _CMP_GE_OQ);
  return _mm512_mask_blend_ps(ge, _mm512_set1_ps(-1.f), _mm512_set1_ps(1.f));
}

// The integer epilogue of 16 channels of one output pixel: y = (acc + c * weight_sum) * scale
// + bias, rounded as int_epilogue rounds it; ws the pixel's weight sums.
__attribute__((target("avx512f"), always_inline)) inline void depthwise_epilogue(
    __m512 acc, const float* ws, __mmask16 m, __m512 vc, __m512 sc, __m512 bi, float* y) {
  const __m512 shifted = _mm512_add_ps(acc, _mm512_mul_ps(vc, _mm512_maskz_loadu_ps(m, ws)));
  _mm512_mask_storeu_ps(y, m, _mm512_add_ps(_mm512_mul_ps(shifted, sc), bi));
}

// One pixel of 16 channels with the taps checked against the image (weights from memory).
template <bool SIGNS, typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline void
depthwise_pixel_checked(const Depthwise& d, const T* xb, float* yr, int64_t k, int64_t oy,
                        int64_t ox, __mmask16 m, __m512 vt, __m512 sc, __m512 bi) {
  int64_t pixel[kMaxDepthwiseTaps], tap[kMaxDepthwiseTaps];
  const int64_t n = taps_inside(d, oy, ox, pixel, tap);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t q = 0; q < n; ++q)
    acc = _mm512_fmadd_ps(depthwise_input<SIGNS, T>(xb + pixel[q] * d.ch + k, m, vt),
                          _mm512_maskz_loadu_ps(m, d.wt + tap[q] * d.ch + k), acc);
  const float* ws = d.ws + (d.rows == 1 ? 0 : oy * d.ow + ox) * d.ch + k;
  depthwise_epilogue(acc, ws, m, _mm512_set1_ps(d.c), sc, bi, yr + ox * d.ch + k);
}

// One output row (b, oy), 16 channels at a time. For a KH x KW kernel whose rows all lie inside
// the image, the block's weights stay in registers while the pixels whose taps all lie inside
// go by four at a time, unrolled; the other pixels (and every pixel of KH = KW = 0: a kernel
// size known at run time only) check each tap.
template <int KH, int KW, bool SIGNS, typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void depthwise_row_avx512(
    const Depthwise& d, int64_t b, int64_t oy, float* yr) {
  constexpr int kTaps = KH * KW > 0 ? KH * KW : 1;
  const int64_t kh = KH > 0 ? KH : d.kh, kw = KW > 0 ? KW : d.kw;
  const int64_t h = d.h, w = d.w, ch = d.ch, ow = d.ow, sw = d.sw, pw = d.pw, dw = d.dw;
  const int64_t rows = d.rows;
  const float *wt = d.wt, *t = d.t, *wsum = d.ws, *scale = d.sc, *bias = d.bi;
  const __m512 zero = _mm512_setzero_ps(), vc = _mm512_set1_ps(d.c);
  const T* xb = static_cast<const T*>(d.x) + b * h * w * ch;
  // the kernel rows inside the image, and the pixels whose kernel columns all are
  int64_t i0 = 0, i1 = kh;
  while (i0 < kh && oy * d.sh - d.ph + i0 * d.dh < 0) ++i0;
  while (i1 > i0 && oy * d.sh - d.ph + (i1 - 1) * d.dh >= h) --i1;
  int64_t inner0 = 0;
  while (inner0 < ow && inner0 * sw - pw < 0) ++inner0;
  int64_t inner1 = ow;
  while (inner1 > inner0 && (inner1 - 1) * sw - pw + (kw - 1) * dw >= w) --inner1;
  for (int64_t k = 0; k < ch; k += 16) {
    const __mmask16 m = lanes_mask(ch, k);
    __m512 taps[kTaps];
    if (KH > 0)
      for (int q = 0; q < kTaps; ++q) taps[q] = _mm512_maskz_loadu_ps(m, wt + q * ch + k);
    const __m512 vt = t ? _mm512_maskz_loadu_ps(m, t + k) : zero;
    const __m512 sc = _mm512_maskz_loadu_ps(m, scale + k);
    const __m512 bi = _mm512_maskz_loadu_ps(m, bias + k);
    int64_t ox = 0;
    if (KH > 0 && i0 == 0 && i1 == kh) {
      // the pixels before the interior, then the interior four at a time, fully unrolled
      for (; ox < inner0; ++ox)
        depthwise_pixel_checked<SIGNS, T>(d, xb, yr, k, oy, ox, m, vt, sc, bi);
      for (; ox + 4 <= inner1; ox += 4) {
        __m512 acc[4] = {zero, zero, zero, zero};
        for (int i = 0; i < KH; ++i) {
          const T* xr = xb + (oy * d.sh - d.ph + i * d.dh) * w * ch + k;
          if (sw == 1 && dw == 1) {  // neighbouring pixels share taps: 3 + KW loads, not 4 KW
            __m512 v[3 + KW];
            for (int u = 0; u < 3 + KW; ++u)
              v[u] = depthwise_input<SIGNS, T>(xr + (ox - pw + u) * ch, m, vt);
            for (int j = 0; j < KW; ++j)
              for (int u = 0; u < 4; ++u)
                acc[u] = _mm512_fmadd_ps(v[u + j], taps[i * KW + j], acc[u]);
          } else {
            for (int j = 0; j < KW; ++j)
              for (int u = 0; u < 4; ++u)
                acc[u] = _mm512_fmadd_ps(
                    depthwise_input<SIGNS, T>(xr + ((ox + u) * sw - pw + j * dw) * ch, m, vt),
                    taps[i * KW + j], acc[u]);
          }
        }
        for (int u = 0; u < 4; ++u) {
          const float* ws = wsum + (rows == 1 ? 0 : oy * ow + ox + u) * ch + k;
          depthwise_epilogue(acc[u], ws, m, vc, sc, bi, yr + (ox + u) * ch + k);
        }
      }
      for (; ox < inner1; ++ox) {  // the interior's last pixels, one at a time
        __m512 acc = zero;
        for (int i = 0; i < KH; ++i) {
          const T* xr = xb + (oy * d.sh - d.ph + i * d.dh) * w * ch + k;
          for (int j = 0; j < KW; ++j)
            acc = _mm512_fmadd_ps(
                depthwise_input<SIGNS, T>(xr + (ox * sw - pw + j * dw) * ch, m, vt),
                taps[i * KW + j], acc);
        }
        depthwise_epilogue(acc, wsum + (rows == 1 ? 0 : oy * ow + ox) * ch + k, m, vc, sc, bi,
                           yr + ox * ch + k);
      }
    }
    for (; ox < ow; ++ox)  // borders, and every pixel of other kernel sizes
      depthwise_pixel_checked<SIGNS, T>(d, xb, yr, k, oy, ox, m, vt, sc, bi);
  }
}

template <bool SIGNS, typename T>
void depthwise_row_dispatch(const Depthwise& d, int64_t b, int64_t oy, float* yr) {
  if (d.kh == 3 && d.kw == 3)
    depthwise_row_avx512<3, 3, SIGNS, T>(d, b, oy, yr);
  else if (d.kh == 5 && d.kw == 5)
    depthwise_row_avx512<5, 5, SIGNS, T>(d, b, oy, yr);
  else
    depthwise_row_avx512<0, 0, SIGNS, T>(d, b, oy, yr);
}

bool index_inside(int64_t i, int64_t size) { return 0 <= i && i < size; }

// Whether a 3 x 3 or 5 x 5 kernel with padding runs faster on zero-padded tap values, taken
// once (every pixel on the row kernel's unrolled path, padded taps included), than on the
// input itself (pixels with a tap in the padding on the checked path, each tap inside costing
// about three unrolled ones; every load taking its sign or converting its level again).
// Small maps are mostly border: 7 x 7 at 3 x 3, 14 x 14 at a 5 x 5 dilated by 2 (2-2.5x
// faster padded, scratch timings); but where most taps fall in the padding (4 x 4 at that
// 5 x 5) padding costs more. Past a cache-sized bound on the padded values (2 MB) the extra
// pass over memory weighs in: at 28 x 28 to 112 x 112 (batch 8) padding timed from 1.4x faster
// to 1.9x slower, so such maps are not padded.
bool depthwise_pads_first(const Depthwise& d, int64_t batch) {
  if (!((d.kh == 3 && d.kw == 3) || (d.kh == 5 && d.kw == 5)) || (d.ph == 0 && d.pw == 0))
    return false;
  const int64_t padded_bytes = 4 * batch * (d.h + 2 * d.ph) * (d.w + 2 * d.pw) * d.ch;
  if (padded_bytes > (int64_t{2} << 20)) return false;
  // taps inside the image, and output rows / columns with all of their taps inside
  int64_t row_taps = 0, col_taps = 0, full_rows = 0, full_cols = 0;
  for (int64_t oy = 0; oy < d.oh; ++oy) {
    int64_t n = 0;
    for (int64_t i = 0; i < d.kh; ++i) n += index_inside(oy * d.sh - d.ph + i * d.dh, d.h);
    row_taps += n, full_rows += n == d.kh;
  }
  for (int64_t ox = 0; ox < d.ow; ++ox) {
    int64_t n = 0;
    for (int64_t j = 0; j < d.kw; ++j) n += index_inside(ox * d.sw - d.pw + j * d.dw, d.w);
    col_taps += n, full_cols += n == d.kw;
  }
  const int64_t taps = d.kh * d.kw, inner = full_rows * full_cols * taps;
  const int64_t as_is = inner + 3 * (row_taps * col_taps - inner);
  const int64_t padded = d.oh * d.ow * taps + (d.h + 2 * d.ph) * (d.w + 2 * d.pw);
  return padded < as_is;
}

// Row r of the padded tap values (B * (H + 2 PH) rows of (W + 2 PW) x C floats): what the
// row kernel multiplies at each tap (the sign, or the level as float), 0 in the padding (a
// padded tap adds 0).
template <bool SIGNS, typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void depthwise_pad_row_avx512(
    const Depthwise& d, int64_t r, float* dst) {
  const int64_t hp = d.h + 2 * d.ph, wp = d.w + 2 * d.pw, ch = d.ch;
  const int64_t b = r / hp, iy = r % hp - d.ph;
  if (iy < 0 || iy >= d.h) {
    std::fill(dst, dst + wp * ch, 0.f);
    return;
  }
  std::fill(dst, dst + d.pw * ch, 0.f);
  std::fill(dst + (d.pw + d.w) * ch, dst + wp * ch, 0.f);
  const T* src = static_cast<const T*>(d.x) + (b * d.h + iy) * d.w * ch;
  float* out = dst + d.pw * ch;
  for (int64_t k = 0; k < ch; k += 16) {
    const __mmask16 m = lanes_mask(ch, k);
    const __m512 vt = d.t ? _mm512_maskz_loadu_ps(m, d.t + k) : _mm512_setzero_ps();
    for (int64_t ix = 0; ix < d.w; ++ix)
      _mm512_mask_storeu_ps(out + ix * ch + k, m,
                            depthwise_input<SIGNS, T>(src + ix * ch + k, m, vt));
  }
}

template <typename T>
void depthwise_row_portable(const Depthwise& d, int64_t b, int64_t oy, float* yr) {
  int64_t pixel[kMaxDepthwiseTaps], tap[kMaxDepthwiseTaps];
  const T* xb = static_cast<const T*>(d.x) + b * d.h * d.w * d.ch;
  for (int64_t ox = 0; ox < d.ow; ++ox) {
    const float* ws = d.ws + (d.rows == 1 ? 0 : oy * d.ow + ox) * d.ch;
    float* y = yr + ox * d.ch;
    const int64_t n = taps_inside(d, oy, ox, pixel, tap);
    for (int64_t k = 0; k < d.ch; ++k) {
      float acc = 0.f;
      for (int64_t q = 0; q < n; ++q) {
        float v = static_cast<float>(xb[pixel[q] * d.ch + k]);
        if (d.signs) v = (d.t ? v - d.t[k] : v) >= 0.f ? 1.f : -1.f;
        acc += v * d.wt[tap[q] * d.ch + k];
      }
      y[k] = (acc + d.c * ws[k]) * d.sc[k] + d.bi[k];
    }
  }
}

// x (B, H, W, C) float32 (or int8 levels), weight (KH * KW, C) float32 integers, weight_sum
// (R, C), scale and bias (C) -> (B, OH, OW, C) float32; see above. With `levels` = (act_lo,
// act_hi, s, z, qn, qp, offset), for an output that feeds the next integer layer through a clamp
// activation (act_lo <= y <= act_hi, NaN kept): (B, OH, OW, C) int8 levels round(clamp(y / s +
// z, qn, qp)) - offset of the clamped output, as int_epilogue_levels gives them after a GEMM (a
// row's floats in a buffer, never written out).
torch::Tensor depthwise_conv2d(torch::Tensor x, torch::Tensor weight, int64_t kh, int64_t kw,
                               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                               int64_t dw, bool signs, c10::optional<torch::Tensor> threshold,
                               double c, torch::Tensor weight_sum, torch::Tensor scale,
                               torch::Tensor bias, c10::optional<std::vector<double>> levels) {
  check_cpu({x, weight, weight_sum, scale, bias}, "depthwise_conv2d");
  TORCH_CHECK(!levels ||
                  (levels->size() == 7 && (*levels)[2] > 0 && (*levels)[4] <= (*levels)[5]),
              "depthwise_conv2d: levels must be (act_lo, act_hi, s > 0, z, qn <= qp, offset)");
  const bool bytes = x.scalar_type() == torch::kInt8;
  TORCH_CHECK(x.dim() == 4 && (bytes || x.scalar_type() == torch::kFloat32),
              "depthwise_conv2d: x must be (B, H, W, C) float32 or int8, got ", x.sizes(), " ",
              x.dtype());
  TORCH_CHECK(!(signs && bytes), "depthwise_conv2d: signs are taken of float32 inputs");
  const int64_t ch = x.size(3);
  TORCH_CHECK(kh > 0 && kw > 0 && sh > 0 && sw > 0 && ph >= 0 && pw >= 0 && dh > 0 && dw > 0,
              "depthwise_conv2d: kernel, stride and dilation must be positive, padding >= 0");
  TORCH_CHECK(kh * kw <= kMaxDepthwiseTaps, "depthwise_conv2d: at most ", kMaxDepthwiseTaps,
              " taps, got ", kh, " x ", kw);
  TORCH_CHECK(weight.scalar_type() == torch::kFloat32 && weight.dim() == 2 &&
                  weight.size(0) == kh * kw && weight.size(1) == ch,
              "depthwise_conv2d: weight must be (KH * KW, C) = (", kh * kw, ", ", ch,
              ") float32, got ", weight.sizes());
  TORCH_CHECK(weight_sum.scalar_type() == torch::kFloat32 && weight_sum.dim() == 2 &&
                  weight_sum.size(1) == ch && scale.numel() == ch && bias.numel() == ch &&
                  scale.scalar_type() == torch::kFloat32 && bias.scalar_type() == torch::kFloat32,
              "depthwise_conv2d: weight_sum must be (R, C) and scale, bias (C) float32 for C = ",
              ch);
  if (threshold) {
    check_cpu({*threshold}, "depthwise_conv2d");
    TORCH_CHECK(signs && threshold->scalar_type() == torch::kFloat32 && threshold->numel() == ch,
                "depthwise_conv2d: a threshold (C float32) goes with signs");
  }
  x = x.contiguous();
  weight = weight.contiguous();
  weight_sum = weight_sum.contiguous();
  scale = scale.contiguous();
  bias = bias.contiguous();
  torch::Tensor t = threshold ? threshold->contiguous() : torch::Tensor();
  const int64_t b = x.size(0), h = x.size(1), w = x.size(2);
  const int64_t oh = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
  const int64_t ow = (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
  TORCH_CHECK(oh > 0 && ow > 0, "depthwise_conv2d: the kernel does not fit the (padded) input");
  const int64_t rows = weight_sum.size(0);
  TORCH_CHECK(rows == 1 || rows == oh * ow, "depthwise_conv2d: weight_sum needs 1 or OH * OW = ",
              oh * ow, " rows, got ", rows);
  auto out = torch::empty({b, oh, ow, ch},
                          x.options().dtype(levels ? torch::kInt8 : torch::kFloat32));
  Depthwise d{x.data_ptr(), weight.data_ptr<float>(),
              threshold ? t.data_ptr<float>() : nullptr, weight_sum.data_ptr<float>(),
              scale.data_ptr<float>(), bias.data_ptr<float>(), signs,
              static_cast<float>(c), rows, h, w, ch, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw};
  torch::Tensor padded;
  if (use_avx512() && depthwise_pads_first(d, b)) {
    // the tap values (signs, levels as float) once, zero-padded: every pixel then goes on the
    // row kernel's unrolled path, with the same products (a padded tap adds 0 either way)
    const int64_t hp = h + 2 * ph, wp = w + 2 * pw;
    padded = torch::empty({b, hp, wp, ch}, x.options().dtype(torch::kFloat32));
    float* dst = padded.data_ptr<float>();
    at::parallel_for(0, b * hp, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (signs)
          depthwise_pad_row_avx512<true, float>(d, r, dst + r * wp * ch);
        else if (bytes)
          depthwise_pad_row_avx512<false, int8_t>(d, r, dst + r * wp * ch);
        else
          depthwise_pad_row_avx512<false, float>(d, r, dst + r * wp * ch);
      }
    });
    d.x = dst, d.t = nullptr, d.signs = false, d.h = hp, d.w = wp, d.ph = 0, d.pw = 0;
  }
  const bool tap_signs = d.signs, tap_bytes = bytes && !padded.defined();
  at::parallel_for(0, b * oh, 1, [&](int64_t begin, int64_t end) {
    // with levels, each output row's floats go to a buffer of this task's, then to int8
    std::vector<float> buffer(levels ? ow * ch : 0);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t bi = row / oh, oy = row % oh;
      float* yr = levels ? buffer.data() : out.data_ptr<float>() + row * ow * ch;
      if (use_avx512() && tap_signs)
        depthwise_row_dispatch<true, float>(d, bi, oy, yr);
      else if (use_avx512() && tap_bytes)
        depthwise_row_dispatch<false, int8_t>(d, bi, oy, yr);
      else if (use_avx512())
        depthwise_row_dispatch<false, float>(d, bi, oy, yr);
      else if (bytes)
        depthwise_row_portable<int8_t>(d, bi, oy, yr);
      else
        depthwise_row_portable<float>(d, bi, oy, yr);
      if (levels) {
        const auto& l = *levels;
        clamp_levels_row(yr, out.data_ptr<int8_t>() + row * ow * ch, ow * ch,
                         static_cast<float>(l[0]), static_cast<float>(l[1]),
                         static_cast<float>(l[2]), static_cast<float>(l[3]),
                         static_cast<float>(l[4]), static_cast<float>(l[5]),
                         static_cast<float>(l[6]));
      }
    }
  });
  return out;
}

// A per-tensor LSQ+ input's levels round(clamp(x / s + z, qn, qp)) as float and its
// fake-quantized values (levels - z) * s, in one pass with the quantizer's own float operations
// (IEEE division, addition, clamp, round half to even, subtraction, multiplication), so both
// are equal to the fake quantizer's.
std::vector<torch::Tensor> lsq_input_forward(torch::Tensor x, double scale, double zero_point,
                                             int64_t qn, int64_t qp) {
  check_cpu({x}, "lsq_input_forward");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, "lsq_input_forward: x must be float32");
  x = x.contiguous();
  auto levels = torch::empty_like(x), fake = torch::empty_like(x);
  const float* src = x.data_ptr<float>();
  float *dst = levels.data_ptr<float>(), *fk = fake.data_ptr<float>();
  const float s = static_cast<float>(scale), z = static_cast<float>(zero_point);
  const float lo = static_cast<float>(qn), hi = static_cast<float>(qp);
  at::parallel_for(0, x.numel(), 16384, [&](int64_t begin, int64_t end) {
    if (use_avx512())
      begin += levels_avx512(src + begin, dst + begin, fk + begin, end - begin, s, z, lo, hi);
    for (int64_t i = begin; i < end; ++i) {
      dst[i] = std::nearbyint(std::min(std::max(src[i] / s + z, lo), hi));
      fk[i] = (dst[i] - z) * s;
    }
  });
  return {levels, fake};
}

// An LSQ weight (N, K) with one step per row (scale (N)) or for all (scale (1)): its levels
// round(clamp(w / s, qn, qp)), the fake-quantized weight levels * s (the quantizer's own float
// operations) and the levels' sum per row, in one pass.
std::vector<torch::Tensor> lsq_weight_forward(torch::Tensor w, torch::Tensor scale, int64_t qn,
                                              int64_t qp) {
  check_cpu({w, scale}, "lsq_weight_forward");
  check_weight_rows(w, scale, "lsq_weight_forward");
  const int64_t n = w.size(0), k = w.size(1);
  w = w.contiguous();
  scale = scale.contiguous();
  auto levels = torch::empty_like(w), fake = torch::empty_like(w);
  auto level_sum = torch::empty({n}, w.options());
  const float *src = w.data_ptr<float>(), *sc = scale.data_ptr<float>();
  float *lv = levels.data_ptr<float>(), *fk = fake.data_ptr<float>();
  float* ls = level_sum.data_ptr<float>();
  const float lo = static_cast<float>(qn), hi = static_cast<float>(qp);
  const bool per_row = scale.numel() == n && n > 1;
  at::parallel_for(0, n, 8, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float s = sc[per_row ? r : 0];
      const float* wr = src + r * k;
      float *lr = lv + r * k, *fr = fk + r * k;
      float sum = 0.0f;
      int64_t i = use_avx512() ? weight_row_avx512(wr, lr, fr, k, s, lo, hi, sum) : 0;
      for (; i < k; ++i) {
        lr[i] = std::nearbyint(std::min(std::max(wr[i] / s, lo), hi));
        fr[i] = lr[i] * s;
        sum += lr[i];
      }
      ls[r] = sum;
    }
  });
  return {levels, fake, level_sum};
}

// LSQ / LSQ+ fake quantization of a dense x read in memory order as (outer, channels, inner),
// with a step (and a zero point, or None for LSQ) per channel: one pass, the eager quantizer's
// float operations, so the values are equal. The output has x's strides.
torch::Tensor fake_quantize_groups(torch::Tensor x, torch::Tensor scale,
                                   c10::optional<torch::Tensor> zero, int64_t qn, int64_t qp,
                                   int64_t outer, int64_t channels, int64_t inner) {
  const Groups groups = check_groups(x, scale, zero, outer, channels, inner,
                                     "fake_quantize_groups");
  auto out = torch::empty_like(x);
  const float *src = x.data_ptr<float>(), *sc = scale.data_ptr<float>();
  const float* zp = zero ? zero->data_ptr<float>() : nullptr;
  float* dst = out.data_ptr<float>();
  const float lo = static_cast<float>(qn), hi = static_cast<float>(qp);
  if (inner == 1 && channels > 1) {  // a step per element of each row: rows of `channels`
    at::parallel_for(0, outer, row_grain(channels), [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {
        const int64_t at = r * channels;
        if (zp)
          fake_quantize_row<true>(src + at, dst + at, channels, sc, zp, lo, hi);
        else
          fake_quantize_row<false>(src + at, dst + at, channels, sc, zp, lo, hi);
      }
    });
    return out;
  }
  at::parallel_for(0, groups.tasks(), groups.grain(), [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) {
      int64_t begin, length, c;
      groups.task(t, begin, length, c);
      if (zp)
        fake_quantize_range<true>(src + begin, dst + begin, length, sc[c], zp[c], lo, hi);
      else
        fake_quantize_range<false>(src + begin, dst + begin, length, sc[c], 0.0f, lo, hi);
    }
  });
  return out;
}

// Its backward in one pass over grad and x: grad_x = grad where qn <= t <= qp (t = x / s + z),
// else 0; the step's gradient factor * (sum grad * (round(t) - t) inside plus grad * (bound - z)
// outside) and the zero point's -factor * s * (sum grad outside), per channel (summed in
// float64), each shaped like its parameter (the zero point's undefined without one).
// in_place: grad_x is written over grad where grad is float32 with x's strides (a caller that
// alone holds grad: a fused layer's own product gradient).
std::vector<torch::Tensor> fake_quantize_groups_backward(
    torch::Tensor grad, torch::Tensor x, torch::Tensor scale, c10::optional<torch::Tensor> zero,
    int64_t qn, int64_t qp, int64_t outer, int64_t channels, int64_t inner, double factor,
    bool in_place) {
  const auto scale_shape = scale.sizes().vec();
  const Groups groups = check_groups(x, scale, zero, outer, channels, inner,
                                     "fake_quantize_groups_backward");
  check_cpu({grad}, "fake_quantize_groups_backward");
  TORCH_CHECK(grad.sizes() == x.sizes(),
              "fake_quantize_groups_backward: grad must have x's shape");
  const bool same_layout = grad.scalar_type() == torch::kFloat32 && grad.strides() == x.strides();
  if (!same_layout) grad = torch::empty_like(x).copy_(grad);  // the layout the pass reads x in
  auto grad_x = in_place ? grad : torch::empty_like(x);  // a copy made above is ours to write
  const float *g = grad.data_ptr<float>(), *src = x.data_ptr<float>();
  const float* sc = scale.data_ptr<float>();
  const float* zp = zero ? zero->data_ptr<float>() : nullptr;
  float* gx = grad_x.data_ptr<float>();
  const float lo = static_cast<float>(qn), hi = static_cast<float>(qp);
  std::vector<double> step_sum(channels, 0.0), outside_sum(channels, 0.0);
  if (inner == 1 && channels > 1) {
    // rows of `channels` with a step per element: per block of rows, float sums per channel
    // (in a fixed block order, so the result does not depend on the threads); each block
    // zeroes its own sums, and the blocks' sums are added per channel in parallel (wide rows
    // make many blocks: 64 x 2048 sums for 512 rows of 2048)
    const int64_t block = row_grain(channels), blocks = (outer + block - 1) / block;
    std::unique_ptr<float[]> step(new float[blocks * channels]),
        outside(new float[blocks * channels]);
    at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
      for (int64_t b = first; b < last; ++b) {
        float *sb = step.get() + b * channels, *ob = outside.get() + b * channels;
        std::fill(sb, sb + channels, 0.0f);
        std::fill(ob, ob + channels, 0.0f);
        for (int64_t r = b * block; r < std::min(outer, (b + 1) * block); ++r)
          lsq_backward_row(g + r * channels, src + r * channels, gx + r * channels, channels, sc,
                           zp, lo, hi, sb, ob);
      }
    });
    at::parallel_for(0, channels, 1024, [&](int64_t c0, int64_t c1) {
      for (int64_t b = 0; b < blocks; ++b)
        for (int64_t c = c0; c < c1; ++c) {
          step_sum[c] += step[b * channels + c];
          outside_sum[c] += outside[b * channels + c];
        }
    });
  } else {
    const int64_t tasks = groups.tasks();
    std::vector<double> step(tasks, 0.0), outside(tasks, 0.0);
    at::parallel_for(0, tasks, groups.grain(), [&](int64_t first, int64_t last) {
      for (int64_t t = first; t < last; ++t) {
        int64_t begin, length, c;
        groups.task(t, begin, length, c);
        lsq_backward_range(g + begin, src + begin, gx + begin, length, sc[c],
                           zp ? zp[c] : 0.0f, lo, hi, step[t], outside[t]);
      }
    });
    for (int64_t t = 0; t < tasks; ++t) {
      int64_t begin, length, c;
      groups.task(t, begin, length, c);
      step_sum[c] += step[t];
      outside_sum[c] += outside[t];
    }
  }
  auto grad_s = torch::empty({channels}, x.options());
  float* gs = grad_s.data_ptr<float>();
  for (int64_t c = 0; c < channels; ++c) gs[c] = static_cast<float>(step_sum[c] * factor);
  torch::Tensor grad_z;
  if (zp) {
    grad_z = torch::empty({channels}, x.options());
    float* gz = grad_z.data_ptr<float>();
    for (int64_t c = 0; c < channels; ++c)
      gz[c] = static_cast<float>(-outside_sum[c] * factor) * sc[c];
    grad_z = grad_z.view(scale_shape);
  }
  return {grad_x, grad_s.view(scale_shape), grad_z};
}

// x (B, H, W, C) int8 or uint8 channels last -> (B * OH * OW, KH * KW * C) columns of its
// type (tap-major, then channel), the byte pad_value where a tap falls in the padding.
torch::Tensor im2col_int8(torch::Tensor x, int64_t kh, int64_t kw, int64_t stride, int64_t pad,
                          int64_t dilation, int64_t pad_value) {
  check_cpu({x}, "im2col_int8");
  TORCH_CHECK(x.element_size() == 1 && x.dim() == 4, "im2col_int8: x must be (B, H, W, C) of "
              "bytes, got ", x.sizes(), " ", x.dtype());
  x = x.contiguous();
  const int64_t b = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3);
  const int64_t oh = (h + 2 * pad - dilation * (kh - 1) - 1) / stride + 1;
  const int64_t ow = (w + 2 * pad - dilation * (kw - 1) - 1) / stride + 1;
  auto out = torch::empty({b * oh * ow, kh * kw * c}, x.options());
  const auto* src = static_cast<const uint8_t*>(x.data_ptr());
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  const int fill = static_cast<int>(pad_value & 0xff);
  at::parallel_for(0, b * oh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t bi = row / oh, oy = row % oh;
      for (int64_t ox = 0; ox < ow; ++ox) {
        uint8_t* d = dst + ((row * ow) + ox) * kh * kw * c;
        for (int64_t i = 0; i < kh; ++i) {
          const int64_t iy = oy * stride - pad + i * dilation;
          for (int64_t j = 0; j < kw; ++j, d += c) {
            const int64_t ix = ox * stride - pad + j * dilation;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
              std::memset(d, fill, c);
            else
              std::memcpy(d, src + ((bi * h + iy) * w + ix) * c, c);
          }
        }
      }
    }
  });
  return out;
}

bool has_avx512_popcount() { return use_avx512(); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pack_signs", &pack_signs, "sign bits of a (M, K) float tensor (minus a threshold per "
        "column), 64 per int64 word", py::arg("x"), py::arg("threshold") = py::none());
  m.def("pack_head_signs", &pack_head_signs,
        "sign words of x / s + z per head of a (B, H, R, K) tensor");
  m.def("pack_head_signs_transposed", &pack_head_signs_transposed,
        "sign words of (B, H, R, K) per head packed along R (the transposed operand)");
  m.def("layer_norm_head_signs", &layer_norm_head_signs,
        "sign words of LayerNorm(x) / s + z per head, as torch rounds them (K <= 64)");
  m.def("pack_patches", &pack_patches,
        "sign words of the non-overlapping patches of (B, C, H, W) (minus a threshold per channel)");
  m.def("binary_linear", &binary_linear,
        "XNOR-popcount GEMM on packed signs (or on float32 rows packed in the same pass)",
        py::arg("a"), py::arg("wt"), py::arg("k"), py::arg("scale"), py::arg("bias"),
        py::arg("n"), py::arg("raw"), py::arg("threshold") = py::none());
  m.def("binary_linear_signs", &binary_linear_signs,
        "XNOR-popcount GEMM whose outputs are sign words through two dot thresholds",
        py::arg("a"), py::arg("wt"), py::arg("k"), py::arg("below"), py::arg("above"),
        py::arg("n"), py::arg("threshold") = py::none());
  m.def("binary_affine_values", &binary_affine_values, "fma(dot, scale, bias) per channel");
  m.def("binary_attention_product", &binary_attention_product,
        "Bi-ViT's binary attention product with its zero-point corrections, in one pass");
  m.def("binary_attention_softmax_signs", &binary_attention_softmax_signs,
        "the sign words of Bi-ViT's binarized softmax(q k^T) straight from q's and k's sign "
        "words, with the rows left to torch");
  m.def("softmax_signs", &softmax_signs,
        "the sign words of a binarized softmax of (G, M, N) logits, with the rows left to torch");
  m.def("binary_conv2d", &binary_conv2d, "XNOR-popcount direct convolution on packed signs");
  m.def("quantize_int8", &quantize_int8, "round(clamp(x / s + z)) - offset as int8, in x's layout");
  m.def("quantize_int8_channels_last", &quantize_int8_channels_last,
        "quantize_int8 of (B, C, H, W) float32 with the levels in channels-last memory");
  m.def("float_signs", &float_signs, "+1 where x >= 0, else -1, as float, in x's layout");
  m.def("quantize_float_levels", &quantize_float_levels,
        "round(clamp(x / s + z)) - offset as float32, in x's layout");
  m.def("int_epilogue_levels", &int_epilogue_levels,
        "the integer epilogue, a clamp activation and the next layer's int8 levels in one pass");
  m.def("depthwise_conv2d", &depthwise_conv2d,
        "depthwise convolution of channels-last integers (or signs) and the integer epilogue "
        "(or, with levels, the next layer's int8 levels of its clamped output)",
        py::arg("x"), py::arg("weight"), py::arg("kh"), py::arg("kw"), py::arg("sh"),
        py::arg("sw"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
        py::arg("signs"), py::arg("threshold"), py::arg("c"), py::arg("weight_sum"),
        py::arg("scale"), py::arg("bias"), py::arg("levels") = py::none());
  m.def("int_epilogue", &int_epilogue,
        "(acc + c * weight_sum) * scale + bias on int32 or exact float32 sums, in a new tensor "
        "or in acc's memory");
  m.def("lsq_input_forward", &lsq_input_forward,
        "LSQ+ input levels round(clamp(x / s + z)) and fake-quantized values in one pass");
  m.def("lsq_weight_forward", &lsq_weight_forward,
        "LSQ weight levels, fake-quantized weight and level sums in one pass");
  m.def("fake_quantize_groups", &fake_quantize_groups,
        "LSQ / LSQ+ fake quantization, a step per channel, in one pass");
  m.def("fake_quantize_groups_backward", &fake_quantize_groups_backward,
        "its input gradient and the step / zero-point sums per channel in one pass (with "
        "in_place, the input gradient written over grad)",
        py::arg("grad"), py::arg("x"), py::arg("scale"), py::arg("zero"), py::arg("qn"),
        py::arg("qp"), py::arg("outer"), py::arg("channels"), py::arg("inner"),
        py::arg("factor"), py::arg("in_place") = false);
  m.def("im2col_int8", &im2col_int8, "int8 / uint8 columns of a channels-last input, padded "
        "with a given byte");
  m.def("has_avx512_popcount", &has_avx512_popcount, "whether the AVX-512 path runs");
}
