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

// Gather-style: one thread per pair of adjacent input elements of a row (columns
// w = 2 * pair and w + 1, which may lie past the row) sums the gradients of the
// windows whose maximum each was, in window order (row-major (oh, ow)) and in double,
// rounded once: the CPU path's scatter (fastconv/_cpu/pool.py, a bincount), bit for
// bit. Adjacent columns share most of their windows (at stride 2 all of them), so the
// pair shares the index arithmetic, the row's covering windows and each window's
// argmax load.
template <class T, int K, int S>
__global__ void max_pool_backward_kernel(const T* __restrict__ dout, const int* __restrict__ argmax,
                                         T* __restrict__ dx,
                                         idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                         idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                         idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    fc_for_each_cell(NC, H, fc_pairs(W), [&](idx_t nc, unsigned, int h, int pair) {
        const int w = 2 * pair;
        const bool second = w + 1 < W;
        const T* dout_plane = dout + nc * OH * OW;
        const int* argmax_plane = argmax + nc * OH * OW;
        const fc_cover cover = fc_pair_covering(columns, w, second, OW);  // once, not per row
        double sums[2] = {0, 0};
        fc_for_each_covering<true>(rows, h, OH, [&](int oh, int kh) {
            fc_for_each_pair_covering<true>(columns, cover, [&](int ow, int offset) {
                const int o = fc_offset(oh, ow, OW);
                // the winner's kernel column if it lies in this row of the window, and
                // which of the pair it is: 0 or 1 (another value: neither). A padding-only
                // window's winner (offset 0, in the padding) is never w, and is w + 1 only
                // past the row's end, where nothing is written.
                const int k = argmax_plane[o] - kh * columns.size;
                const int won = k * columns.dilation - offset;
                const bool in_row = (unsigned)k < (unsigned)columns.size;
                const bool first = in_row && won == 0, next = in_row && won == 1;
                // Loaded whether or not either column won (o is a window of the plane): the
                // neighbouring threads read the same lines, and no branch is taken. Adding +0
                // where a column did not win changes no sum (they start at +0, so none is
                // -0, the one value +0 changes).
                const double g = fc_load_double(dout_plane[o]);
                sums[0] += first ? g : 0.0;
                sums[1] += next ? g : 0.0;
            });
        });
        T* dx_pair = dx + nc * H * W + fc_offset(h, w, W);
        dx_pair[0] = fc_round<T>(sums[0]);
        if (second) dx_pair[1] = fc_round<T>(sums[1]);
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

// Gather-style: one thread per pair of adjacent input elements of a row (as the max
// pool's) sums dout / divisor over the windows that contain each, in kernel-offset
// order; each window's share is computed once for the pair.
template <class T, int K, int S>
__global__ void avg_pool_backward_kernel(const T* __restrict__ dout,
                                         const typename fc_acc<T>::type* __restrict__ divisor,
                                         T* __restrict__ dx,
                                         idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                         idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                         idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    fc_for_each_cell(NC, H, fc_pairs(W), [&](idx_t nc, unsigned, int h, int pair) {
        const int w = 2 * pair;
        const bool second = w + 1 < W;
        const T* dout_plane = dout + nc * OH * OW;
        const fc_cover cover = fc_pair_covering(columns, w, second, OW);  // once, not per row
        acc_t sums[2] = {0, 0};
        fc_for_each_covering(rows, h, OH, [&](int oh, int) {
            fc_for_each_pair_covering(columns, cover, [&](int ow, int offset) {
                const int o = fc_offset(oh, ow, OW);
                const acc_t share = fc_load(dout_plane[o]) / fc_load(divisor[o]);
                // +0 where the window misses a column changes no sum (as in the max pool's)
                sums[0] += fc_reads(columns, offset) ? share : acc_t(0);
                sums[1] += fc_reads(columns, offset + 1) ? share : acc_t(0);
            });
        });
        T* dx_pair = dx + nc * H * W + fc_offset(h, w, W);
        dx_pair[0] = fc_store<T>(sums[0]);
        if (second) dx_pair[1] = fc_store<T>(sums[1]);
    });
}
