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
template <class T, int K, int S>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ out,
                                        int* __restrict__ argmax,
                                        idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                        idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                        idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    fc_for_each_cell(NC, OH, OW, [&](idx_t nc, unsigned pos, int oh, int ow) {
        const T* plane = x + nc * H * W;
        acc_t best = fc_neg_inf(acc_t());
        int best_k = -1;  // the first input cell starts the scan
        fc_for_each_tap(rows, oh, [&](int kh, int h) {
            if ((unsigned)h >= (unsigned)H) return;  // a padding row: no input cell
            fc_for_each_tap(columns, ow, [&](int kw, int w) {
                if ((unsigned)w >= (unsigned)W) return;
                const acc_t v = fc_load(plane[fc_offset(h, w, W)]);
                if (fc_max_pool_takes(v, best, best_k)) {
                    best = v;
                    best_k = kh * columns.size + kw;
                }
            });
        });
        const idx_t o = nc * OH * OW + pos;
        out[o] = fc_store<T>(best);
        argmax[o] = best_k < 0 ? 0 : best_k;  // a window of padding only: -inf, offset 0
    });
}

// Gather-style: one thread per input element sums the gradients of the windows
// whose maximum it was, in window order (row-major (oh, ow)) and in double, rounded
// once: the CPU path's scatter (fastconv/_cpu/pool.py, a bincount), bit for bit.
template <class T, int K, int S>
__global__ void max_pool_backward_kernel(const T* __restrict__ dout, const int* __restrict__ argmax,
                                         T* __restrict__ dx,
                                         idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                         idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                         idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    fc_for_each_cell(NC, H, W, [&](idx_t nc, unsigned pos, int h, int w) {
        const idx_t plane = nc * OH * OW;
        const fc_cover column_cover = fc_covering(columns, w, OW);  // once, not per row
        double sum = 0;
        fc_for_each_covering<true>(rows, h, OH, [&](int oh, int kh) {
            fc_for_each_covering<true>(columns, column_cover, [&](int ow, int kw) {
                const idx_t o = plane + fc_offset(oh, ow, OW);
                if (argmax[o] == kh * columns.size + kw) sum += fc_load(dout[o]);
            });
        });
        dx[nc * H * W + pos] = fc_round<T>(sum);
    });
}

// One thread per output element: the window's sum over the input (the zero
// padding adds nothing) divided by divisor[oh*OW + ow].
template <class T, int K, int S>
__global__ void avg_pool_forward_kernel(const T* __restrict__ x,
                                        const typename fc_acc<T>::type* __restrict__ divisor,
                                        T* __restrict__ out,
                                        idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                        idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                        idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    fc_for_each_cell(NC, OH, OW, [&](idx_t nc, unsigned pos, int oh, int ow) {
        const T* plane = x + nc * H * W;
        acc_t sum = 0;
        fc_for_each_tap(rows, oh, [&](int, int h) {
            if ((unsigned)h >= (unsigned)H) return;
            fc_for_each_tap(columns, ow, [&](int, int w) {
                if ((unsigned)w < (unsigned)W) sum += fc_load(plane[fc_offset(h, w, W)]);
            });
        });
        out[nc * OH * OW + pos] = fc_store<T>(sum / fc_load(divisor[pos]));
    });
}

// Gather-style: one thread per input element sums dout / divisor over the
// windows that contain it, in kernel-offset order.
template <class T, int K, int S>
__global__ void avg_pool_backward_kernel(const T* __restrict__ dout,
                                         const typename fc_acc<T>::type* __restrict__ divisor,
                                         T* __restrict__ dx,
                                         idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                         idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                         idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    fc_for_each_cell(NC, H, W, [&](idx_t nc, unsigned pos, int h, int w) {
        const idx_t plane = nc * OH * OW;
        const fc_cover column_cover = fc_covering(columns, w, OW);  // once, not per row
        acc_t sum = 0;
        fc_for_each_covering(rows, h, OH, [&](int oh, int) {
            fc_for_each_covering(columns, column_cover, [&](int ow, int) {
                const unsigned o = fc_offset(oh, ow, OW);
                sum += fc_load(dout[plane + o]) / fc_load(divisor[o]);
            });
        });
        dx[nc * H * W + pos] = fc_store<T>(sum);
    });
}
