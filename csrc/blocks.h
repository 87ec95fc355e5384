// Integer-block sums of an 8-bit plane: the reduction behind dhash.
//
// A length L split into n cells: cell i covers [floor(i * L / n), floor((i + 1) * L / n)).
#pragma once

#include <cstdint>

#include "image.h"

namespace ossframe {

// First index of cell `i` of `n` over `length` (cell i ends where cell i + 1 starts).
inline int cell_start(int i, int n, int length) {
    return static_cast<int>(static_cast<int64_t>(i) * length / n);
}

// sums[j * cols + i] = sum of the pixels of cell (row j, column i) of a single-channel plane.
// Requires 1 <= cols <= plane.width and 1 <= rows <= plane.height.
void block_sums(const ImageView& plane, int cols, int rows, uint64_t* sums);

}  // namespace ossframe
