// Max and average pooling, forward and backward, NCHW (see kernels/common.cuh).
//
// Semantics are the CPU path's (fastconv/functional/pool.py) and PyTorch's:
// max pooling scans only the input cells of a window (the -inf padding never
// wins, even over -inf inputs), keeps the first maximum in row-major window
// order (kernel offset k = kh*KW + kw), and lets the first NaN win; the
// average divides by a per-output-position divisor computed by the caller, in
// the accumulator type (float for half: a window of 2049 cells is no half).
#include "common.cuh"

// One thread per output element: the window's maximum and its kernel offset.
template <class T>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ out,
                                        int* __restrict__ argmax,
                                        idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                        idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                        idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const idx_t total = NC * OH * OW;
    for (idx_t i = fc_first_index(); i < total; i += fc_grid_stride()) {
        const fc_cell cell = fc_split(i, OH, OW);
        const idx_t oh = cell.row, ow = cell.col;
        const T* plane = x + cell.plane * H * W;
        acc_t best = fc_neg_inf(acc_t());
        int best_k = -1;  // the first input cell starts the scan
        int k = 0;
        for (idx_t kh = 0; kh < KH; ++kh) {
            const idx_t h = oh * SH - PT + kh * DH;
            for (idx_t kw = 0; kw < KW; ++kw, ++k) {
                const idx_t w = ow * SW - PL + kw * DW;
                if (h < 0 || h >= H || w < 0 || w >= W) continue;
                const acc_t v = fc_load(plane[h * W + w]);
                const bool v_nan = v != v, best_nan = best != best;
                if (best_k < 0 || (v_nan ? !best_nan : (!best_nan && fc_greater(v, best)))) {
                    best = v;
                    best_k = k;
                }
            }
        }
        out[i] = fc_store<T>(best);
        argmax[i] = best_k < 0 ? 0 : best_k;  // a window of padding only: -inf, offset 0
    }
}

// Gather-style: one thread per input element sums the gradients of the
// windows whose maximum it was, in kernel-offset order.
template <class T>
__global__ void max_pool_backward_kernel(const T* __restrict__ dout, const int* __restrict__ argmax,
                                         T* __restrict__ dx,
                                         idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                         idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                         idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const idx_t total = NC * H * W;
    for (idx_t i = fc_first_index(); i < total; i += fc_grid_stride()) {
        const fc_cell cell = fc_split(i, H, W);
        const idx_t h = cell.row, w = cell.col;
        const idx_t plane = cell.plane * OH * OW;
        acc_t sum = 0;
        for (idx_t kh = 0; kh < KH; ++kh) {
            const idx_t oh = fc_window_of(h, PT, kh, DH, SH, OH);
            if (oh < 0) continue;
            for (idx_t kw = 0; kw < KW; ++kw) {
                const idx_t ow = fc_window_of(w, PL, kw, DW, SW, OW);
                if (ow < 0) continue;
                const idx_t o = plane + oh * OW + ow;
                if (argmax[o] == kh * KW + kw) sum += fc_load(dout[o]);
            }
        }
        dx[i] = fc_store<T>(sum);
    }
}

// One thread per output element: the window's sum over the input (the zero
// padding adds nothing) divided by divisor[oh*OW + ow].
template <class T>
__global__ void avg_pool_forward_kernel(const T* __restrict__ x,
                                        const typename fc_acc<T>::type* __restrict__ divisor,
                                        T* __restrict__ out,
                                        idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                        idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                        idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const idx_t total = NC * OH * OW;
    for (idx_t i = fc_first_index(); i < total; i += fc_grid_stride()) {
        const fc_cell cell = fc_split(i, OH, OW);
        const idx_t oh = cell.row, ow = cell.col;
        const T* plane = x + cell.plane * H * W;
        acc_t sum = 0;
        for (idx_t kh = 0; kh < KH; ++kh) {
            const idx_t h = oh * SH - PT + kh * DH;
            if (h < 0 || h >= H) continue;
            for (idx_t kw = 0; kw < KW; ++kw) {
                const idx_t w = ow * SW - PL + kw * DW;
                if (w >= 0 && w < W) sum += fc_load(plane[h * W + w]);
            }
        }
        out[i] = fc_store<T>(sum / fc_load(divisor[oh * OW + ow]));
    }
}

// Gather-style: one thread per input element sums dout / divisor over the
// windows that contain it, in kernel-offset order.
template <class T>
__global__ void avg_pool_backward_kernel(const T* __restrict__ dout,
                                         const typename fc_acc<T>::type* __restrict__ divisor,
                                         T* __restrict__ dx,
                                         idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                         idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                         idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const idx_t total = NC * H * W;
    for (idx_t i = fc_first_index(); i < total; i += fc_grid_stride()) {
        const fc_cell cell = fc_split(i, H, W);
        const idx_t h = cell.row, w = cell.col;
        const idx_t plane = cell.plane * OH * OW;
        acc_t sum = 0;
        for (idx_t kh = 0; kh < KH; ++kh) {
            const idx_t oh = fc_window_of(h, PT, kh, DH, SH, OH);
            if (oh < 0) continue;
            for (idx_t kw = 0; kw < KW; ++kw) {
                const idx_t ow = fc_window_of(w, PL, kw, DW, SW, OW);
                if (ow < 0) continue;
                sum += fc_load(dout[plane + oh * OW + ow]) / fc_load(divisor[oh * OW + ow]);
            }
        }
        dx[i] = fc_store<T>(sum);
    }
}
