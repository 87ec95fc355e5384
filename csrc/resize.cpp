#include "resize.h"
#include "simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace ossframe {
namespace {

constexpr int kWeightBits = 14;  // filter weights are Q14
constexpr int kOne = 1 << kWeightBits;
constexpr int kMidBits = 7;  // fraction bits of the 16-bit rows between the two passes

inline void put(uint8_t* p, int32_t v) {
    *p = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}
inline void put(int16_t* p, int32_t v) {
    *p = static_cast<int16_t>(v < -32768 ? -32768 : v > 32767 ? 32767 : v);
}

// Two Q14 weights as the int32 that _mm_madd_epi16 multiplies against (first one low).
inline int32_t weight_pair(const int16_t* w) {
    return static_cast<int32_t>(static_cast<uint16_t>(w[0])) |
           static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(w[1])) << 16);
}

// Rounds non-negative weights to Q14 so that they sum to exactly kOne (the rounding error is
// given to the largest weight), which keeps flat areas exact.
void quantise(const double* w, int n, int16_t* out) {
    double total = 0;
    for (int k = 0; k < n; ++k) total += w[k];
    int sum = 0, largest = 0;
    for (int k = 0; k < n; ++k) {
        out[k] = static_cast<int16_t>(std::lround(w[k] / total * kOne));
        sum += out[k];
        if (out[k] > out[largest]) largest = k;
    }
    out[largest] = static_cast<int16_t>(out[largest] + (kOne - sum));
}

// ---------------------------------------------------------------------------------------------
// The passes. Each has a scalar version, which also finishes the tail the SIMD one leaves.
//
// Vertical from 8-bit rows (vertical first): out[i] = bias + sum_k rows[k][i] * w[k] / 2^7, with
// 7 fraction bits. Up to kFastTaps taps each term is floor(rows[k][i] * (2 w[k]) / 2^8) (one
// _mm_mulhi_epu16 each; the caller adds taps / 2 to `bias` against the truncation); above that
// the sum is exact and rounded.
constexpr int kFastTaps = 8;

void vblend_u8_scalar(const uint8_t* const* rows, const int16_t* w, int n, int32_t bias, int i0,
                      int i1, int16_t* out) {
    for (ptrdiff_t i = i0; i < i1; ++i) {
        int32_t acc = 0;
        if (n <= kFastTaps) {
            for (int k = 0; k < n; ++k) acc += (static_cast<int32_t>(rows[k][i]) * (2 * w[k])) >> 8;
        } else {
            for (int k = 0; k < n; ++k) acc += static_cast<int32_t>(rows[k][i]) * w[k];
            acc = (acc + (1 << (kWeightBits - kMidBits - 1))) >> (kWeightBits - kMidBits);
        }
        out[i] = static_cast<int16_t>(acc + bias);
    }
}

// Vertical from 16-bit rows (horizontal first): out[i] = (rnd + sum_k rows[k][i] * w[k]) >> shift.
template <class Out>
void vblend_i16_scalar(const int16_t* const* rows, const int16_t* w, int n, int32_t rnd, int shift,
                       int i0, int i1, Out* out) {
    for (ptrdiff_t i = i0; i < i1; ++i) {
        int32_t acc = rnd;
        for (int k = 0; k < n; ++k) acc += static_cast<int32_t>(rows[k][i]) * w[k];
        put(out + i, acc >> shift);
    }
}

// Horizontal: out[d * C + c] = (rnd + sum_k in[ofs[d] + k * C + c] * w[d * taps + k]) >> shift.
template <class Out>
void hblend_scalar(const int16_t* in, const int32_t* ofs, const int16_t* w, int taps, int C,
                   int32_t rnd, int shift, int d0, int d1, Out* out) {
    for (ptrdiff_t d = d0; d < d1; ++d) {
        const int16_t* base = in + ofs[d];
        const int16_t* wd = w + static_cast<ptrdiff_t>(d) * taps;
        for (int c = 0; c < C; ++c) {
            int32_t acc = rnd;
            for (int k = 0; k < taps; ++k) acc += static_cast<int32_t>(base[k * C + c]) * wd[k];
            put(out + static_cast<ptrdiff_t>(d) * C + c, acc >> shift);
        }
    }
}

#ifdef __SSE2__

inline __m128i loadu(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
// Weight tables: std::vector storage is 16-byte aligned (operator new), and every kernel reads
// them at multiples of 8 elements, so the loads are aligned and fold into pmaddwd.
static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= 16, "weight tables need 16-byte alignment");
inline __m128i loadw(const int16_t* p) {
    return _mm_load_si128(static_cast<const __m128i*>(static_cast<const void*>(p)));
}
inline void storeu(void* p, __m128i v) { _mm_storeu_si128(static_cast<__m128i*>(p), v); }
inline void storel(void* p, __m128i v) { _mm_storel_epi64(static_cast<__m128i*>(p), v); }
inline __m128i load2(const int16_t* p) {
    int32_t v;
    std::memcpy(&v, p, sizeof v);
    return _mm_cvtsi32_si128(v);
}
inline __m128i load4(const int16_t* p) {
    return _mm_loadl_epi64(static_cast<const __m128i*>(static_cast<const void*>(p)));
}
// Four elements at p, then four at q.
inline __m128i load4x2(const int16_t* p, const int16_t* q) {
    const __m128 lo = _mm_castsi128_ps(load4(p));
    const __m64* hi = static_cast<const __m64*>(static_cast<const void*>(q));
    return _mm_castps_si128(_mm_loadh_pi(lo, hi));
}
inline void store32(void* p, __m128i v) {
    const int32_t x = _mm_cvtsi128_si32(v);
    std::memcpy(p, &x, sizeof x);
}

// (acc + rnd) >> sh on int32 lanes; Shifter: acc >> sh, for sums that already hold the rounding.
struct Rounder {
    __m128i rnd, sh;
    Rounder(int32_t r, int shift) : rnd(_mm_set1_epi32(r)), sh(_mm_cvtsi32_si128(shift)) {}
    __m128i operator()(__m128i acc) const { return _mm_sra_epi32(_mm_add_epi32(acc, rnd), sh); }
};
struct Shifter {
    __m128i sh;
    explicit Shifter(int shift) : sh(_mm_cvtsi32_si128(shift)) {}
    __m128i operator()(__m128i acc) const { return _mm_sra_epi32(acc, sh); }
};

// Stores 8 signed 16-bit values (saturated to the output type).
inline void store8(uint8_t* p, __m128i v) { storel(p, _mm_packus_epi16(v, v)); }
inline void store8(int16_t* p, __m128i v) { storeu(p, v); }

// Sums the four int32 lanes of each of a0..a3: returns [sum a0, sum a1, sum a2, sum a3].
inline __m128i sum4(__m128i a0, __m128i a1, __m128i a2, __m128i a3) {
    const __m128i t0 = _mm_add_epi32(_mm_unpacklo_epi32(a0, a1), _mm_unpackhi_epi32(a0, a1));
    const __m128i t1 = _mm_add_epi32(_mm_unpacklo_epi32(a2, a3), _mm_unpackhi_epi32(a2, a3));
    return _mm_add_epi32(_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1));
}
// Sums adjacent int32 lane pairs: [a0+a1, a2+a3, b0+b1, b2+b3].
inline __m128i sum_pairs(__m128i a, __m128i b) {
    const __m128 fa = _mm_castsi128_ps(a), fb = _mm_castsi128_ps(b);
    const __m128i even = _mm_castps_si128(_mm_shuffle_ps(fa, fb, _MM_SHUFFLE(2, 0, 2, 0)));
    const __m128i odd = _mm_castps_si128(_mm_shuffle_ps(fa, fb, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm_add_epi32(even, odd);
}


// The fast vertical pass with N taps known at compile time (N <= kFastTaps), or n at run time.
template <int N>
int vblend_u8_fast(const uint8_t* const* rows, const int16_t* w, int n, int32_t bias, int len,
                   int16_t* out) {
    if (N > 0) n = N;
    const __m128i zero = _mm_setzero_si128();
    const __m128i b = _mm_set1_epi16(static_cast<int16_t>(bias));
    __m128i wv[kFastTaps];
    const uint8_t* r[kFastTaps];
    for (int k = 0; k < n; ++k) {
        wv[k] = _mm_set1_epi16(static_cast<int16_t>(2 * w[k]));
        r[k] = rows[k];
    }
    ptrdiff_t i = 0;
    for (; i + 16 <= len; i += 16) {
        __m128i lo = b, hi = b;
        for (int k = 0; k < n; ++k) {
            const __m128i x = loadu(r[k] + i);
            lo = _mm_add_epi16(lo, _mm_mulhi_epu16(_mm_unpacklo_epi8(zero, x), wv[k]));
            hi = _mm_add_epi16(hi, _mm_mulhi_epu16(_mm_unpackhi_epi8(zero, x), wv[k]));
        }
        storeu(out + i, lo);
        storeu(out + i + 8, hi);
    }
    return static_cast<int>(i);
}

int vblend_u8_simd(const uint8_t* const* rows, const int16_t* w, int n, int32_t bias, int len,
                   int16_t* out) {
    switch (n) {
        case 1:
            return vblend_u8_fast<1>(rows, w, n, bias, len, out);
        case 2:
            return vblend_u8_fast<2>(rows, w, n, bias, len, out);
        case 3:
            return vblend_u8_fast<3>(rows, w, n, bias, len, out);
        case 4:
            return vblend_u8_fast<4>(rows, w, n, bias, len, out);
        default:
            if (n <= kFastTaps) return vblend_u8_fast<0>(rows, w, n, bias, len, out);
    }
    const __m128i zero = _mm_setzero_si128();
    ptrdiff_t i = 0;
    const Rounder round(1 << (kWeightBits - kMidBits - 1), kWeightBits - kMidBits);
    const __m128i b = _mm_set1_epi16(static_cast<int16_t>(bias));
    for (; i + 16 <= len; i += 16) {
        __m128i s0 = zero, s1 = zero, s2 = zero, s3 = zero;
        for (int k = 0; k < n; k += 2) {
            const bool pair = k + 1 < n;
            const __m128i x0 = loadu(rows[k] + i);
            const __m128i x1 = pair ? loadu(rows[k + 1] + i) : zero;
            const int16_t wk2[2] = {w[k], pair ? w[k + 1] : int16_t{0}};
            const __m128i wk = _mm_set1_epi32(weight_pair(wk2));
            const __m128i lo = _mm_unpacklo_epi8(x0, x1), hi = _mm_unpackhi_epi8(x0, x1);
            s0 = _mm_add_epi32(s0, _mm_madd_epi16(_mm_unpacklo_epi8(lo, zero), wk));
            s1 = _mm_add_epi32(s1, _mm_madd_epi16(_mm_unpackhi_epi8(lo, zero), wk));
            s2 = _mm_add_epi32(s2, _mm_madd_epi16(_mm_unpacklo_epi8(hi, zero), wk));
            s3 = _mm_add_epi32(s3, _mm_madd_epi16(_mm_unpackhi_epi8(hi, zero), wk));
        }
        storeu(out + i, _mm_add_epi16(_mm_packs_epi32(round(s0), round(s1)), b));
        storeu(out + i + 8, _mm_add_epi16(_mm_packs_epi32(round(s2), round(s3)), b));
    }
    return static_cast<int>(i);
}

template <class Out>
int vblend_i16_simd(const int16_t* const* rows, const int16_t* w, int n, int32_t rnd, int shift,
                    int len, Out* out) {
    const Rounder round(rnd, shift);
    ptrdiff_t i = 0;
    if (n == 2) {
        const __m128i wk = _mm_set1_epi32(weight_pair(w));
        const int16_t* r0 = rows[0];
        const int16_t* r1 = rows[1];
        for (; i + 8 <= len; i += 8) {
            const __m128i a = loadu(r0 + i), b = loadu(r1 + i);
            const __m128i s0 = _mm_madd_epi16(_mm_unpacklo_epi16(a, b), wk);
            const __m128i s1 = _mm_madd_epi16(_mm_unpackhi_epi16(a, b), wk);
            store8(out + i, _mm_packs_epi32(round(s0), round(s1)));
        }
        return static_cast<int>(i);
    }
    // Rows in pairs; an odd last row is paired with itself at weight 0.
    const int pairs = (n + 1) / 2;
    std::vector<int32_t> wk(static_cast<size_t>(pairs));
    std::vector<const int16_t*> second(static_cast<size_t>(pairs));
    for (int k = 0; k < pairs; ++k) {
        const bool full = 2 * k + 1 < n;
        const int16_t w2[2] = {w[2 * k], full ? w[2 * k + 1] : int16_t{0}};
        wk[k] = weight_pair(w2);
        second[k] = rows[full ? 2 * k + 1 : 2 * k];
    }
    for (; i + 8 <= len; i += 8) {
        __m128i s0 = _mm_setzero_si128(), s1 = s0;
        for (int k = 0; k < pairs; ++k) {
            const __m128i a = loadu(rows[2 * k] + i), b = loadu(second[k] + i);
            const __m128i wv = _mm_set1_epi32(wk[k]);
            s0 = _mm_add_epi32(s0, _mm_madd_epi16(_mm_unpacklo_epi16(a, b), wv));
            s1 = _mm_add_epi32(s1, _mm_madd_epi16(_mm_unpackhi_epi16(a, b), wv));
        }
        store8(out + i, _mm_packs_epi32(round(s0), round(s1)));
    }
    return static_cast<int>(i);
}

// One channel, two taps: the pair (in[ofs], in[ofs + 1]) is one 32-bit load.
template <class Round, class Out>
int hblend_c1_t2(const int16_t* in, const int32_t* ofs, const int16_t* w, const Round& round,
                 int dw, Out* out) {
    ptrdiff_t d = 0;
    for (; d + 8 <= dw; d += 8) {
        const int32_t* o = ofs + d;
        const auto four = [&](const int32_t* q) {
            return _mm_unpacklo_epi64(_mm_unpacklo_epi32(load2(in + q[0]), load2(in + q[1])),
                                      _mm_unpacklo_epi32(load2(in + q[2]), load2(in + q[3])));
        };
        const __m128i a = four(o), b = four(o + 4);
        const __m128i s0 = _mm_madd_epi16(a, loadw(w + 2 * d));
        const __m128i s1 = _mm_madd_epi16(b, loadw(w + 2 * d + 8));
        store8(out + d, _mm_packs_epi32(round(s0), round(s1)));
    }
    return static_cast<int>(d);
}

// One channel, up to four taps: one 64-bit load per output, two outputs per multiply.
template <class Round, class Out>
int hblend_c1_t4(const int16_t* in, const int32_t* ofs, const int16_t* w, const Round& round,
                 int dw, Out* out) {
    ptrdiff_t d = 0;
    for (; d + 8 <= dw; d += 8) {
        const int32_t* o = ofs + d;
        const int16_t* wd = w + 4 * d;
        __m128i m[4];
        for (int j = 0; j < 4; ++j)
            m[j] = _mm_madd_epi16(load4x2(in + o[2 * j], in + o[2 * j + 1]), loadw(wd + 8 * j));
        const __m128i s0 = round(sum_pairs(m[0], m[1])), s1 = round(sum_pairs(m[2], m[3]));
        store8(out + d, _mm_packs_epi32(s0, s1));
    }
    return static_cast<int>(d);
}

// One channel, a multiple of eight taps.
template <class Round, class Out>
int hblend_c1_t8(const int16_t* in, const int32_t* ofs, const int16_t* w, int taps,
                 const Round& round, int dw, Out* out) {
    ptrdiff_t d = 0;
    for (; d + 8 <= dw; d += 8) {
        __m128i acc[8];
        for (int j = 0; j < 8; ++j) {
            const int16_t* src = in + ofs[d + j];
            const int16_t* wd = w + static_cast<ptrdiff_t>(d + j) * taps;
            __m128i a = _mm_madd_epi16(loadu(src), loadw(wd));
            for (int k = 8; k < taps; k += 8)
                a = _mm_add_epi32(a, _mm_madd_epi16(loadu(src + k), loadw(wd + k)));
            acc[j] = a;
        }
        store8(out + d, _mm_packs_epi32(round(sum4(acc[0], acc[1], acc[2], acc[3])),
                                        round(sum4(acc[4], acc[5], acc[6], acc[7]))));
    }
    return static_cast<int>(d);
}

// Two channels, even taps: the 64-bit load at tap pair k holds a_k b_k a_k+1 b_k+1; reordered to
// a_k a_k+1 b_k b_k+1, two pixels fill one register. wb holds, per output pair (d, d + 1) and tap
// pair k, (w_k, w_k+1, w_k, w_k+1) of d then of d + 1.
template <bool kTwoTaps, class Round, class Out>
int hblend_c2(const int16_t* in, const int32_t* ofs, const int16_t* wb, int taps,
              const Round& round, int dw, Out* out) {
    const int pairs = kTwoTaps ? 1 : taps / 2;
    const auto reorder = [](__m128i x) {
        return _mm_shufflehi_epi16(_mm_shufflelo_epi16(x, _MM_SHUFFLE(3, 1, 2, 0)),
                                   _MM_SHUFFLE(3, 1, 2, 0));
    };
    const auto two = [&](ptrdiff_t d) {  // a_d b_d a_d+1 b_d+1; d is even
        const int16_t* p0 = in + ofs[d];
        const int16_t* p1 = in + ofs[d + 1];
        const int16_t* w = wb + static_cast<ptrdiff_t>(d) * pairs * 4;
        __m128i acc = _mm_madd_epi16(reorder(load4x2(p0, p1)), loadw(w));
        for (int k = 1; k < pairs; ++k) {
            const __m128i x = reorder(load4x2(p0 + 4 * k, p1 + 4 * k));
            acc = _mm_add_epi32(acc, _mm_madd_epi16(x, loadw(w + 8 * k)));
        }
        return round(acc);
    };
    ptrdiff_t d = 0;
    for (; d + 4 <= dw; d += 4) store8(out + 2 * d, _mm_packs_epi32(two(d), two(d + 2)));
    return static_cast<int>(d);
}

// Three or four channels, even taps: one pixel per multiply, its channels in the lanes (4
// elements are loaded per tap, so rows need 4 elements of padding). wb holds (w_k, w_k+1) x 4
// per output and tap pair. 8-bit output is written exactly (4 pixels = 12 or 16 bytes); 16-bit
// output with C = 3 writes one element past each pixel, so it is only for padded internal rows.
template <int C, bool kTwoTaps, class Round, class Out>
int hblend_c34(const int16_t* in, const int32_t* ofs, const int16_t* wb, int taps,
               const Round& round, int dw, Out* out) {
    const int pairs = kTwoTaps ? 1 : taps / 2;
    const auto one = [&](ptrdiff_t d) {
        const int16_t* p = in + ofs[d];
        const int16_t* w = wb + static_cast<ptrdiff_t>(d) * pairs * 8;
        __m128i acc = _mm_madd_epi16(_mm_unpacklo_epi16(load4(p), load4(p + C)), loadw(w));
        for (int k = 1; k < pairs; ++k) {
            const __m128i x = _mm_unpacklo_epi16(load4(p + 2 * k * C), load4(p + (2 * k + 1) * C));
            acc = _mm_add_epi32(acc, _mm_madd_epi16(x, loadw(w + 8 * k)));
        }
        return round(acc);
    };
    ptrdiff_t d = 0;
    if constexpr (sizeof(Out) == 1 && C == 3) {
        // 16 pixels = 48 bytes, written as three 16-byte stores.
        const auto twelve = [&](ptrdiff_t e) {  // pixels e..e+3 in bytes 0..11
            const __m128i v01 = _mm_packs_epi32(one(e), one(e + 1));
            const __m128i v23 = _mm_packs_epi32(one(e + 2), one(e + 3));
            return compact_4x3(_mm_packus_epi16(v01, v23));
        };
        for (; d + 16 <= dw; d += 16) {
            const __m128i p0 = twelve(d), p1 = twelve(d + 4), p2 = twelve(d + 8);
            const __m128i p3 = twelve(d + 12);
            uint8_t* o = reinterpret_cast<uint8_t*>(out) + d * C;
            storeu(o, _mm_or_si128(p0, _mm_slli_si128(p1, 12)));
            storeu(o + 16, _mm_or_si128(_mm_srli_si128(p1, 4), _mm_slli_si128(p2, 8)));
            storeu(o + 32, _mm_or_si128(_mm_srli_si128(p2, 8), _mm_slli_si128(p3, 4)));
        }
    }
    for (; d + 4 <= dw; d += 4) {
        const __m128i v01 = _mm_packs_epi32(one(d), one(d + 1));
        const __m128i v23 = _mm_packs_epi32(one(d + 2), one(d + 3));
        if constexpr (sizeof(Out) == 1) {
            const __m128i bytes = _mm_packus_epi16(v01, v23);
            uint8_t* o = reinterpret_cast<uint8_t*>(out) + d * C;
            if constexpr (C == 4) {
                storeu(o, bytes);
            } else {
                const __m128i packed = compact_4x3(bytes);
                storel(o, packed);
                store32(o + 8, _mm_srli_si128(packed, 8));
            }
        } else if constexpr (C == 4) {
            storeu(out + d * C, v01);
            storeu(out + d * C + 8, v23);
        } else {
            storel(out + d * C, v01);
            storel(out + d * C + C, _mm_srli_si128(v01, 8));
            storel(out + d * C + 2 * C, v23);
            storel(out + d * C + 3 * C, _mm_srli_si128(v23, 8));
        }
    }
    return static_cast<int>(d);
}

#endif  // __SSE2__

void vblend_u8(const uint8_t* const* rows, const int16_t* w, int n, int32_t bias, int len,
               int16_t* out) {
    int i = 0;
#ifdef __SSE2__
    i = vblend_u8_simd(rows, w, n, bias, len, out);
#endif
    vblend_u8_scalar(rows, w, n, bias, i, len, out);
}

template <class Out>
void vblend_i16(const int16_t* const* rows, const int16_t* w, int n, int32_t rnd, int shift,
                int len, Out* out) {
    int i = 0;
#ifdef __SSE2__
    i = vblend_i16_simd(rows, w, n, rnd, shift, len, out);
#endif
    vblend_i16_scalar(rows, w, n, rnd, shift, i, len, out);
}

// The horizontal table of a Resampler, as the kernels read it.
struct HTable {
    const int32_t* ofs;
    const int16_t* w;      // taps per output
    const int16_t* bcast;  // C >= 2: each tap pair's (w_k, w_k+1) repeated (2 or 4 times)
    int taps;
};

#ifdef __SSE2__
// The SIMD kernel for C and taps; returns how many outputs it did (the rest is scalar).
template <class Round, class Out>
int hblend_simd(const int16_t* in, const HTable& t, int C, const Round& round, int dw, Out* out) {
    switch (C) {
        case 1:
            if (t.taps == 2) return hblend_c1_t2(in, t.ofs, t.w, round, dw, out);
            if (t.taps == 4) return hblend_c1_t4(in, t.ofs, t.w, round, dw, out);
            if (t.taps % 8 == 0) return hblend_c1_t8(in, t.ofs, t.w, t.taps, round, dw, out);
            return 0;
        case 2:
            if (t.taps == 2) return hblend_c2<true>(in, t.ofs, t.bcast, 2, round, dw, out);
            return hblend_c2<false>(in, t.ofs, t.bcast, t.taps, round, dw, out);
        case 3:
            if (t.taps == 2) return hblend_c34<3, true>(in, t.ofs, t.bcast, 2, round, dw, out);
            return hblend_c34<3, false>(in, t.ofs, t.bcast, t.taps, round, dw, out);
        default:
            if (t.taps == 2) return hblend_c34<4, true>(in, t.ofs, t.bcast, 2, round, dw, out);
            return hblend_c34<4, false>(in, t.ofs, t.bcast, t.taps, round, dw, out);
    }
}
#endif

// Input rows must be readable (zero padded) for `taps * C + 4` elements past the last output's
// first tap.
template <class Out>
void hblend(const int16_t* in, const HTable& t, int C, int32_t rnd, int shift, int dw, Out* out) {
    int d = 0;
#ifdef __SSE2__
    d = rnd == 0 ? hblend_simd(in, t, C, Shifter(shift), dw, out)
                 : hblend_simd(in, t, C, Rounder(rnd, shift), dw, out);
#endif
    hblend_scalar(in, t.ofs, t.w, t.taps, C, rnd, shift, d, dw, out);
}

// out = a (widened to 16 bits), or with b: a0 b0 a1 b1 ...
void widen(const uint8_t* a, const uint8_t* b, int len, int16_t* out) {
    ptrdiff_t i = 0;
#ifdef __SSE2__
    const __m128i zero = _mm_setzero_si128();
    if (b == nullptr) {
        for (; i + 16 <= len; i += 16) {
            const __m128i v = loadu(a + i);
            storeu(out + i, _mm_unpacklo_epi8(v, zero));
            storeu(out + i + 8, _mm_unpackhi_epi8(v, zero));
        }
    } else {
        for (; i + 16 <= len; i += 16) {
            const __m128i va = loadu(a + i), vb = loadu(b + i);
            const __m128i lo = _mm_unpacklo_epi8(va, vb), hi = _mm_unpackhi_epi8(va, vb);
            storeu(out + 2 * i, _mm_unpacklo_epi8(lo, zero));
            storeu(out + 2 * i + 8, _mm_unpackhi_epi8(lo, zero));
            storeu(out + 2 * i + 16, _mm_unpacklo_epi8(hi, zero));
            storeu(out + 2 * i + 24, _mm_unpackhi_epi8(hi, zero));
        }
    }
#endif
    for (; i < len; ++i) {
        if (b == nullptr) {
            out[i] = a[i];
        } else {
            out[2 * i] = a[i];
            out[2 * i + 1] = b[i];
        }
    }
}

// out = a0 b0 a1 b1 ... of two 16-bit rows.
void interleave(const int16_t* a, const int16_t* b, int len, int16_t* out) {
    ptrdiff_t i = 0;
#ifdef __SSE2__
    for (; i + 8 <= len; i += 8) {
        const __m128i va = loadu(a + i), vb = loadu(b + i);
        storeu(out + 2 * i, _mm_unpacklo_epi16(va, vb));
        storeu(out + 2 * i + 8, _mm_unpackhi_epi16(va, vb));
    }
#endif
    for (; i < len; ++i) {
        out[2 * i] = a[i];
        out[2 * i + 1] = b[i];
    }
}

// The source pixel each output copies if the table is a plain copy of consecutive pixels, else -1.
int identity_start(const AxisTable& t, int n) {
    int start = -1;
    for (int d = 0; d < n; ++d) {
        int pixel = -1;
        for (int k = 0; k < t.taps; ++k)
            if (t.weights[static_cast<size_t>(d) * t.taps + k] == kOne) pixel = t.ofs[d] + k;
        if (pixel < 0 || (d > 0 && pixel != start + d)) return -1;
        if (d == 0) start = pixel;
    }
    return start;
}

std::string crop_str(const Crop& c) {
    std::ostringstream s;
    s << "(" << c.x << ", " << c.y << ", " << c.w << ", " << c.h << ")";
    return s.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

ResizeMethod parse_resize_method(const std::string& name, const char* param) {
    if (name == "auto") return ResizeMethod::Auto;
    if (name == "bilinear") return ResizeMethod::Bilinear;
    if (name == "area") return ResizeMethod::Area;
    throw std::invalid_argument(std::string(param) +
                                ": expected 'auto', 'bilinear' or 'area', got '" + name + "'");
}

void check_crop(const Crop& c, int width, int height) {
    if (!std::isfinite(c.x) || !std::isfinite(c.y) || !std::isfinite(c.w) || !std::isfinite(c.h))
        throw std::invalid_argument("crop: (x, y, w, h) must be finite, got " + crop_str(c));
    if (c.w <= 0 || c.h <= 0)
        throw std::invalid_argument("crop: w and h must be > 0, got " + crop_str(c));
    if (c.x < 0 || c.y < 0 || c.x + c.w > width || c.y + c.h > height) {
        std::ostringstream s;
        s << "crop: (x, y, w, h) = " << crop_str(c) << " is not inside the " << width << "x"
          << height << " source";
        throw std::invalid_argument(s.str());
    }
}

bool use_area(ResizeMethod method, const Crop& crop, int dst_w, int dst_h) {
    switch (method) {
        case ResizeMethod::Bilinear:
            return false;
        case ResizeMethod::Area:
            return true;
        case ResizeMethod::Auto:
            break;
    }
    const bool not_smaller = crop.w >= dst_w && crop.h >= dst_h;
    return not_smaller && (crop.w >= 2.0 * dst_w || crop.h >= 2.0 * dst_h);
}

AxisTable bilinear_axis(double start, double length, int src_size, int dst_size) {
    AxisTable t;
    t.lo = std::clamp(static_cast<int>(std::floor(start)), 0, src_size - 1);
    t.hi = std::clamp(static_cast<int>(std::ceil(start + length)) - 1, t.lo, src_size - 1);
    t.taps = t.hi > t.lo ? 2 : 1;
    t.ofs.resize(static_cast<size_t>(dst_size));
    t.weights.resize(static_cast<size_t>(dst_size) * t.taps);
    const double scale = length / dst_size;
    for (int d = 0; d < dst_size; ++d) {
        const double f = start + (d + 0.5) * scale - 0.5;
        int s = static_cast<int>(std::floor(f));
        double a = f - s;
        if (s < t.lo) s = t.lo, a = 0;
        if (s >= t.hi) s = t.hi, a = 0;
        if (t.taps == 1) {
            t.ofs[d] = s;
            t.weights[d] = kOne;
            t.exact.push_back(1.0);
            continue;
        }
        int w1 = static_cast<int>(std::lround(a * kOne));
        if (s == t.hi) s = t.hi - 1, w1 = kOne, a = 1.0;  // the last pixel: its left neighbour, weight 0
        t.ofs[d] = s;
        t.weights[2 * d] = static_cast<int16_t>(kOne - w1);
        t.weights[2 * d + 1] = static_cast<int16_t>(w1);
        t.exact.push_back(1.0 - a);
        t.exact.push_back(a);
    }
    return t;
}

AxisTable area_axis(double start, double length, int src_size, int dst_size) {
    if (length < dst_size) return bilinear_axis(start, length, src_size, dst_size);
    const double scale = length / dst_size;
    const auto cell = [&](int d, double& a, double& b, int& k0, int& k1) {
        a = start + d * scale;
        b = d + 1 == dst_size ? start + length : start + (d + 1) * scale;
        k0 = std::clamp(static_cast<int>(std::floor(a)), 0, src_size - 1);
        k1 = std::clamp(static_cast<int>(std::ceil(b)) - 1, k0, src_size - 1);
    };
    AxisTable t;
    t.taps = 1;
    for (int d = 0; d < dst_size; ++d) {
        double a, b;
        int k0, k1;
        cell(d, a, b, k0, k1);
        t.taps = std::max(t.taps, k1 - k0 + 1);
    }
    t.ofs.resize(static_cast<size_t>(dst_size));
    t.weights.resize(static_cast<size_t>(dst_size) * t.taps);
    std::vector<double> w(static_cast<size_t>(t.taps));
    for (int d = 0; d < dst_size; ++d) {
        double a, b;
        int k0, k1;
        cell(d, a, b, k0, k1);
        // Every output has t.taps taps; near the end they start earlier, with leading zeros.
        const int first = std::min(k0, src_size - t.taps);
        std::fill(w.begin(), w.end(), 0.0);
        for (int k = k0; k <= k1; ++k)
            w[k - first] = std::max(0.0, std::min(b, k + 1.0) - std::max(a, k + 0.0));
        if (k1 == k0) w[k0 - first] = 1.0;  // a zero-width interval (rounding): the one pixel
        t.ofs[d] = first;
        quantise(w.data(), t.taps, t.weights.data() + static_cast<ptrdiff_t>(d) * t.taps);
        double total = 0;
        for (double v : w) total += v;
        for (double v : w) t.exact.push_back(v / total);
    }
    t.lo = t.ofs.front();
    t.hi = t.ofs.back() + t.taps - 1;
    return t;
}

// ---------------------------------------------------------------------------------------------

Resampler::Resampler(const ImageView& src, const Crop& crop, int dst_w, int dst_h, bool area)
    : src_{src, src}, planes_(1), channels_(src.channels), dst_w_(dst_w), dst_h_(dst_h) {
    init(crop, area);
}

Resampler::Resampler(const ImageView& a, const ImageView& b, const Crop& crop, int dst_w,
                     int dst_h, bool area)
    : src_{a, b}, planes_(2), channels_(2), dst_w_(dst_w), dst_h_(dst_h) {
    init(crop, area);
}

void Resampler::init(const Crop& crop, bool area) {
    const int C = channels_;
    const int sw = src_[0].width, sh = src_[0].height;
    const AxisTable tx = area ? area_axis(crop.x, crop.w, sw, dst_w_)
                              : bilinear_axis(crop.x, crop.w, sw, dst_w_);
    ty_ = area ? area_axis(crop.y, crop.h, sh, dst_h_) : bilinear_axis(crop.y, crop.h, sh, dst_h_);
    exact_ = area && (tx.taps > kExactAreaTaps || ty_.taps > kExactAreaTaps);
    if (exact_) {
        tx_exact_ = tx;
        // An upscaled axis has bilinear weights: the Q14 ones, as the fixed-point passes use.
        for (AxisTable* t : {&tx_exact_, &ty_}) {
            if (t == &tx_exact_ ? crop.w >= dst_w_ : crop.h >= dst_h_) continue;
            t->exact.clear();
            for (int16_t w : t->weights) t->exact.push_back(w / static_cast<double>(kOne));
        }
    }

    // Horizontal table, its taps padded to what the SIMD kernels read (extra weights are 0 and
    // read the zeroed padding of the span row).
    if (C == 1)
        hx_taps_ = tx.taps <= 2 ? 2 : tx.taps <= 4 ? 4 : (tx.taps + 7) / 8 * 8;
    else
        hx_taps_ = (tx.taps + 1) / 2 * 2;
    if (planes_ == 1) {
        copy_x_ = identity_start(tx, dst_w_);
        copy_y_ = copy_x_ < 0 ? -1 : identity_start(ty_, dst_h_);
    }
    span_lo_ = tx.lo;
    span_len_ = tx.hi - tx.lo + 1;
    const size_t dw = static_cast<size_t>(dst_w_);
    hx_ofs_.resize(dw);
    hx_weights_.assign(dw * hx_taps_, 0);
    for (size_t d = 0; d < dw; ++d) {
        hx_ofs_[d] = (tx.ofs[d] - span_lo_) * C;
        for (int k = 0; k < tx.taps; ++k)
            hx_weights_[d * hx_taps_ + k] = tx.weights[d * tx.taps + k];
    }
    if (C > 1) {  // hx_taps_ is even; see hblend_c2 and hblend_c34 for the layouts
        const size_t pairs = static_cast<size_t>(hx_taps_) / 2;
        hx_bcast_.assign((dw + 1) * pairs * 8, 0);
        for (size_t d = 0; d < dw; ++d) {
            for (size_t k = 0; k < pairs; ++k) {
                const int16_t* w = hx_weights_.data() + d * hx_taps_ + 2 * k;
                // C == 2: outputs in pairs, 4 lanes each; C > 2: 8 lanes per output.
                int16_t* o = C == 2 ? hx_bcast_.data() + ((d / 2) * pairs + k) * 8 + (d % 2) * 4
                                    : hx_bcast_.data() + (d * pairs + k) * 8;
                for (int j = 0; j < (C == 2 ? 4 : 8); ++j) o[j] = w[j % 2];
            }
        }
    }
    span_.assign(static_cast<size_t>(span_len_ + hx_taps_ + 4) * C + 8, 0);
    if (planes_ == 2) plane_tmp_.assign(2 * static_cast<size_t>(span_len_) + 16, 0);
    src_rows_.resize(static_cast<size_t>(ty_.taps));
    mid_rows_.resize(static_cast<size_t>(ty_.taps));

    // Pick the order by a rough operation count (SSE2 instructions per element, measured on
    // x86-64): vertical first filters span_len_ columns of every output row; horizontal first
    // filters each source row it needs once, then blends dst_w columns per output row.
    int needed_rows = 0;
    for (int dy = 0, last = -1; dy < dst_h_; ++dy) {
        const int end = ty_.ofs[dy] + ty_.taps;
        needed_rows += end - std::max(last + 1, ty_.ofs[dy]);
        last = std::max(last, end - 1);
    }
    const double span = static_cast<double>(span_len_) * C;
    const double out = static_cast<double>(dst_w_) * C;
    const double v_u8 = ty_.taps <= kFastTaps ? 0.45 * ty_.taps : 0.75 * ty_.taps;
    const double v_i16 = 0.6 * ((ty_.taps + 1) / 2);
    double h_px;  // per output pixel
    if (C == 1)
        h_px = hx_taps_ == 2 ? 3.5 : hx_taps_ == 4 ? 4.5 : 3.5 + hx_taps_ / 4.0;
    else
        h_px = hx_taps_ == 2 ? 2.0 + 1.5 * C : 6.0 + 2.0 * hx_taps_;
    const double h_row = dst_w_ * h_px;
    const double extra = planes_ == 2 ? span * 0.4 : 0.0;  // interleaving the planes
    const double cost_vfirst = dst_h_ * (span * v_u8 + extra + h_row);
    const double cost_hfirst = needed_rows * (span * 0.3 + h_row) + dst_h_ * out * v_i16;
    vertical_first_ = cost_vfirst <= cost_hfirst;
}

const int16_t* Resampler::horizontal_row(int sy) {
    const int C = channels_;
    const size_t stride = static_cast<size_t>(dst_w_) * C + 8;
    if (ring_.empty()) {
        ring_.assign(stride * ty_.taps, 0);
        ring_rows_.assign(static_cast<size_t>(ty_.taps), -1);
    }
    const int slot = sy % ty_.taps;  // the rows of one window are consecutive: distinct slots
    int16_t* dst = ring_.data() + stride * slot;
    if (ring_rows_[slot] != sy) {
        const ptrdiff_t x = static_cast<ptrdiff_t>(span_lo_) * (planes_ == 2 ? 1 : C);
        if (planes_ == 2)
            widen(src_[0].row(sy) + x, src_[1].row(sy) + x, span_len_, span_.data());
        else
            widen(src_[0].row(sy) + x, nullptr, span_len_ * C, span_.data());
        const HTable t{hx_ofs_.data(), hx_weights_.data(), hx_bcast_.data(), hx_taps_};
        constexpr int shift = kWeightBits - kMidBits;
        hblend(span_.data(), t, C, 1 << (shift - 1), shift, dst_w_, dst);
        ring_rows_[slot] = sy;
    }
    return dst;
}

// Vertical pass of output row dy into span_ (vertical first), plus `bias` on every element.
void Resampler::vertical_span(int dy, int32_t bias) {
    const int n = ty_.taps;
    const int first = ty_.ofs[dy];
    const int16_t* wy = ty_.weights.data() + static_cast<ptrdiff_t>(dy) * n;
    if (n <= kFastTaps) bias += n / 2;  // against the truncation of the fast path
    if (planes_ == 1) {
        const ptrdiff_t x = static_cast<ptrdiff_t>(span_lo_) * channels_;
        for (int k = 0; k < n; ++k) src_rows_[k] = src_[0].row(first + k) + x;
        vblend_u8(src_rows_.data(), wy, n, bias, span_len_ * channels_, span_.data());
        return;
    }
    int16_t* tmp[2] = {plane_tmp_.data(), plane_tmp_.data() + span_len_ + 8};
    for (int p = 0; p < 2; ++p) {
        for (int k = 0; k < n; ++k) src_rows_[k] = src_[p].row(first + k) + span_lo_;
        vblend_u8(src_rows_.data(), wy, n, bias, span_len_, tmp[p]);
    }
    interleave(tmp[0], tmp[1], span_len_, span_.data());
}

// Area averaging with double weights (see kExactAreaTaps): each output pixel is the exact
// weighted mean of its source pixels, rounded once. Scalar, but only used when an output covers
// more than 128 source pixels on an axis, where reading the source dominates anyway.
template <class Out>
void Resampler::produce_exact(int dy, Out* out, int shift) {
    const int C = channels_;
    const int len = span_len_ * C;
    exact_row_.assign(static_cast<size_t>(len), 0.0);
    double* acc = exact_row_.data();
    const int n = ty_.taps;
    const double* wy = ty_.exact.data() + static_cast<ptrdiff_t>(dy) * n;
    for (int k = 0; k < n; ++k) {
        const double w = wy[k];
        if (w == 0) continue;
        const int sy = ty_.ofs[dy] + k;
        if (planes_ == 1) {
            const uint8_t* r = src_[0].row(sy) + static_cast<ptrdiff_t>(span_lo_) * C;
            for (int i = 0; i < len; ++i) acc[i] += w * r[i];
        } else {  // two planes, interleaved as channels 0 and 1
            for (int p = 0; p < 2; ++p) {
                const uint8_t* r = src_[p].row(sy) + span_lo_;
                for (int i = 0; i < span_len_; ++i) acc[2 * i + p] += w * r[i];
            }
        }
    }
    const double scale = static_cast<double>(1 << (kWeightBits + kMidBits - shift));
    const int taps = tx_exact_.taps;
    for (int d = 0; d < dst_w_; ++d) {
        const double* wx = tx_exact_.exact.data() + static_cast<ptrdiff_t>(d) * taps;
        const double* base = acc + hx_ofs_[d];
        for (int c = 0; c < C; ++c) {
            double v = 0;
            for (int k = 0; k < taps; ++k) v += wx[k] * base[k * C + c];
            put(out + static_cast<ptrdiff_t>(d) * C + c, static_cast<int32_t>(std::lround(v * scale)));
        }
    }
}

template <class Out>
void Resampler::produce(int dy, Out* out, int shift) {
    const int C = channels_;
    if (exact_) {
        produce_exact(dy, out, shift);
        return;
    }
    if (copy_y_ >= 0) {  // a 1:1 copy of whole pixels
        const uint8_t* src = src_[0].row(copy_y_ + dy) + static_cast<ptrdiff_t>(copy_x_) * C;
        const int len = dst_w_ * C;
        if constexpr (sizeof(Out) == 1) {
            std::memcpy(out, src, static_cast<size_t>(len));
        } else {
            const int up = kWeightBits + kMidBits - shift;  // fraction bits wanted
            widen(src, nullptr, len, out);
            for (int i = 0; i < len; ++i) out[i] = static_cast<int16_t>(out[i] << up);
        }
        return;
    }
    if (vertical_first_) {
        // The horizontal pass shifts by `shift` >= 15: its rounding, 2^(shift - 1), is a whole
        // number of 7-fraction-bit units, added once per element in the vertical pass instead.
        int32_t rnd = 1 << (shift - 1), bias = 0;
        if (shift >= kWeightBits + 1) bias = 1 << (shift - 1 - kWeightBits), rnd = 0;
        vertical_span(dy, bias);
        const HTable t{hx_ofs_.data(), hx_weights_.data(), hx_bcast_.data(), hx_taps_};
        hblend(span_.data(), t, C, rnd, shift, dst_w_, out);
    } else {
        const int n = ty_.taps;
        const int first = ty_.ofs[dy];
        for (int k = 0; k < n; ++k) mid_rows_[k] = horizontal_row(first + k);
        const int16_t* wy = ty_.weights.data() + static_cast<ptrdiff_t>(dy) * n;
        vblend_i16(mid_rows_.data(), wy, n, 1 << (shift - 1), shift, dst_w_ * C, out);
    }
}

void Resampler::row(int dy, uint8_t* out) { produce(dy, out, kWeightBits + kMidBits); }
void Resampler::row(int dy, int16_t* out) { produce(dy, out, kWeightBits); }

void resize(const ImageView& src, const Crop& crop, const MutableImageView& dst,
            ResizeMethod method) {
    Resampler r(src, crop, dst.width, dst.height, use_area(method, crop, dst.width, dst.height));
    for (int dy = 0; dy < dst.height; ++dy) r.row(dy, dst.row(dy));
}

}  // namespace ossframe
