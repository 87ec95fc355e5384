#include "scene.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "blocks.h"

namespace ossframe {

double scene_score(const ImageView& a, const ImageView& b, int grid_w, int grid_h) {
    const int cols = std::min(grid_w, a.width);
    const int rows = std::min(grid_h, a.height);
    const size_t cells = static_cast<size_t>(cols) * static_cast<size_t>(rows);
    std::vector<uint64_t> sa(cells), sb(cells);
    block_sums(a, cols, rows, sa.data());
    block_sums(b, cols, rows, sb.data());
    double total = 0.0;
    for (int j = 0; j < rows; ++j) {
        const double h = cell_start(j + 1, rows, a.height) - cell_start(j, rows, a.height);
        for (int i = 0; i < cols; ++i) {
            const double w = cell_start(i + 1, cols, a.width) - cell_start(i, cols, a.width);
            const size_t k = static_cast<size_t>(j) * cols + i;
            const uint64_t diff = sa[k] > sb[k] ? sa[k] - sb[k] : sb[k] - sa[k];
            total += static_cast<double>(diff) / (w * h);  // |avg_a - avg_b| of this cell
        }
    }
    return total / static_cast<double>(cells) / 255.0 * 100.0;
}

}  // namespace ossframe
