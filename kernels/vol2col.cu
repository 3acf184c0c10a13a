// vol2col and its adjoint col2vol: im2col and col2im of a 3-D convolution, NCDHW (see
// kernels/common.cuh for the conventions; a plane is one (n, c) volume of D*H*W).
//
// Column layout, shared with fastconv/im2col.py:
//   cols[n][((c*KD + kd)*KH + kh)*KW + kw][(od*OH + oh)*OW + ow]
//       = x[n][c][od*SD - PF + kd*DD][oh*SH - PT + kh*DH][ow*SW - PL + kw*DW],
//         or 0 in the padding.
// fastconv/_cuda_vol2col.py keeps a volume, its padded extents, the output positions and
// the window below 2^31 elements, so every in-volume offset and tap index is 32-bit. A
// K > 0 instantiation is a K x K x K window with stride S on all three axes.
#include "common.cuh"

// One thread per (n, c, od, oh, ow); it writes the KD*KH*KW column entries of its output
// position, a tap in the padding writing 0 (no padded copy of x is made). Neighbouring
// threads write neighbouring addresses.
template <class T, int K, int S>
__global__ void vol2col_kernel(const T* __restrict__ x, T* __restrict__ cols,
                               idx_t N, idx_t C, idx_t D, idx_t H, idx_t W,
                               idx_t OD, idx_t OH, idx_t OW, idx_t KD, idx_t KH, idx_t KW,
                               idx_t SD, idx_t SH, idx_t SW, idx_t PF, idx_t PT, idx_t PL,
                               idx_t DD, idx_t DH, idx_t DW) {
    const fc_axis<K, S> depths(KD, SD, DD, PF), rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    const idx_t L = OD * OH * OW;
    // the positions as OD*OH rows of OW: one division splits a row into (od, oh)
    fc_for_each_cell(N * C, OD * OH, OW, [&](idx_t nc, unsigned pos, int row, int ow) {
        const int od = row / (int)OH, oh = row - od * (int)OH;
        const T* volume = x + nc * D * H * W;
        T* col = cols + nc * depths.size * rows.size * columns.size * L + pos;
        fc_for_each_tap(depths, od, [&](int, int d) {
            // one unsigned compare tests both ends: a negative d wraps past D
            const bool depth_inside = (unsigned)d < (unsigned)D;
            fc_for_each_tap(rows, oh, [&](int, int h) {
                const bool row_inside = depth_inside && (unsigned)h < (unsigned)H;
                fc_for_each_tap(columns, ow, [&](int, int w) {
                    const bool inside = row_inside && (unsigned)w < (unsigned)W;
                    *col = inside ? volume[fc_offset(d * (int)H + h, w, W)] : fc_zero<T>();
                    col += L;
                });
            });
        });
    });
}

// Gather-style col2vol: one thread per input element (n, c, d, h, w) sums, in ascending
// (kd, kh, kw) order, exactly the column entries that were copied from it. The windows
// covering it are computed once per axis (fc_covering), not searched. No atomics: the
// result does not depend on scheduling.
template <class T, int K, int S>
__global__ void col2vol_kernel(const T* __restrict__ cols, T* __restrict__ x,
                               idx_t N, idx_t C, idx_t D, idx_t H, idx_t W,
                               idx_t OD, idx_t OH, idx_t OW, idx_t KD, idx_t KH, idx_t KW,
                               idx_t SD, idx_t SH, idx_t SW, idx_t PF, idx_t PT, idx_t PL,
                               idx_t DD, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_axis<K, S> depths(KD, SD, DD, PF), rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    const idx_t L = OD * OH * OW;
    fc_for_each_cell(N * C, D * H, W, [&](idx_t nc, unsigned pos, int row, int w) {
        const int d = row / (int)H, h = row - d * (int)H;
        const T* col = cols + nc * depths.size * rows.size * columns.size * L;
        const fc_cover depth_cover = fc_covering(depths, d, OD);
        const fc_cover row_cover = fc_covering(rows, h, OH);
        const fc_cover column_cover = fc_covering(columns, w, OW);
        acc_t sum = 0;
        fc_for_each_covering(depths, depth_cover, [&](int od, int kd) {
            fc_for_each_covering(rows, row_cover, [&](int oh, int kh) {
                const int out_row = od * (int)OH + oh, tap_row = kd * rows.size + kh;
                fc_for_each_covering(columns, column_cover, [&](int ow, int kw) {
                    const T* tap = col + (idx_t)(tap_row * columns.size + kw) * L;
                    sum += fc_load(tap[fc_offset(out_row, ow, OW)]);
                });
            });
        });
        x[nc * D * H * W + pos] = fc_store<T>(sum);
    });
}
