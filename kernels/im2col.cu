// im2col and its adjoint col2im, NCHW (see kernels/common.cuh for the conventions).
//
// Column layout, shared with fastconv/im2col.py:
//   cols[n][(c*KH + kh)*KW + kw][oh*OW + ow]
//       = x[n][c][oh*SH - PT + kh*DH][ow*SW - PL + kw*DW], or 0 in the padding.
#include "common.cuh"

// One thread per (n, c, oh, ow); it writes the KH*KW column entries of its
// output position. Neighbouring threads write neighbouring addresses.
template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols,
                              idx_t N, idx_t C, idx_t H, idx_t W, idx_t OH, idx_t OW,
                              idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                              idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    const idx_t L = OH * OW;
    const idx_t total = N * C * L;
    for (idx_t i = fc_first_index(); i < total; i += fc_grid_stride()) {
        const fc_cell cell = fc_split(i, OH, OW);
        const idx_t nc = cell.plane, oh = cell.row, ow = cell.col;
        const T* plane = x + nc * H * W;
        T* col = cols + nc * KH * KW * L + oh * OW + ow;
        for (idx_t kh = 0; kh < KH; ++kh) {
            const idx_t h = oh * SH - PT + kh * DH;
            for (idx_t kw = 0; kw < KW; ++kw) {
                const idx_t w = ow * SW - PL + kw * DW;
                const bool inside = h >= 0 && h < H && w >= 0 && w < W;
                col[(kh * KW + kw) * L] = inside ? plane[h * W + w] : fc_zero<T>();
            }
        }
    }
}

// Gather-style col2im: one thread per input element (n, c, h, w) sums, in
// (kh, kw) order, exactly the column entries that were copied from it. No
// atomics: the result does not depend on scheduling.
template <class T>
__global__ void col2im_kernel(const T* __restrict__ cols, T* __restrict__ x,
                              idx_t N, idx_t C, idx_t H, idx_t W, idx_t OH, idx_t OW,
                              idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                              idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const idx_t L = OH * OW;
    const idx_t total = N * C * H * W;
    for (idx_t i = fc_first_index(); i < total; i += fc_grid_stride()) {
        const fc_cell cell = fc_split(i, H, W);
        const idx_t nc = cell.plane, h = cell.row, w = cell.col;
        const T* col = cols + nc * KH * KW * L;
        acc_t sum = 0;
        for (idx_t kh = 0; kh < KH; ++kh) {
            const idx_t oh = fc_window_of(h, PT, kh, DH, SH, OH);
            if (oh < 0) continue;
            for (idx_t kw = 0; kw < KW; ++kw) {
                const idx_t ow = fc_window_of(w, PL, kw, DW, SW, OW);
                if (ow < 0) continue;
                sum += fc_load(col[(kh * KW + kw) * L + oh * OW + ow]);
            }
        }
        x[i] = fc_store<T>(sum);
    }
}
