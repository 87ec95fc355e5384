// The one binding file: validates arguments, builds views over the numpy buffers (never
// copying), releases the GIL and calls the plain C++ kernels.
//
// Every array argument is taken as py::array (no conversion) and checked here: uint8 dtype,
// ndim, shape, and packed pixels (channel stride 1, pixel stride = channels); row strides are
// free, so PyAV planes reshaped as (h, line_size)[:, :w] and views into a larger canvas work as
// they are. std::invalid_argument becomes ValueError, with the parameter and value in the text.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>

#include "convert.h"
#include "dhash.h"
#include "image.h"
#include "resize.h"

namespace py = pybind11;
using namespace ossframe;

namespace {

constexpr py::ssize_t kMaxDim = 1 << 24;  // keeps every size and offset inside int

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

std::string shape_of(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

std::string strides_of(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.strides(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

// Checks dtype, ndim (2, or 3 with 1..4 channels when allow_channels), size and packing; returns
// the view's geometry with data left null.
ImageView geometry(const py::array& a, const std::string& param, bool allow_channels) {
    if (a.dtype().kind() != 'u' || a.itemsize() != 1)
        fail(param + ": expected a uint8 array, got dtype " + std::string(py::str(a.dtype())));
    const char* expected = allow_channels ? "(H, W) or (H, W, C) with C in 1..4" : "(H, W)";
    if (!(a.ndim() == 2 || (allow_channels && a.ndim() == 3)))
        fail(param + ": expected shape " + expected + ", got " + shape_of(a));
    ImageView v;
    v.height = static_cast<int>(std::min(a.shape(0), kMaxDim));
    v.width = static_cast<int>(std::min(a.shape(1), kMaxDim));
    v.channels = a.ndim() == 3 ? static_cast<int>(std::min<py::ssize_t>(a.shape(2), 5)) : 1;
    if (a.ndim() == 3 && (v.channels < 1 || v.channels > 4))
        fail(param + ": expected shape " + expected + ", got " + shape_of(a));
    if (a.shape(0) < 1 || a.shape(1) < 1 || a.shape(0) >= kMaxDim || a.shape(1) >= kMaxDim)
        fail(param + ": height and width must be in 1.." + std::to_string(kMaxDim - 1) + ", got " +
             shape_of(a));
    // Strides of size-1 axes are meaningless (numpy may report anything), so skip them.
    const bool channels_packed = a.ndim() == 2 || v.channels == 1 || a.strides(2) == 1;
    const bool pixels_packed = v.width == 1 || a.strides(1) == v.channels;
    if (!channels_packed || !pixels_packed)
        fail(param + ": pixels must be packed within a row (strides (any, " +
             std::to_string(v.channels) + (a.ndim() == 3 ? ", 1)" : ")") + "), got strides " +
             strides_of(a) + "; pass np.ascontiguousarray(...)");
    v.row_stride = a.strides(0);
    return v;
}

ImageView input(const py::array& a, const std::string& param, bool allow_channels = false) {
    ImageView v = geometry(a, param, allow_channels);
    v.data = static_cast<const uint8_t*>(a.data());
    return v;
}

MutableImageView output(py::array& a, const std::string& param, bool allow_channels) {
    const ImageView g = geometry(a, param, allow_channels);
    if (!a.writeable()) fail(param + ": the array is read-only; pass a writeable uint8 array");
    MutableImageView v;
    v.data = static_cast<uint8_t*>(a.mutable_data());
    v.row_stride = g.row_stride;
    v.width = g.width;
    v.height = g.height;
    v.channels = g.channels;
    return v;
}

uint64_t hash_value(const py::object& h, const char* param) {
    const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
    if (!index) throw py::error_already_set();  // not an integer: TypeError
    const unsigned long long value = PyLong_AsUnsignedLongLong(index.ptr());
    if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();
        fail(std::string(param) + ": expected a 64-bit hash in [0, 2**64), got " +
             std::string(py::repr(h)));
    }
    return static_cast<uint64_t>(value);
}

Crop to_crop(const std::tuple<double, double, double, double>& t) {
    return Crop{std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t)};
}

// In every binding below the GIL is released only around the kernel call. That is safe: the
// views hold raw pointers into buffers owned by the py::array arguments, which the calling
// frame keeps alive until the call returns, and the kernels touch no Python object.

uint64_t py_dhash(const py::array& plane) {
    const ImageView v = input(plane, "plane");  // planes under 9x8 are upscaled (see dhash.h)
    py::gil_scoped_release release;
    return dhash(v);
}

double py_hash_distance(const py::object& a, const py::object& b) {
    return hash_distance(hash_value(a, "a"), hash_value(b, "b"));
}

// One axis's table as arrays: ofs (dst,) int32 and the unrounded weights (dst, taps) float64.
py::tuple table_arrays(const AxisTable& t, int dst) {
    py::array_t<int32_t> ofs(dst);
    std::copy(t.ofs.begin(), t.ofs.end(), ofs.mutable_data());
    py::array_t<double> weights({dst, t.taps});
    std::copy(t.exact.begin(), t.exact.end(), weights.mutable_data());
    return py::make_tuple(ofs, weights);
}

py::tuple py_resize_tables(const std::tuple<double, double, double, double>& crop, int src_w,
                           int src_h, int dst_w, int dst_h, const std::string& method) {
    if (src_w < 1 || src_h < 1 || src_w >= kMaxDim || src_h >= kMaxDim)
        fail("src: width and height must be in 1.." + std::to_string(kMaxDim - 1) + ", got " +
             std::to_string(src_w) + "x" + std::to_string(src_h));
    if (dst_w < 1 || dst_h < 1 || dst_w >= kMaxDim || dst_h >= kMaxDim)
        fail("size: width and height must be in 1.." + std::to_string(kMaxDim - 1) + ", got " +
             std::to_string(dst_w) + "x" + std::to_string(dst_h));
    const Crop c = to_crop(crop);
    check_crop(c, src_w, src_h);
    const bool area = use_area(parse_resize_method(method, "method"), c, dst_w, dst_h);
    const auto table = area ? area_axis : bilinear_axis;
    return py::make_tuple(area ? "area" : "bilinear",
                          table_arrays(table(c.x, c.w, src_w, dst_w), dst_w),
                          table_arrays(table(c.y, c.h, src_h, dst_h), dst_h));
}

void py_resize(const py::array& src, const std::tuple<double, double, double, double>& crop,
               py::array& dst, const std::string& method) {
    const ImageView s = input(src, "src", true);
    const MutableImageView d = output(dst, "dst", true);
    if (d.channels != s.channels)
        fail("dst: expected " + std::to_string(s.channels) + " channel(s) like src " +
             shape_of(src) + ", got shape " + shape_of(dst));
    const Crop c = to_crop(crop);
    check_crop(c, s.width, s.height);
    const ResizeMethod m = parse_resize_method(method, "method");
    py::gil_scoped_release release;
    resize(s, c, d, m);
}

void py_yuv420_to_rgb(const py::array& y, const py::array& u, const py::array& v,
                      const std::tuple<double, double, double, double>& crop, py::array& dst,
                      const std::string& matrix, bool full_range, bool bgr,
                      const std::string& method) {
    const ImageView vy = input(y, "y");
    const ImageView vu = input(u, "u");
    const ImageView vv = input(v, "v");
    const int cw = (vy.width + 1) / 2, ch = (vy.height + 1) / 2;
    const std::string chroma = "(" + std::to_string(ch) + ", " + std::to_string(cw) + ")";
    if (vu.width != cw || vu.height != ch)
        fail("u: expected shape " + chroma + " for y " + shape_of(y) + ", got " + shape_of(u));
    if (vv.width != cw || vv.height != ch)
        fail("v: expected shape " + chroma + " for y " + shape_of(y) + ", got " + shape_of(v));
    const MutableImageView d = output(dst, "dst", true);
    if (dst.ndim() != 3 || d.channels != 3)
        fail("dst: expected shape (H, W, 3), got " + shape_of(dst));
    const Crop c = to_crop(crop);
    check_crop(c, vy.width, vy.height);
    const YuvMatrix mx = parse_yuv_matrix(matrix, "matrix");
    const ResizeMethod m = parse_resize_method(method, "method");
    py::gil_scoped_release release;
    yuv420_to_rgb(vy, vu, vv, c, d, mx, full_range, bgr, m);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "Native kernels of ossframe_native: dhash, resize, YUV -> RGB.";
#ifdef OSSFRAME_VERSION_INFO
    m.attr("__version__") = OSSFRAME_VERSION_INFO;
#else
    m.attr("__version__") = "dev";
#endif

    m.def("dhash", &py_dhash, py::arg("plane"),
          "64-bit difference hash of a uint8 (H, W) luma plane, H >= 8, W >= 9.");
    m.def("hash_distance", &py_hash_distance, py::arg("a"), py::arg("b"),
          "Percentage (0..100) of the 64 bits in which two hashes differ.");
    m.def("resize_tables", &py_resize_tables, py::arg("crop"), py::arg("src_w"), py::arg("src_h"),
          py::arg("dst_w"), py::arg("dst_h"), py::arg("method") = "auto",
          "(method used, x table, y table) of resize() for this crop; a table is (ofs, weights).");
    m.def("resize", &py_resize, py::arg("src"), py::arg("crop"), py::arg("dst"),
          py::arg("method") = "auto",
          "Resize the crop (x, y, w, h) of src onto all of the preallocated dst.");
    m.def("yuv420_to_rgb", &py_yuv420_to_rgb, py::arg("y"), py::arg("u"), py::arg("v"),
          py::arg("crop"), py::arg("dst"), py::arg("matrix") = "bt601",
          py::arg("full_range") = false, py::arg("bgr") = false, py::arg("method") = "auto",
          "Crop, resize and convert planar YUV 4:2:0 to RGB (or BGR) into dst, in one pass.");
}
