// Depthwise convolution (groups == C), forward and backward, NCHW (see kernels/common.cuh
// for the conventions).
//
// Each input channel c has M filters, f = c*M + m of F = C*M, weights (F, 1, KH, KW) read
// as (F, KH*KW):
//   out[n][f][oh][ow] = sum over (kh, kw) of x[n][c][oh*SH - PT + kh*DH][ow*SW - PL + kw*DW]
//                       * w[f][kh][kw], + b[f],
// the taps in the padding adding nothing. No columns, no matrix products: every kernel
// reads x, w and dout where they lie. fastconv/_cuda.py keeps F*(KH*KW + 1) below 2^31,
// so filter and tap offsets are 32-bit.
#include "common.cuh"

// One thread per output element: its window's taps in (kh, kw) order, then the bias
// (not read when has_bias is 0; the caller passes any array of T).
template <class T, int K, int S>
__global__ void depthwise_forward_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                         const T* __restrict__ b, T* __restrict__ out,
                                         idx_t N, idx_t C, idx_t M, idx_t has_bias,
                                         idx_t H, idx_t W, idx_t OH, idx_t OW,
                                         idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                         idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    const idx_t F = C * M;
    fc_for_each_cell(N * F, OH, OW, [&](idx_t nf, unsigned pos, int oh, int ow) {
        const idx_t n = nf / F;
        const int f = (int)(nf - n * F);
        const T* plane = x + (n * C + f / (int)M) * H * W;
        const T* filter = w + f * rows.size * columns.size;
        acc_t sum = 0;
        fc_for_each_tap(rows, oh, [&](int kh, int h) {
            if ((unsigned)h >= (unsigned)H) return;  // a padding row adds nothing
            fc_for_each_tap(columns, ow, [&](int kw, int col) {
                if ((unsigned)col < (unsigned)W)
                    sum += fc_load(plane[fc_offset(h, col, W)]) *
                           fc_load(filter[kh * columns.size + kw]);
            });
        });
        if (has_bias) sum += fc_load(b[f]);
        out[nf * OH * OW + pos] = fc_store<T>(sum);
    });
}

// Gather-style: one thread per input element (n, c, h, w) sums, for each of the channel's
// M filters in order, dout times the weight over the windows covering it, in ascending
// (kh, kw): the range of windows computed from the position (as col2im does), not searched.
// No atomics.
template <class T, int K, int S>
__global__ void depthwise_backward_data_kernel(const T* __restrict__ dout,
                                               const T* __restrict__ w, T* __restrict__ dx,
                                               idx_t N, idx_t C, idx_t M,
                                               idx_t H, idx_t W, idx_t OH, idx_t OW,
                                               idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                               idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    const int taps = rows.size * columns.size;
    fc_for_each_cell(N * C, H, W, [&](idx_t nc, unsigned pos, int h, int col) {
        // filter planes n*F + c*M + m of dout, filters c*M + m of w
        const T* grad = dout + nc * M * OH * OW;
        const T* filter = w + (int)(nc % C) * (int)M * taps;
        // the windows covering (h, col), once for all the channel's filters
        const fc_cover row_cover = fc_covering(rows, h, OH);
        const fc_cover column_cover = fc_covering(columns, col, OW);
        acc_t sum = 0;
        for (int m = 0; m < (int)M; ++m, grad += OH * OW, filter += taps) {
            fc_for_each_covering(rows, row_cover, [&](int oh, int kh) {
                fc_for_each_covering(columns, column_cover, [&](int ow, int kw) {
                    sum += fc_load(grad[fc_offset(oh, ow, OW)]) *
                           fc_load(filter[kh * columns.size + kw]);
                });
            });
        }
        dx[nc * H * W + pos] = fc_store<T>(sum);
    });
}

// The output positions [first, last) whose tap k of the axis reads an input position
// inside [0, size): o * stride - pad + k * dilation >= 0 and < size, o < out.
struct fc_span {
    int first, last;
};

template <int K, int S>
__device__ __forceinline__ fc_span fc_inside(const fc_axis<K, S>& axis, int k, idx_t size,
                                             idx_t out) {
    const int start = k * axis.dilation - axis.pad;  // the input position of output 0
    const int end = (int)size - start;               // o * stride < end
    fc_span span;
    span.first = start >= 0 ? 0 : (int)(((unsigned)-start + axis.stride - 1) / axis.stride);
    span.last = end <= 0 ? 0 : fc_min((int)(((unsigned)end - 1) / axis.stride) + 1, (int)out);
    return span;
}

// One thread per (image, filter, slot) of partials (N, F, KH*KW + 1), in the accumulator
// type: slot kh*KW + kw sums x at that tap times dout over the output positions where the
// tap falls inside the input (a rectangle, computed once), in row-major order; the last
// slot sums dout itself (the bias gradient). With accumulate the sums are added to what
// the slots hold (later chunks of a batch). Each slot is written by its own thread only.
template <class T, int K, int S>
__global__ void depthwise_weight_partials_kernel(const T* __restrict__ x,
                                                 const T* __restrict__ dout,
                                                 typename fc_acc<T>::type* __restrict__ partials,
                                                 idx_t N, idx_t C, idx_t M, idx_t accumulate,
                                                 idx_t H, idx_t W, idx_t OH, idx_t OW,
                                                 idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                                 idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    const int taps = rows.size * columns.size;
    const idx_t F = C * M;
    fc_for_each_cell(N, F, taps + 1, [&](idx_t n, unsigned pos, int f, int tap) {
        const T* grad = dout + (n * F + f) * OH * OW;
        acc_t sum = 0;
        if (tap == taps) {
            for (int o = 0; o < (int)(OH * OW); ++o) sum += fc_load(grad[o]);
        } else {
            const int kh = tap / columns.size, kw = tap - kh * columns.size;
            const T* plane = x + (n * C + f / (int)M) * H * W;
            const fc_span oh_span = fc_inside(rows, kh, H, OH);
            const fc_span ow_span = fc_inside(columns, kw, W, OW);
            for (int oh = oh_span.first; oh < oh_span.last; ++oh) {
                const int h = oh * rows.stride - rows.pad + kh * rows.dilation;
                for (int ow = ow_span.first; ow < ow_span.last; ++ow) {
                    const int col = ow * columns.stride - columns.pad + kw * columns.dilation;
                    sum += fc_load(plane[fc_offset(h, col, W)]) *
                           fc_load(grad[fc_offset(oh, ow, OW)]);
                }
            }
        }
        acc_t* slot = partials + n * F * (taps + 1) + pos;
        *slot = accumulate ? *slot + sum : sum;
    });
}
