// Resizing ('nearest' and 'bilinear' interpolate), forward and backward, NCHW (see
// kernels/common.cuh for the conventions).
//
// Both modes are separable, and the caller (fastconv/functional/interpolate.py) computes
// each axis's taps on the host: a table of source indices (taps, positions), int32, and,
// when the axis is weighted, a table of weights of the same shape in the accumulator type.
// An output reads the sum of weight * value over its taps; an unweighted axis takes the
// values themselves (one tap: a copy; several: a plain sum). Tap t of position p is entry
// t * positions + p.
//
// The arithmetic is the CPU path's, operation for operation, so the results are its bits:
// the forward combines the H axis's taps first, then the W axis's over those sums (no
// rounding in between: the CPU path holds the H pass in the accumulator type); the
// backward runs the W axis first, then H, over the adjoint tables (for each input, the
// outputs that read it in ascending order; the index `out`, one past the last output,
// where fewer read it, standing for the zero row the CPU path appends). The first tap
// starts the sum (0 + -0 would be +0), and every product and sum is rounded on its own:
// the _rn intrinsics, which the compiler never contracts into a fused multiply-add.
#include "common.cuh"

__device__ __forceinline__ float fc_interp_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double fc_interp_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float fc_interp_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double fc_interp_add(double a, double b) { return __dadd_rn(a, b); }

// One axis's tap tables: `index` and, when `weighted`, `weight`, each (taps, positions).
template <class A>
struct fc_interp_axis {
    const int* index;
    const A* weight;
    int taps, positions;
    bool weighted;

    __device__ fc_interp_axis(const int* index_, const A* weight_, idx_t taps_, idx_t positions_,
                              idx_t weighted_)
        : index(index_), weight(weight_), taps((int)taps_), positions((int)positions_),
          weighted(weighted_ != 0) {}

    // sum over the taps t of position p of weight[t][p] * value(index[t][p]), in tap order
    template <class Value>
    __device__ __forceinline__ A combine(int p, Value value) const {
        A sum = 0;
        for (int t = 0, entry = p; t < taps; ++t, entry += positions) {
            const A v = value(index[entry]);
            const A term = weighted ? fc_interp_mul(v, weight[entry]) : v;
            sum = t == 0 ? term : fc_interp_add(sum, term);
        }
        return sum;
    }
};

// One thread per output element: the W axis's taps over the H axis's sums at their columns.
template <class T, int K, int S>
__global__ void interpolate_forward_kernel(const T* __restrict__ x,
                                           const int* __restrict__ row_index,
                                           const typename fc_acc<T>::type* __restrict__ row_weight,
                                           const int* __restrict__ col_index,
                                           const typename fc_acc<T>::type* __restrict__ col_weight,
                                           T* __restrict__ out, idx_t NC, idx_t H, idx_t W,
                                           idx_t OH, idx_t OW, idx_t TH, idx_t TW,
                                           idx_t weighted_h, idx_t weighted_w) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_interp_axis<acc_t> rows(row_index, row_weight, TH, OH, weighted_h);
    const fc_interp_axis<acc_t> columns(col_index, col_weight, TW, OW, weighted_w);
    fc_for_each_cell(NC, OH, OW, [&](idx_t nc, unsigned pos, int oh, int ow) {
        const T* plane = x + nc * H * W;
        const acc_t value = columns.combine(ow, [&](int col) {
            return rows.combine(oh, [&](int h) { return fc_load(plane[fc_offset(h, col, W)]); });
        });
        out[nc * OH * OW + pos] = fc_store<T>(value);
    });
}

// Gather-style: one thread per input element sums, over the adjoint H taps, the W pass of
// the output rows that read it; index OH (OW) is the appended zero row (column). No atomics.
template <class T, int K, int S>
__global__ void interpolate_backward_kernel(const T* __restrict__ dout,
                                            const int* __restrict__ row_index,
                                            const typename fc_acc<T>::type* __restrict__ row_weight,
                                            const int* __restrict__ col_index,
                                            const typename fc_acc<T>::type* __restrict__ col_weight,
                                            T* __restrict__ dx, idx_t NC, idx_t H, idx_t W,
                                            idx_t OH, idx_t OW, idx_t MH, idx_t MW,
                                            idx_t weighted_h, idx_t weighted_w) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_interp_axis<acc_t> rows(row_index, row_weight, MH, H, weighted_h);
    const fc_interp_axis<acc_t> columns(col_index, col_weight, MW, W, weighted_w);
    fc_for_each_cell(NC, H, W, [&](idx_t nc, unsigned pos, int h, int col) {
        const T* grad = dout + nc * OH * OW;
        const acc_t value = rows.combine(h, [&](int oh) -> acc_t {
            if (oh == (int)OH) return 0;  // the zero row: no output reads this input here
            return columns.combine(col, [&](int ow) -> acc_t {
                return ow == (int)OW ? acc_t(0) : fc_load(grad[fc_offset(oh, ow, OW)]);
            });
        });
        dx[nc * H * W + pos] = fc_store<T>(value);
    });
}
