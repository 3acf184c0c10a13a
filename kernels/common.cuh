// Helpers shared by the kernels in this directory (included by every .cu file).
//
// Conventions of all fastconv kernels:
// - NCHW arrays, C-contiguous; every size, offset and loop counter is a 64-bit
//   idx_t, so no index can overflow whatever the array size. Divisions (the
//   costly part of index arithmetic) are 32-bit where they stay inside one
//   image plane: fastconv/_cuda.py refuses planes of 2^31 elements or more.
// - One thread per output element, in grid-stride loops: any grid size covers
//   any problem size (fastconv/_cuda.py caps the grid).
// - No __shared__ memory, no __syncthreads and no atomics: gather-style
//   backward kernels, so every result is written by exactly one thread and
//   two runs give the same bits.
// - float and double compute in their own type; fc_half (IEEE binary16
//   storage) is converted to float for every comparison and sum. Comparisons
//   go through fc_greater, which -ftz=true cannot change.
#pragma once

typedef long long idx_t;

// Half-precision storage: the bits of an IEEE 754 binary16 value.
struct alignas(2) fc_half {
    unsigned short bits;
};

__device__ __forceinline__ idx_t fc_first_index() {
    return (idx_t)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ idx_t fc_grid_stride() {
    return (idx_t)gridDim.x * blockDim.x;
}

// A flat element index split into its image plane (n*C + c) and its row and
// column in that plane: one 64-bit division, the others 32-bit.
struct fc_cell {
    idx_t plane;
    int row, col;
};

__device__ __forceinline__ fc_cell fc_split(idx_t i, idx_t rows, idx_t cols) {
    fc_cell cell;
    cell.plane = i / (rows * cols);
    const int rest = (int)(i - cell.plane * rows * cols);
    cell.row = rest / (int)cols;
    cell.col = rest % (int)cols;
    return cell;
}

// The output position (along one axis) whose window reads input position p
// through kernel offset k, or -1 when there is none. The gather-style
// backward kernels use it to find what an input element contributed to.
// Per-axis values fit in 32 bits, so the division is 32-bit.
__device__ __forceinline__ idx_t fc_window_of(idx_t p, idx_t pad, idx_t k, idx_t dilation,
                                             idx_t stride, idx_t out) {
    const int start = (int)(p + pad - k * dilation);
    const int step = (int)stride;
    if (start < 0 || start % step != 0) return -1;
    const int o = start / step;
    return o < out ? o : -1;
}

// binary16 -> binary32, exact (integer operations only, so denormal flushing
// cannot touch it; half subnormals become normal floats).
__device__ __forceinline__ float fc_half_to_float(fc_half h) {
    unsigned int sign = (unsigned int)(h.bits & 0x8000u) << 16;
    unsigned int exponent = (h.bits >> 10) & 0x1fu;
    unsigned int mantissa = h.bits & 0x3ffu;
    unsigned int bits;
    if (exponent == 0x1fu) {                       // inf or NaN
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {                    // normal
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {                    // signed zero
        bits = sign;
    } else {                                       // subnormal: normalise
        unsigned int e = 113u;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
    }
    return __uint_as_float(bits);
}

// binary32 -> binary16, round to nearest, ties to even (as cvt.rn.f16.f32).
__device__ __forceinline__ fc_half fc_float_to_half(float f) {
    unsigned int x = __float_as_uint(f);
    unsigned int sign = (x >> 16) & 0x8000u;
    unsigned int ax = x & 0x7fffffffu;
    unsigned int h;
    if (ax > 0x7f800000u) {                        // NaN: a quiet NaN
        h = 0x7e00u;
    } else if (ax >= 0x47800000u) {                // >= 65536 or inf: inf
        h = 0x7c00u;
    } else if (ax >= 0x38800000u) {                // normal half range
        unsigned int rest = ax & 0x1fffu;
        h = (((ax >> 23) - 112u) << 10) | ((ax >> 13) & 0x3ffu);
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into inf
    } else if (ax >= 0x33000000u) {                // subnormal half, or rounds to one
        unsigned int mantissa = (ax & 0x7fffffu) | 0x800000u;
        unsigned int shift = 126u - (ax >> 23);    // 14 .. 24
        unsigned int rest = mantissa & ((1u << shift) - 1u);
        unsigned int halfway = 1u << (shift - 1u);
        h = mantissa >> shift;
        if (rest > halfway || (rest == halfway && (h & 1u))) ++h;
    } else {                                       // below half of the smallest subnormal
        h = 0u;
    }
    fc_half result;
    result.bits = (unsigned short)(sign | h);
    return result;
}

// The type sums and comparisons are done in, and the conversions to and from it.
template <class T> struct fc_acc { typedef T type; };
template <> struct fc_acc<fc_half> { typedef float type; };

__device__ __forceinline__ float fc_load(fc_half v) { return fc_half_to_float(v); }
__device__ __forceinline__ float fc_load(float v) { return v; }
__device__ __forceinline__ double fc_load(double v) { return v; }

template <class T> __device__ __forceinline__ T fc_store(typename fc_acc<T>::type v) { return v; }
template <> __device__ __forceinline__ fc_half fc_store<fc_half>(float v) { return fc_float_to_half(v); }

template <class T> __device__ __forceinline__ T fc_zero() { return fc_store<T>(0); }

// a > b for two values that are not NaN, as IEEE orders them. For float the
// comparison is on integers: CuPy compiles with -ftz=true, under which a float
// compare treats subnormals as zero (1e-40 > 0 would be false), and the CPU
// path compares them exactly. The integer key orders floats as their values
// (negatives mirrored below zero); -0 and +0 get the same key, as IEEE has them equal.
__device__ __forceinline__ int fc_ordered_key(float v) {
    const int bits = __float_as_int(v);
    return bits >= 0 ? bits : (int)(0x80000000u - (unsigned int)bits);
}
__device__ __forceinline__ bool fc_greater(float a, float b) {
    return fc_ordered_key(a) > fc_ordered_key(b);
}
__device__ __forceinline__ bool fc_greater(double a, double b) { return a > b; }

__device__ __forceinline__ float fc_neg_inf(float) { return __uint_as_float(0xff800000u); }
__device__ __forceinline__ double fc_neg_inf(double) {
    return __longlong_as_double((long long)0xfff0000000000000ull);
}
