// Fused crop + resize + YUV 4:2:0 -> RGB conversion, without a full-size RGB intermediate.
#pragma once

#include <string>

#include "image.h"
#include "resize.h"

namespace ossframe {

enum class YuvMatrix { BT601, BT709 };

// Parses "bt601" / "bt709"; throws std::invalid_argument naming `param` otherwise.
YuvMatrix parse_yuv_matrix(const std::string& name, const char* param);

// y: H x W luma plane; u, v: ((H + 1) / 2) x ((W + 1) / 2) chroma planes (all channels == 1);
// crop: a rectangle of the luma plane (check_crop passed); dst: 3 channels, any size.
//
// Each plane is resampled straight to the destination size with 7 fraction bits kept (U and V
// together, interleaved), then the rows are converted at output size:
//   Y' = (Y - 16) * 255/219, C' = (C - 128) * 255/224   (limited range; full range: no scaling)
//   R = Y' + 2(1 - Kr) V',  B = Y' + 2(1 - Kb) U',  G = (Y' - Kr R - Kb B) / Kg
// with (Kr, Kb) = (0.299, 0.114) for BT.601 and (0.2126, 0.0722) for BT.709.
// Chroma siting is "centre" (JPEG / MPEG-1): chroma sample (i, j) sits at the centre of luma
// pixels 2i..2i+1 x 2j..2j+1, so the chroma crop is the luma crop halved. This is also what
// cv2.cvtColor(COLOR_YUV2RGB_I420) assumes (it repeats each chroma sample over its 2x2 block).
// The resampling method (resolved once from the luma crop, see use_area) applies to all three
// planes; a chroma axis that is upscaled uses bilinear, as area does on any upscaled axis.
void yuv420_to_rgb(const ImageView& y, const ImageView& u, const ImageView& v, const Crop& crop,
                   const MutableImageView& dst, YuvMatrix matrix, bool full_range, bool bgr,
                   ResizeMethod method);

}  // namespace ossframe
