// Non-owning views of 8-bit images, shared by every kernel.
//
// A view is `height` rows of `width` pixels of `channels` interleaved bytes. Pixels in a row
// are packed (channel stride 1, pixel stride `channels`); rows start `row_stride` bytes apart,
// which may be more than width * channels (padded decoder planes), or even negative.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ossframe {

struct ImageView {
    const uint8_t* data = nullptr;
    ptrdiff_t row_stride = 0;
    int width = 0;
    int height = 0;
    int channels = 1;

    const uint8_t* row(int r) const { return data + static_cast<ptrdiff_t>(r) * row_stride; }
};

struct MutableImageView {
    uint8_t* data = nullptr;
    ptrdiff_t row_stride = 0;
    int width = 0;
    int height = 0;
    int channels = 1;

    uint8_t* row(int r) const { return data + static_cast<ptrdiff_t>(r) * row_stride; }
};

}  // namespace ossframe
