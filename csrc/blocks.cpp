#include "blocks.h"

#include <vector>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace ossframe {
namespace {

// Sum of row[x0..x1).
inline uint32_t sum_range(const uint8_t* row, int x0, int x1) {
    uint32_t total = 0;
    int x = x0;
#ifdef __SSE2__
    const __m128i zero = _mm_setzero_si128();
    __m128i acc = zero;  // two 64-bit partial sums
    for (; x + 16 <= x1; x += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + x));
        acc = _mm_add_epi64(acc, _mm_sad_epu8(v, zero));
    }
    const int rest = x1 - x;
    if (rest > 0 && x1 >= 16) {
        // Load the 16 bytes that end at x1 (still inside the row) and keep the last `rest`.
        alignas(16) static const uint8_t kMask[32] = {
            0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
            0,    0,    0,    0,    0,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + x1 - 16));
        const __m128i m = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMask + rest));
        acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_and_si128(v, m), zero));
        x = x1;
    }
    total = static_cast<uint32_t>(_mm_cvtsi128_si32(acc)) +
            static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_unpackhi_epi64(acc, acc)));
#endif
    for (; x < x1; ++x) total += row[x];
    return total;
}

}  // namespace

void block_sums(const ImageView& plane, int cols, int rows, uint64_t* sums) {
    std::vector<int> xs(static_cast<size_t>(cols) + 1);
    for (int i = 0; i <= cols; ++i) xs[i] = cell_start(i, cols, plane.width);
    for (int j = 0; j < rows; ++j) {
        uint64_t* cell = sums + static_cast<ptrdiff_t>(j) * cols;
        for (int i = 0; i < cols; ++i) cell[i] = 0;
        const int y1 = cell_start(j + 1, rows, plane.height);
        for (int y = cell_start(j, rows, plane.height); y < y1; ++y) {
            const uint8_t* row = plane.row(y);
            for (int i = 0; i < cols; ++i) cell[i] += sum_range(row, xs[i], xs[i + 1]);
        }
    }
}

}  // namespace ossframe
