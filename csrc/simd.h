// SSE2 helpers shared by the kernels.
#pragma once

#ifdef __SSE2__
#include <emmintrin.h>

namespace ossframe {

// Four pixels of 4 bytes (the 4th ignored) -> their 12 bytes RGBRGB... in bytes 0..11.
inline __m128i compact_4x3(__m128i x) {
    const __m128i low3 = _mm_set1_epi64x(0x0000000000ffffffLL);
    const __m128i next3 = _mm_set1_epi64x(0x0000ffffff000000LL);
    const __m128i lanes = _mm_or_si128(_mm_and_si128(x, low3),
                                       _mm_and_si128(_mm_srli_epi64(x, 8), next3));
    return _mm_or_si128(_mm_move_epi64(lanes), _mm_slli_si128(_mm_srli_si128(lanes, 8), 6));
}

}  // namespace ossframe
#endif
