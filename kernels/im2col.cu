// im2col and its adjoint col2im, NCHW (see kernels/common.cuh for the conventions).
//
// Column layout, shared with fastconv/im2col.py:
//   cols[n][(c*KH + kh)*KW + kw][oh*OW + ow]
//       = x[n][c][oh*SH - PT + kh*DH][ow*SW - PL + kw*DW], or 0 in the padding.
#include "common.cuh"

// One thread per (n, c, oh, ow); it writes the KH*KW column entries of its
// output position. Neighbouring threads write neighbouring addresses.
template <class T, int K, int S>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols,
                              idx_t N, idx_t C, idx_t H, idx_t W, idx_t OH, idx_t OW,
                              idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                              idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    const idx_t L = OH * OW;
    fc_for_each_cell(N * C, OH, OW, [&](idx_t nc, unsigned pos, int oh, int ow) {
        const T* plane = x + nc * H * W;
        T* col = cols + nc * rows.size * columns.size * L + pos;
        fc_for_each_tap(rows, oh, [&](int, int h) {
            // one unsigned compare tests both ends: a negative h wraps past H
            const bool row_inside = (unsigned)h < (unsigned)H;
            fc_for_each_tap(columns, ow, [&](int, int w) {
                const bool inside = row_inside && (unsigned)w < (unsigned)W;
                *col = inside ? plane[fc_offset(h, w, W)] : fc_zero<T>();
                col += L;
            });
        });
    });
}

// Gather-style col2im: one thread per input element (n, c, h, w) sums, in
// (kh, kw) order, exactly the column entries that were copied from it. No
// atomics: the result does not depend on scheduling.
template <class T, int K, int S>
__global__ void col2im_kernel(const T* __restrict__ cols, T* __restrict__ x,
                              idx_t N, idx_t C, idx_t H, idx_t W, idx_t OH, idx_t OW,
                              idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                              idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    const idx_t L = OH * OW;
    fc_for_each_cell(N * C, H, W, [&](idx_t nc, unsigned pos, int h, int w) {
        const T* col = cols + nc * rows.size * columns.size * L;
        const fc_cover column_cover = fc_covering(columns, w, OW);  // once, not per row
        acc_t sum = 0;
        fc_for_each_covering(rows, h, OH, [&](int oh, int kh) {
            fc_for_each_covering(columns, column_cover, [&](int ow, int kw) {
                const T* tap = col + (idx_t)(kh * columns.size + kw) * L;
                sum += fc_load(tap[fc_offset(oh, ow, OW)]);
            });
        });
        x[nc * H * W + pos] = fc_store<T>(sum);
    });
}
