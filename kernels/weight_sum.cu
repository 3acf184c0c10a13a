// The weight and bias gradients of a convolution from per-image partial sums (see
// kernels/common.cuh for the conventions).
//
// A backward that cannot sum over the images inside one matrix product (dout's images
// are not adjacent along its positions) writes each image's sums into partials
// (images, F, taps + 1) in the accumulator type: per filter f, slot t < taps for the
// weight tap t (taps = C/groups*KH*KW for the generic convolution, KH*KW for the
// depthwise one) and the last slot for the bias. One plane per filter: fastconv/_cuda.py
// keeps taps + 1 below 2^31, so a filter's slots are 32-bit, and any number of filters runs.
#include "common.cuh"

// One thread per (filter, slot), the filters as planes: the slot summed over the images in
// ascending order and rounded once into dw (F, taps) or, for the last slot, db (F). Without
// a bias (has_bias 0) the last slot is neither read nor written: it may hold anything, and
// db may be any array of T. No window: the launcher runs the <T, 0, 0> instantiation only.
template <class T, int K, int S>
__global__ void weight_sum_kernel(const typename fc_acc<T>::type* __restrict__ partials,
                                  T* __restrict__ dw, T* __restrict__ db,
                                  idx_t images, idx_t F, idx_t taps, idx_t has_bias) {
    typedef typename fc_acc<T>::type acc_t;
    const idx_t slots = F * (taps + 1);
    fc_for_each_cell(F, 1, taps + 1, [&](idx_t f, unsigned tap, int, int) {
        if (tap == (unsigned)taps && !has_bias) return;
        const acc_t* slot = partials + f * (taps + 1) + tap;
        acc_t sum = 0;
        for (idx_t n = 0; n < images; ++n) sum += slot[n * slots];
        if (tap < (unsigned)taps) {
            dw[f * taps + tap] = fc_store<T>(sum);
        } else {
            db[f] = fc_store<T>(sum);
        }
    });
}
