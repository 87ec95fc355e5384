// Scene-change score of two luma planes.
#pragma once

#include "image.h"

namespace ossframe {

// Both planes (channels == 1, same width and height) are reduced to grid_w x grid_h integer
// blocks (see blocks.h; the grid is clipped to the plane size), and the score is the mean
// absolute difference of the block averages scaled to 0..100 (identical -> 0, black vs white
// -> 100). Requires grid_w >= 1 and grid_h >= 1.
double scene_score(const ImageView& a, const ImageView& b, int grid_w, int grid_h);

}  // namespace ossframe
