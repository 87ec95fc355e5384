// 64-bit difference hash of a luma plane, and the distance between two such hashes.
#pragma once

#include <cstdint>

#include "image.h"

namespace ossframe {

// The plane (channels == 1) is reduced to 8 rows x 9 columns of integer pixel blocks (see
// blocks.h). A plane narrower than 9 (shorter than 8) pixels is first upscaled by repeating each
// pixel 9 times across (8 times down), so each block is an exact ninth (eighth) of it. Bit (row j, column i) is set when block (j, i) has a
// larger average than block (j, i + 1), compared exactly in integers. Row 0 column 0 is the most
// significant bit, which is imagehash's hex order (imagehash sets right > left, so its dhash of
// the inverted image equals this one on a 9x8 input).
uint64_t dhash(const ImageView& plane);

// Percentage (0..100) of the 64 bits in which a and b differ.
double hash_distance(uint64_t a, uint64_t b);

}  // namespace ossframe
