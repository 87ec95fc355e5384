#include "convert.h"
#include "simd.h"

#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace ossframe {
namespace {

constexpr int kCoefBits = 13;  // Q13 coefficients: 2.112 (BT.709 limited, B from U) fits int16
constexpr int kInBits = 7;     // the resampled planes carry 7 fraction bits (0..32640)
constexpr int kShift = kCoefBits + kInBits;
constexpr int kChromaZero = 128 << kInBits;

struct Coefficients {
    int16_t y_offset;  // 16 or 0, with kInBits fraction bits
    int16_t y;         // luma scale
    int16_t r_v, g_u, g_v, b_u;
};

Coefficients coefficients(YuvMatrix matrix, bool full_range) {
    const double kr = matrix == YuvMatrix::BT601 ? 0.299 : 0.2126;
    const double kb = matrix == YuvMatrix::BT601 ? 0.114 : 0.0722;
    const double kg = 1.0 - kr - kb;
    const double ys = full_range ? 1.0 : 255.0 / 219.0;
    const double cs = full_range ? 1.0 : 255.0 / 224.0;
    const auto q = [](double c) { return static_cast<int16_t>(std::lround(c * (1 << kCoefBits))); };
    Coefficients k;
    k.y_offset = static_cast<int16_t>(full_range ? 0 : 16 << kInBits);
    k.y = q(ys);
    k.r_v = q(cs * 2.0 * (1.0 - kr));
    k.g_u = q(-cs * 2.0 * (1.0 - kb) * kb / kg);
    k.g_v = q(-cs * 2.0 * (1.0 - kr) * kr / kg);
    k.b_u = q(cs * 2.0 * (1.0 - kb));
    return k;
}

inline uint8_t clamp_u8(int32_t v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v); }

#ifdef __SSE2__
inline int32_t pair(int lo, int hi) {
    return static_cast<int32_t>(static_cast<uint16_t>(lo)) |
           static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16);
}

#endif

// dst[3 * i ..] = RGB (or BGR) of luma y[i] and chroma uv[2 * i], uv[2 * i + 1] (7 fraction bits).
void convert_row(const int16_t* y, const int16_t* uv, int n, const Coefficients& k, bool bgr,
                 uint8_t* dst) {
    ptrdiff_t i = 0;
#ifdef __SSE2__
    const __m128i yoff = _mm_set1_epi16(k.y_offset);
    const __m128i czero = _mm_set1_epi16(kChromaZero);
    // (Y', 32) . (y, 2^14) = Y' * y + 2^19: the luma term carries the rounding.
    const __m128i c32 = _mm_set1_epi16(32);
    const __m128i k_y = _mm_set1_epi32(pair(k.y, 1 << 14));
    const __m128i k_r = _mm_set1_epi32(pair(0, k.r_v));
    const __m128i k_g = _mm_set1_epi32(pair(k.g_u, k.g_v));
    const __m128i k_b = _mm_set1_epi32(pair(k.b_u, 0));
    const __m128i zero = _mm_setzero_si128();
    const auto channel = [&](__m128i ylo, __m128i yhi, __m128i uv0, __m128i uv1, __m128i kc) {
        const __m128i lo = _mm_srai_epi32(_mm_add_epi32(ylo, _mm_madd_epi16(uv0, kc)), kShift);
        const __m128i hi = _mm_srai_epi32(_mm_add_epi32(yhi, _mm_madd_epi16(uv1, kc)), kShift);
        const __m128i s = _mm_packs_epi32(lo, hi);
        return _mm_packus_epi16(s, s);  // 8 pixels in the low 8 bytes
    };
    for (; i + 8 <= n; i += 8) {
        const __m128i yy =
            _mm_sub_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i)), yoff);
        const __m128i uv0 =
            _mm_sub_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(uv + 2 * i)), czero);
        const __m128i uv1 =
            _mm_sub_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(uv + 2 * i + 8)), czero);
        const __m128i ylo = _mm_madd_epi16(_mm_unpacklo_epi16(yy, c32), k_y);
        const __m128i yhi = _mm_madd_epi16(_mm_unpackhi_epi16(yy, c32), k_y);
        __m128i r = channel(ylo, yhi, uv0, uv1, k_r);
        const __m128i g = channel(ylo, yhi, uv0, uv1, k_g);
        __m128i b = channel(ylo, yhi, uv0, uv1, k_b);
        if (bgr) std::swap(r, b);
        const __m128i rg = _mm_unpacklo_epi8(r, g);
        const __m128i b0 = _mm_unpacklo_epi8(b, zero);
        const __m128i p0 = compact_4x3(_mm_unpacklo_epi16(rg, b0));  // pixels 0..3
        const __m128i p1 = compact_4x3(_mm_unpackhi_epi16(rg, b0));  // pixels 4..7
        uint8_t* o = dst + 3 * i;
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_or_si128(p0, _mm_slli_si128(p1, 12)));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 16), _mm_srli_si128(p1, 4));
    }
#endif
    const int32_t rnd = 1 << (kShift - 1);
    const int ri = bgr ? 2 : 0, bi = bgr ? 0 : 2;
    for (; i < n; ++i) {
        const int32_t yy = (y[i] - k.y_offset) * k.y + rnd;
        const int32_t uu = uv[2 * i] - kChromaZero;
        const int32_t vv = uv[2 * i + 1] - kChromaZero;
        uint8_t* o = dst + 3 * i;
        o[ri] = clamp_u8((yy + k.r_v * vv) >> kShift);
        o[1] = clamp_u8((yy + k.g_u * uu + k.g_v * vv) >> kShift);
        o[bi] = clamp_u8((yy + k.b_u * uu) >> kShift);
    }
}

}  // namespace

YuvMatrix parse_yuv_matrix(const std::string& name, const char* param) {
    if (name == "bt601") return YuvMatrix::BT601;
    if (name == "bt709") return YuvMatrix::BT709;
    throw std::invalid_argument(std::string(param) + ": expected 'bt601' or 'bt709', got '" + name +
                                "'");
}

void yuv420_to_rgb(const ImageView& y, const ImageView& u, const ImageView& v, const Crop& crop,
                   const MutableImageView& dst, YuvMatrix matrix, bool full_range, bool bgr,
                   ResizeMethod method) {
    const int dw = dst.width, dh = dst.height;
    const bool area = use_area(method, crop, dw, dh);
    const Crop chroma{crop.x / 2, crop.y / 2, crop.w / 2, crop.h / 2};  // centre siting
    Resampler ry(y, crop, dw, dh, area);
    Resampler ruv(u, v, chroma, dw, dh, area);  // U and V together, interleaved
    const Coefficients k = coefficients(matrix, full_range);
    std::vector<int16_t> yb(static_cast<size_t>(dw) + 8), uvb(2 * static_cast<size_t>(dw) + 8);
    for (int dy = 0; dy < dh; ++dy) {
        ry.row(dy, yb.data());
        ruv.row(dy, uvb.data());
        convert_row(yb.data(), uvb.data(), dw, k, bgr, dst.row(dy));
    }
}

}  // namespace ossframe
