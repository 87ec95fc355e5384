#include "dhash.h"

#include "blocks.h"

#include <vector>

namespace ossframe {
namespace {

constexpr int kCols = 9;
constexpr int kRows = 8;

// avg_l > avg_r, i.e. sum_l / width_l > sum_r / width_r, without division (the rows of the two
// blocks are the same, so the row count cancels). Products reach 255 * W * W * H / 648, which is
// why 128-bit arithmetic is used where the compiler has it.
inline bool left_brighter(uint64_t sum_l, uint64_t width_l, uint64_t sum_r, uint64_t width_r) {
#ifdef __SIZEOF_INT128__
    __extension__ typedef unsigned __int128 Wide;
#else
    using Wide = uint64_t;
#endif
    return static_cast<Wide>(sum_l) * width_r > static_cast<Wide>(sum_r) * width_l;
}

}  // namespace

// A plane narrower than 9 or shorter than 8 pixels has too few pixels for the grid: it is hashed
// with each pixel repeated 9 times across (8 times down) on the short axis, so every cell covers
// an exact 1/9 (1/8) of the picture, as an area-averaging upscale would give.
static uint64_t dhash_small(const ImageView& plane) {
    const int rx = plane.width < kCols ? kCols : 1;
    const int ry = plane.height < kRows ? kRows : 1;
    ImageView big;
    big.width = plane.width * rx;
    big.height = plane.height * ry;
    big.row_stride = big.width;
    std::vector<uint8_t> pixels(static_cast<size_t>(big.width) * big.height);
    for (int y = 0; y < big.height; ++y) {
        const uint8_t* src = plane.row(y / ry);
        uint8_t* dst = pixels.data() + static_cast<size_t>(y) * big.width;
        for (int x = 0; x < big.width; ++x) dst[x] = src[x / rx];
    }
    big.data = pixels.data();
    return dhash(big);
}

uint64_t dhash(const ImageView& plane) {
    if (plane.width < kCols || plane.height < kRows) return dhash_small(plane);
    uint64_t sums[kRows * kCols];
    block_sums(plane, kCols, kRows, sums);
    uint64_t widths[kCols];
    for (int i = 0; i < kCols; ++i)
        widths[i] = static_cast<uint64_t>(cell_start(i + 1, kCols, plane.width) -
                                          cell_start(i, kCols, plane.width));
    uint64_t hash = 0;
    for (int j = 0; j < kRows; ++j) {
        const uint64_t* s = sums + j * kCols;
        for (int i = 0; i + 1 < kCols; ++i)
            hash = (hash << 1) | (left_brighter(s[i], widths[i], s[i + 1], widths[i + 1]) ? 1 : 0);
    }
    return hash;
}

double hash_distance(uint64_t a, uint64_t b) {
    uint64_t x = a ^ b;
    int bits = 0;
    for (; x != 0; x &= x - 1) ++bits;
    return bits * 100.0 / 64.0;
}

}  // namespace ossframe
