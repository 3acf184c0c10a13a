// Helpers shared by the kernels in this directory (included by every .cu file).
//
// Conventions of all fastconv kernels:
// - NCHW arrays, C-contiguous. Plane indices (n*C + c) and the offsets of
//   planes are 64-bit idx_t, so no array size can overflow them; everything
//   inside one plane (rows, columns, in-plane offsets, kernel offsets) is
//   32-bit, because fastconv/_cuda.py refuses planes, padded extents and
//   windows of 2^31 elements or more. Scalar parameters stay idx_t, as the
//   launcher passes every scalar as an int64.
// - A 2-D grid: y walks the planes, x the positions inside a plane, both in
//   grid-stride loops (fc_for_each_cell), so any grid covers any problem
//   (fastconv/_cuda.py caps the grid and packs small planes several to a block).
// - Every kernel is a template <class T, int K, int S>: K > 0 instantiates a
//   K x K window with stride S on both axes and no dilation, known at compile
//   time so the tap loops unroll (FC_UNROLL) and the index math folds; K == 0
//   takes kernel size, stride and dilation at run time. Both visit the same
//   taps in the same order, so they compute the same bits.
// - One thread per output element. No __shared__ memory, no __syncthreads and
//   no atomics: gather-style backward kernels, so every result is written by
//   exactly one thread and two runs give the same bits. The one exception is the
//   tiled matrix product of kernels/conv_gemm.cu, which says how it departs.
// - float and double compute in their own type; fc_half (IEEE binary16
//   storage) is converted to float for every comparison and sum. Comparisons
//   go through fc_greater, and the sums in double of float terms through
//   fc_load_double and fc_round, which -ftz=true cannot change.
#pragma once

typedef long long idx_t;

// Fully unrolls the loop it precedes when its trip count is a compile-time
// constant, and leaves it rolled otherwise (the CPU emulator defines it away).
#ifndef FC_UNROLL
#define FC_UNROLL _Pragma("unroll")
#endif

// Half-precision storage: the bits of an IEEE 754 binary16 value.
struct alignas(2) fc_half {
    unsigned short bits;
};

__device__ __forceinline__ int fc_min(int a, int b) { return a < b ? a : b; }

// Calls body(plane, pos, row, col) for every plane in [0, planes) and every
// position pos = row * cols + col of a rows x cols plane: planes along y,
// positions along x, each in a grid-stride loop. The in-plane index is
// unsigned: below 2^31, plus a grid stride below 2^31, it cannot wrap.
template <class Body>
__device__ __forceinline__ void fc_for_each_cell(idx_t planes, idx_t rows, idx_t cols, Body body) {
    const unsigned width = (unsigned)cols, size = (unsigned)rows * width;
    for (idx_t plane = (idx_t)blockIdx.y * blockDim.y + threadIdx.y; plane < planes;
         plane += (idx_t)gridDim.y * blockDim.y) {
        for (unsigned pos = blockIdx.x * blockDim.x + threadIdx.x; pos < size;
             pos += gridDim.x * blockDim.x) {
            const unsigned row = pos / width;
            body(plane, pos, (int)row, (int)(pos - row * width));
        }
    }
}

// The offset of (row, col) in a plane of the given width, for any position
// of the padded plane (fastconv/_cuda.py keeps it below 2^31 elements, so
// this cannot overflow even where a window reaches into the padding).
__device__ __forceinline__ int fc_offset(int row, int col, idx_t width) {
    return row * (int)width + col;
}

// One axis of a window: kernel size, stride, dilation and the padding before
// the input. In the K > 0 instantiations size, stride and dilation are
// constants (K, S, 1) whatever the run-time arguments say; the launcher picks
// that instantiation only when they agree.
template <int K, int S>
struct fc_axis {
    int size, stride, dilation, pad;

    __device__ fc_axis(idx_t k, idx_t s, idx_t d, idx_t p)
        : size(K ? K : (int)k), stride(K ? S : (int)s), dilation(K ? 1 : (int)d), pad((int)p) {}

    // How many outputs at most can cover one input position: a constant bound
    // for the unrolled loop of a templated window, the actual count n otherwise.
    __device__ int covering_bound(int n) const { return K ? (K + S - 1) / S : n; }
};

// Calls visit(k, p) for every kernel offset k = 0, 1, ... of the window of
// output position o, p being the input position it reads (negative or past
// the input when it falls in the padding).
template <int K, int S, class Visit>
__device__ __forceinline__ void fc_for_each_tap(const fc_axis<K, S>& axis, int o, Visit visit) {
    const int first = o * axis.stride - axis.pad;
    FC_UNROLL
    for (int k = 0; k < axis.size; ++k) visit(k, first + k * axis.dilation);
}

// The output positions first..last (none when last < first) whose windows
// cover input position p along one axis, and p's position in the padded axis.
struct fc_cover {
    int padded, first, last;
};

// The range of o is computed once (as Caffe's and PyTorch's col2im do), not
// searched; a kernel that nests several axes computes each axis's once.
template <int K, int S>
__device__ __forceinline__ fc_cover fc_covering(const fc_axis<K, S>& axis, int p, idx_t out) {
    const int padded = p + axis.pad;  // >= 0: p is an input position
    const int extent = (axis.size - 1) * axis.dilation + 1;
    const int first = padded < extent ? 0 : (int)((unsigned)(padded - extent) / axis.stride) + 1;
    const int last = fc_min((int)((unsigned)padded / axis.stride), (int)out - 1);
    return fc_cover{padded, first, last};
}

// Calls visit(o, k) for every output position o of cover (fc_covering) whose
// window reads the input position through kernel offset k, in ascending k: the
// gather-style backward kernels' view of fc_for_each_tap. InWindowOrder visits them
// in ascending o instead (descending k), the order in which a scatter over the
// windows meets the input (the CPU path's bincount). Only a dilated window needs a
// division per candidate, to skip the o whose offset falls between taps.
template <bool InWindowOrder = false, int K, int S, class Visit>
__device__ __forceinline__ void fc_for_each_covering(const fc_axis<K, S>& axis, fc_cover cover,
                                                     Visit visit) {
    FC_UNROLL
    for (int i = 0; i < axis.covering_bound(cover.last - cover.first + 1); ++i) {
        // o descending: k = (padded - o * stride) / dilation ascending (or the reverse)
        const int o = InWindowOrder ? cover.first + i : cover.last - i;
        // an unrolled loop runs to its bound: fewer outputs cover p
        if (InWindowOrder ? o > cover.last : o < cover.first) break;
        const int offset = cover.padded - o * axis.stride;
        if (axis.dilation == 1) {
            visit(o, offset);
        } else if (offset % axis.dilation == 0) {
            visit(o, offset / axis.dilation);
        }
    }
}

// fc_for_each_covering over the windows (below out) covering input position p.
template <bool InWindowOrder = false, int K, int S, class Visit>
__device__ __forceinline__ void fc_for_each_covering(const fc_axis<K, S>& axis, int p, idx_t out,
                                                     Visit visit) {
    fc_for_each_covering<InWindowOrder>(axis, fc_covering(axis, p, out), visit);
}

// The pairs of adjacent columns (2 * pair, 2 * pair + 1) of a row of width cols: one
// thread each in the 2-D pools' backward (kernels/pool.cu).
__device__ __forceinline__ idx_t fc_pairs(idx_t cols) { return (cols + 1) / 2; }

// The windows covering input position p or p + 1 (when second) along one axis: the
// output positions first..last (some may cover only one of the two), and p's position
// in the padded axis.
template <int K, int S>
__device__ __forceinline__ fc_cover fc_pair_covering(const fc_axis<K, S>& axis, int p,
                                                     bool second, idx_t out) {
    const fc_cover cover = fc_covering(axis, p, out);
    const int last = second ? fc_covering(axis, p + 1, out).last : cover.last;
    return fc_cover{cover.padded, cover.first, last};
}

// Calls visit(o, offset) for every output position o of cover (fc_pair_covering), in
// descending o (ascending kernel offset, as fc_for_each_covering) or, InWindowOrder, in
// ascending o; offset is p's position in the padded axis less the window's start: the
// window reads p where fc_reads(axis, offset) and p + 1 where fc_reads(axis, offset + 1).
// The windows covering either of two adjacent positions start within K + 1 positions of
// the padded axis, which hold at most ceil((K + 1) / S) window starts: the bound of the
// unrolled loop.
template <bool InWindowOrder = false, int K, int S, class Visit>
__device__ __forceinline__ void fc_for_each_pair_covering(const fc_axis<K, S>& axis,
                                                          fc_cover cover, Visit visit) {
    FC_UNROLL
    for (int i = 0; i < (K ? (K + S) / S : cover.last - cover.first + 1); ++i) {
        const int window = InWindowOrder ? cover.first + i : cover.last - i;
        // an unrolled loop runs to its bound: fewer windows
        if (InWindowOrder ? window > cover.last : window < cover.first) break;
        visit(window, cover.padded - window * axis.stride);
    }
}

// Whether a window of the axis has a tap at offset past its start.
template <int K, int S>
__device__ __forceinline__ bool fc_reads(const fc_axis<K, S>& axis, int offset) {
    return offset >= 0 && offset <= (axis.size - 1) * axis.dilation
        && offset % axis.dilation == 0;
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

// double -> binary16, round to nearest, ties to even, in one rounding (integer operations
// only, as fc_float_to_half; through float it would round twice).
__device__ __forceinline__ fc_half fc_double_to_half(double d) {
    const unsigned long long x = (unsigned long long)__double_as_longlong(d);
    const unsigned sign = (unsigned)(x >> 48) & 0x8000u;
    const unsigned long long ax = x & 0x7fffffffffffffffull;
    const unsigned exponent = (unsigned)(ax >> 52);
    unsigned h;
    if (ax > 0x7ff0000000000000ull) {                   // NaN: a quiet NaN
        h = 0x7e00u;
    } else if (ax >= 0x40f0000000000000ull) {           // >= 65536 or inf: inf
        h = 0x7c00u;
    } else if (ax >= 0x3f10000000000000ull) {           // normal half range, from 2^-14
        const unsigned long long rest = ax & ((1ull << 42) - 1);
        h = ((exponent - 1008u) << 10) | (unsigned)((ax >> 42) & 0x3ffu);
        if (rest > (1ull << 41) || (rest == (1ull << 41) && (h & 1u))) ++h;  // may carry to inf
    } else if (ax >= 0x3e60000000000000ull) {           // subnormal half, or rounds to one
        const unsigned long long mantissa = (ax & ((1ull << 52) - 1)) | (1ull << 52);
        const unsigned shift = 1051u - exponent;        // 43 .. 53
        const unsigned long long rest = mantissa & ((1ull << shift) - 1);
        const unsigned long long halfway = 1ull << (shift - 1);
        h = (unsigned)(mantissa >> shift);
        if (rest > halfway || (rest == halfway && (h & 1u))) ++h;
    } else {                                            // at most half the smallest subnormal
        h = 0u;
    }
    fc_half result;
    result.bits = (unsigned short)(sign | h);
    return result;
}

// float <-> double, subnormals kept: cvt.f64.f32 (exact) and cvt.rn.f32.f64 (to nearest,
// ties to even) without .ftz. Under CuPy's -ftz=true NVRTC emits a cast, and
// __double2float_rn too, as cvt.ftz, which flushes a float subnormal read or produced to
// zero, where the CPU path keeps it; inline PTX is left as written. The CPU emulator
// (tests/cuda_emu/cuda_emu.h) defines both itself: g++ has no PTX.
#ifndef FC_CUDA_EMU
__device__ __forceinline__ double fc_widen(float v) {
    double d;
    asm("cvt.f64.f32 %0, %1;" : "=d"(d) : "f"(v));
    return d;
}
__device__ __forceinline__ float fc_narrow(double v) {
    float f;
    asm("cvt.rn.f32.f64 %0, %1;" : "=f"(f) : "d"(v));
    return f;
}
#endif

// TF32 on the tensor cores (sm_80+, which have both instructions; earlier GPUs trap, and
// the launcher refuses the kernels that use them there: fastconv/_cuda_registry.py's
// CAPABILITY). fc_tf32 rounds a float to TF32, 10 mantissa bits, to nearest with ties away
// from zero (cvt.rna.tf32.f32). fc_mma_tf32 is one warp's d += a b of a (16 x 8) a by an
// (8 x 8) b, both TF32 (mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32), every lane
// calling it together, in the PTX ISA's fragment layout (lane = 4 * group + member):
// a0..a3 are a at (group, member), (group + 8, member), (group, member + 4) and
// (group + 8, member + 4); b0, b1 are b at (member, group) and (member + 4, group); d0..d3
// are d at (group, 2*member), (group, 2*member + 1), (group + 8, 2*member) and
// (group + 8, 2*member + 1). The CPU emulator (tests/cuda_emu/cuda_emu.h) defines both.
#ifndef FC_CUDA_EMU
__device__ __forceinline__ float fc_tf32(float v) {
#if __CUDA_ARCH__ >= 800
    unsigned int rounded;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(rounded) : "f"(v));
    return __uint_as_float(rounded);
#else
    __trap();
    return v;
#endif
}
__device__ __forceinline__ void fc_mma_tf32(float (&d)[4], const float (&a)[4],
                                            const float (&b)[2]) {
#if __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])), "r"(__float_as_uint(a[2])),
          "r"(__float_as_uint(a[3])), "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])));
#else
    __trap();
#endif
}
#endif

// A value of T as a double, exactly: the terms of the sums below.
__device__ __forceinline__ double fc_load_double(float v) { return fc_widen(v); }
__device__ __forceinline__ double fc_load_double(double v) { return v; }
__device__ __forceinline__ double fc_load_double(fc_half v) {
    return fc_widen(fc_half_to_float(v));
}

// A double sum rounded once to T, to nearest even, subnormals included: the gathers that
// sum as the CPU path's bincount does (kernels/unpool.cu, the max pools' backward).
template <class T> __device__ __forceinline__ T fc_round(double v);
template <> __device__ __forceinline__ double fc_round<double>(double v) { return v; }
template <> __device__ __forceinline__ float fc_round<float>(double v) { return fc_narrow(v); }
template <> __device__ __forceinline__ fc_half fc_round<fc_half>(double v) {
    return fc_double_to_half(v);
}

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

// Whether max pooling replaces its best value so far by v: the first input
// cell always (best_k < 0), then a NaN over a number, or a greater number.
// The rule of every max-pool kernel (kernels/pool.cu, kernels/pool3d.cu).
template <class A>
__device__ __forceinline__ bool fc_max_pool_takes(A v, A best, int best_k) {
    const bool v_nan = v != v, best_nan = best != best;
    return best_k < 0 || (v_nan ? !best_nan : (!best_nan && fc_greater(v, best)));
}

__device__ __forceinline__ float fc_neg_inf(float) { return __uint_as_float(0xff800000u); }
__device__ __forceinline__ double fc_neg_inf(double) {
    return __longlong_as_double((long long)0xfff0000000000000ull);
}
