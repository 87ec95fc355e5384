// Crop + resize of 8-bit images: bilinear (cv2 INTER_LINEAR semantics) and exact area averaging.
//
// Both methods are separable filters with Q14 fixed-point weights. A Resampler runs them in the
// cheaper of two orders, decided per call from the sizes:
//   vertical first:   per output row, blend the source rows it needs over the crop width into a
//                     16-bit row (7 fraction bits), then filter that row horizontally;
//   horizontal first: filter each needed source row once into a small ring of 16-bit rows
//                     (7 fraction bits), then blend the ring vertically per output row.
// Both orders use the same tables; results differ only in intermediate rounding (a few hundredths
// of a level at most).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image.h"

namespace ossframe {

// A rectangle of the source in pixel units; pixel i covers [i, i + 1), its centre is i + 0.5.
struct Crop {
    double x = 0, y = 0, w = 0, h = 0;
};

enum class ResizeMethod { Auto, Bilinear, Area };

// Parses "auto" / "bilinear" / "area"; throws std::invalid_argument naming `param` otherwise.
ResizeMethod parse_resize_method(const std::string& name, const char* param);

// Throws std::invalid_argument unless the crop is finite, w > 0, h > 0, and lies inside a
// width x height image.
void check_crop(const Crop& crop, int width, int height);

// Auto: area when the crop is at least 2x the destination on either axis and not smaller on
// either; else bilinear. Bilinear / Area: as named.
bool use_area(ResizeMethod method, const Crop& crop, int dst_w, int dst_h);

// One axis of a separable filter: output d = sum_k src[ofs[d] + k] * weights[d * taps + k] / 2^14.
struct AxisTable {
    int taps = 0;                  // weights per output (unused ones are 0)
    int lo = 0, hi = 0;            // smallest / largest source index read
    std::vector<int32_t> ofs;      // first source index of each output
    std::vector<int16_t> weights;  // Q14, non-negative, each output's weights sum to 2^14
    std::vector<double> exact;     // the same weights unrounded (each output's sum to 1)
};

// Bilinear, as cv2 INTER_LINEAR on the crop: output d samples the source at
// start + (d + 0.5) * length / dst_size - 0.5, clamped to the crop's pixels
// [floor(start), ceil(start + length) - 1].
AxisTable bilinear_axis(double start, double length, int src_size, int dst_size);

// Area: output d averages the source interval [start + d * s, start + (d + 1) * s), s =
// length / dst_size, each pixel weighted by its overlap (cv2 INTER_AREA for downscales).
// When length < dst_size (an upscale on this axis) it returns bilinear_axis instead.
AxisTable area_axis(double start, double length, int src_size, int dst_size);

// Area averaging over more than this many source pixels per output on an axis is computed with
// the exact (double) weights instead of Q14 ones: 1/n is not representable in Q14 for large n
// (each weight rounds to 0 or 1 and the average drifts), while up to 128 taps the rounding moves
// a result by less than one level.
constexpr int kExactAreaTaps = 128;

// Resamples a crop of one image to dst_w x dst_h, an output row at a time. Rows may be requested
// in any order; ascending is fastest (the horizontal-first ring is reused).
class Resampler {
  public:
    // `area` selects area_axis for both axes (bilinear on an upscaled axis), else bilinear_axis.
    // The crop must have passed check_crop for src.
    Resampler(const ImageView& src, const Crop& crop, int dst_w, int dst_h, bool area);
    // Two single-channel planes of the same size (e.g. U and V), resampled together as one
    // interleaved 2-channel image: output rows are a0 b0 a1 b1 ...
    Resampler(const ImageView& a, const ImageView& b, const Crop& crop, int dst_w, int dst_h,
              bool area);

    int channels() const { return channels_; }

    // Output row dy as 8-bit pixels: dst_w * channels() bytes.
    void row(int dy, uint8_t* out);
    // Output row dy with 7 fraction bits (value * 128, 0..32640): dst_w * channels() elements,
    // plus up to 4 more that may be overwritten, so size the buffer dst_w * channels() + 4.
    void row(int dy, int16_t* out);

    bool vertical_first() const { return vertical_first_; }
    void force_order(bool vertical_first) { vertical_first_ = vertical_first; }

  private:
    void init(const Crop& crop, bool area);
    template <class Out>
    void produce(int dy, Out* out, int shift);
    template <class Out>
    void produce_exact(int dy, Out* out, int shift);
    const int16_t* horizontal_row(int sy);
    void vertical_span(int dy, int32_t bias);

    ImageView src_[2];
    int planes_;     // 1: src_[0] holds all channels; 2: src_[0], src_[1] are interleaved
    int channels_;
    int dst_w_, dst_h_;
    AxisTable ty_;                     // vertical table
    AxisTable tx_exact_;               // horizontal table, kept when exact_ (else empty)
    bool exact_ = false;               // area over > kExactAreaTaps pixels: see produce_exact
    std::vector<double> exact_row_;    // produce_exact: one vertically averaged span row
    int hx_taps_ = 0;                  // taps per output of the horizontal table, padded for SIMD
    std::vector<int32_t> hx_ofs_;      // element offset of each output's first tap in a span row
    std::vector<int16_t> hx_weights_;  // hx_taps_ per output
    std::vector<int16_t> hx_bcast_;    // 2 taps, 2..4 channels: (w0, w1) repeated per channel
    int copy_x_ = -1, copy_y_ = -1;    // >= 0: output (x, y) is source (copy_x_ + x, copy_y_ + y)
    int span_lo_ = 0, span_len_ = 0;   // source pixels [span_lo_, span_lo_ + span_len_) are read
    bool vertical_first_ = true;
    std::vector<int16_t> span_;        // one span row (16-bit, interleaved), zero padded
    std::vector<int16_t> plane_tmp_;   // two planes, vertical first: the planes before interleaving
    std::vector<int16_t> ring_;        // horizontal first: ty_.taps filtered rows
    std::vector<int> ring_rows_;       // source row held by each ring slot, -1 if none
    std::vector<const uint8_t*> src_rows_;  // vertical first: the source rows being blended
    std::vector<const int16_t*> mid_rows_;  // horizontal first: the ring rows being blended
};

// Resizes crop of src onto all of dst (same channel count, 1..4). Preconditions (checked by the
// bindings): check_crop passed, dst non-empty.
void resize(const ImageView& src, const Crop& crop, const MutableImageView& dst,
            ResizeMethod method);

}  // namespace ossframe
