// 3-D max and average pooling, forward and backward, NCDHW (see kernels/common.cuh; a
// plane is one (n, c) volume of D*H*W).
//
// kernels/pool.cu's kernels with a depth axis in front, under the same rules (the CPU
// path's, fastconv/functional/pool3d.py, and PyTorch's): max pooling scans only the input
// cells of a window (the -inf padding never wins, even over -inf inputs), keeps the first
// maximum in row-major window order, the flat kernel offset k = (kd*KH + kh)*KW + kw being
// the argmax, and lets the first NaN win (fc_max_pool_takes); the average divides by a
// per-output-position divisor (OD, OH, OW) computed by the caller in the accumulator type.
// Every sum adds its terms in ascending k, as the CPU path adds its kernel-offset slabs,
// but the max pool's gradient: in window order and in double, as the CPU path's scatter.
// fastconv/_cuda_pool3d.py keeps a volume, its padded extents, the output positions and the
// window below 2^31 elements, so in-volume offsets and kernel offsets are 32-bit. A K > 0
// instantiation is a K x K x K window with stride S on all three axes.
#include "common.cuh"

// The three axes of a window.
template <int K, int S>
struct fc_window3 {
    fc_axis<K, S> depths, rows, columns;

    __device__ fc_window3(idx_t KD, idx_t KH, idx_t KW, idx_t SD, idx_t SH, idx_t SW,
                          idx_t PF, idx_t PT, idx_t PL, idx_t DD, idx_t DH, idx_t DW)
        : depths(KD, SD, DD, PF), rows(KH, SH, DH, PT), columns(KW, SW, DW, PL) {}

    // The flat kernel offset of tap (kd, kh, kw): the argmax of max pooling.
    __device__ int tap(int kd, int kh, int kw) const {
        return (kd * rows.size + kh) * columns.size + kw;
    }
};

// The offset of (d, h, w) in a volume of H x W planes.
__device__ __forceinline__ int fc_offset3(int d, int h, int w, idx_t H, idx_t W) {
    return fc_offset(fc_offset(d, h, H), w, W);
}

// Calls body(plane, pos, d, h, w) for every position pos = (d*H + h)*W + w of every
// D x H x W volume: fc_for_each_cell over D*H rows of W, one division splitting a row.
template <class Body>
__device__ __forceinline__ void fc_for_each_voxel(idx_t planes, idx_t D, idx_t H, idx_t W,
                                                  Body body) {
    fc_for_each_cell(planes, D * H, W, [&](idx_t plane, unsigned pos, int row, int w) {
        const unsigned d = (unsigned)row / (unsigned)H;
        body(plane, pos, (int)d, row - (int)(d * (unsigned)H), w);
    });
}

// Calls visit(k, offset) for every input cell of the window of output (od, oh, ow), in
// ascending flat kernel offset k, offset being the cell's in its volume; the padding is
// skipped (one unsigned compare tests both ends: a negative position wraps past the axis).
template <int K, int S, class Visit>
__device__ __forceinline__ void fc_for_each_input_tap(const fc_window3<K, S>& window, int od,
                                                      int oh, int ow, idx_t D, idx_t H, idx_t W,
                                                      Visit visit) {
    fc_for_each_tap(window.depths, od, [&](int kd, int d) {
        if ((unsigned)d >= (unsigned)D) return;  // a padding plane: no input cell
        fc_for_each_tap(window.rows, oh, [&](int kh, int h) {
            if ((unsigned)h >= (unsigned)H) return;
            fc_for_each_tap(window.columns, ow, [&](int kw, int w) {
                if ((unsigned)w < (unsigned)W) {
                    visit(window.tap(kd, kh, kw), fc_offset3(d, h, w, H, W));
                }
            });
        });
    });
}

// Calls visit(k, o) for every output position whose window reads input (d, h, w) through
// flat kernel offset k, o being the output's offset in its volume, in ascending k (with
// InWindowOrder in ascending o). Each axis's range of covering outputs is computed once
// (fc_covering), not searched.
template <bool InWindowOrder = false, int K, int S, class Visit>
__device__ __forceinline__ void fc_for_each_covering3(const fc_window3<K, S>& window, int d,
                                                      int h, int w, idx_t OD, idx_t OH,
                                                      idx_t OW, Visit visit) {
    const fc_cover depth_cover = fc_covering(window.depths, d, OD);
    const fc_cover row_cover = fc_covering(window.rows, h, OH);
    const fc_cover column_cover = fc_covering(window.columns, w, OW);
    fc_for_each_covering<InWindowOrder>(window.depths, depth_cover, [&](int od, int kd) {
        fc_for_each_covering<InWindowOrder>(window.rows, row_cover, [&](int oh, int kh) {
            fc_for_each_covering<InWindowOrder>(window.columns, column_cover, [&](int ow, int kw) {
                visit(window.tap(kd, kh, kw), fc_offset3(od, oh, ow, OH, OW));
            });
        });
    });
}

// One thread per output element: the window's maximum and its flat kernel offset.
template <class T, int K, int S>
__global__ void max_pool3d_forward_kernel(const T* __restrict__ x, T* __restrict__ out,
                                          int* __restrict__ argmax, idx_t NC,
                                          idx_t D, idx_t H, idx_t W, idx_t OD, idx_t OH, idx_t OW,
                                          idx_t KD, idx_t KH, idx_t KW, idx_t SD, idx_t SH,
                                          idx_t SW, idx_t PF, idx_t PT, idx_t PL,
                                          idx_t DD, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_window3<K, S> window(KD, KH, KW, SD, SH, SW, PF, PT, PL, DD, DH, DW);
    fc_for_each_voxel(NC, OD, OH, OW, [&](idx_t nc, unsigned pos, int od, int oh, int ow) {
        const T* volume = x + nc * D * H * W;
        acc_t best = fc_neg_inf(acc_t());
        int best_k = -1;  // the first input cell starts the scan
        fc_for_each_input_tap(window, od, oh, ow, D, H, W, [&](int k, int offset) {
            const acc_t v = fc_load(volume[offset]);
            if (fc_max_pool_takes(v, best, best_k)) {
                best = v;
                best_k = k;
            }
        });
        const idx_t o = nc * OD * OH * OW + pos;
        out[o] = fc_store<T>(best);
        argmax[o] = best_k < 0 ? 0 : best_k;  // a window of padding only: -inf, offset 0
    });
}

// Gather-style: one thread per input element sums the gradients of the windows whose
// maximum it was, in window order (row-major (od, oh, ow)) and in double, rounded once:
// the CPU path's scatter (fastconv/_cpu/pool.py, a bincount), bit for bit.
template <class T, int K, int S>
__global__ void max_pool3d_backward_kernel(const T* __restrict__ dout,
                                           const int* __restrict__ argmax, T* __restrict__ dx,
                                           idx_t NC, idx_t D, idx_t H, idx_t W,
                                           idx_t OD, idx_t OH, idx_t OW, idx_t KD, idx_t KH,
                                           idx_t KW, idx_t SD, idx_t SH, idx_t SW,
                                           idx_t PF, idx_t PT, idx_t PL,
                                           idx_t DD, idx_t DH, idx_t DW) {
    const fc_window3<K, S> window(KD, KH, KW, SD, SH, SW, PF, PT, PL, DD, DH, DW);
    fc_for_each_voxel(NC, D, H, W, [&](idx_t nc, unsigned pos, int d, int h, int w) {
        const idx_t outputs = nc * OD * OH * OW;
        double sum = 0;  // in window order, rounded once: the CPU path's bincount
        fc_for_each_covering3<true>(window, d, h, w, OD, OH, OW, [&](int k, int o) {
            if (argmax[outputs + o] == k) sum += fc_load_double(dout[outputs + o]);
        });
        dx[nc * D * H * W + pos] = fc_round<T>(sum);
    });
}

// One thread per output element: the window's sum over the input (the zero padding adds
// nothing) divided by divisor[(od*OH + oh)*OW + ow].
template <class T, int K, int S>
__global__ void avg_pool3d_forward_kernel(const T* __restrict__ x,
                                          const typename fc_acc<T>::type* __restrict__ divisor,
                                          T* __restrict__ out, idx_t NC,
                                          idx_t D, idx_t H, idx_t W, idx_t OD, idx_t OH, idx_t OW,
                                          idx_t KD, idx_t KH, idx_t KW, idx_t SD, idx_t SH,
                                          idx_t SW, idx_t PF, idx_t PT, idx_t PL,
                                          idx_t DD, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_window3<K, S> window(KD, KH, KW, SD, SH, SW, PF, PT, PL, DD, DH, DW);
    fc_for_each_voxel(NC, OD, OH, OW, [&](idx_t nc, unsigned pos, int od, int oh, int ow) {
        const T* volume = x + nc * D * H * W;
        acc_t sum = 0;
        fc_for_each_input_tap(window, od, oh, ow, D, H, W,
                              [&](int, int offset) { sum += fc_load(volume[offset]); });
        out[nc * OD * OH * OW + pos] = fc_store<T>(sum / fc_load(divisor[pos]));
    });
}

// Gather-style: one thread per input element sums dout / divisor over the windows that
// contain it, in ascending kernel offset.
template <class T, int K, int S>
__global__ void avg_pool3d_backward_kernel(const T* __restrict__ dout,
                                           const typename fc_acc<T>::type* __restrict__ divisor,
                                           T* __restrict__ dx, idx_t NC,
                                           idx_t D, idx_t H, idx_t W, idx_t OD, idx_t OH,
                                           idx_t OW, idx_t KD, idx_t KH, idx_t KW,
                                           idx_t SD, idx_t SH, idx_t SW, idx_t PF, idx_t PT,
                                           idx_t PL, idx_t DD, idx_t DH, idx_t DW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_window3<K, S> window(KD, KH, KW, SD, SH, SW, PF, PT, PL, DD, DH, DW);
    fc_for_each_voxel(NC, D, H, W, [&](idx_t nc, unsigned pos, int d, int h, int w) {
        const T* grad = dout + nc * OD * OH * OW;
        acc_t sum = 0;
        fc_for_each_covering3(window, d, h, w, OD, OH, OW, [&](int, int o) {
            sum += fc_load(grad[o]) / fc_load(divisor[o]);
        });
        dx[nc * D * H * W + pos] = fc_store<T>(sum);
    });
}
