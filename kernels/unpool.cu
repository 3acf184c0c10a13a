// Max unpooling and the adaptive max-pool gradient as gathers, NCHW (see kernels/common.cuh).
//
// Both ops send each value v[i] of a plane (x of the unpooling, dout of the adaptive max
// pool's backward: the (OH, OW) planes of the pooled side) to the cell index[i] of an
// output plane (H, W) and sum what each cell receives; index -1 sends its value nowhere.
// Here one thread per output cell p sums, in ascending i, the v[i] whose index is p over
// the positions i whose windows can hold p: per axis the few windows covering p, their
// range computed once. Ascending i is the order of the CPU path's bincount
// (fastconv/_cpu/scatter.py) and of the sort-based scatter (fastconv/_gpu/scatter.py), and
// the sums run in double for every T, as bincount's do, rounded once: the CPU path's bits.
//
// The gather sees only the indices inside their own window. A check kernel flags every
// other one first (any index in range is valid for max unpooling), and the caller
// (fastconv/_gpu/unpool.py) gives planes with a flagged index to the sort-based scatter.
// No atomics: every output element is written by exactly one thread.
//
// The windows of an axis, one kind per op:
// - max unpooling: the max pool's, window o holding [o*stride - pad, o*stride - pad + size)
//   (no dilation: unpooling has none, and the launcher passes DH = DW = 1);
// - the adaptive max pool: window o of n cells pooled to m holding
//   [floor(o*n/m), ceil((o+1)*n/m)), as fastconv/functional/adaptive_pool.py has them.
//
// The adaptive max pool's forward is here too, beside its gradient and on the same windows:
// one thread per pooled element scans its window.
#include "common.cuh"

// The windows first..last (none when last < first) of one axis that hold a cell.
struct fc_holders {
    int first, last;
};

// The max pool's windows along one axis: count windows over the unpooled axis.
template <int K, int S>
struct fc_pool_windows {
    fc_axis<K, S> axis;
    int count;

    __device__ fc_pool_windows(idx_t size, idx_t stride, idx_t pad, idx_t windows)
        : axis(size, stride, 1, pad), count((int)windows) {}

    // Whether window o holds cell c (both in range: c + pad and o * stride stay below
    // 2^31, fastconv/_cuda_unpool.py refuses larger planes).
    __device__ bool holds(int o, int c) const {
        return (unsigned)(c + axis.pad - o * axis.stride) < (unsigned)axis.size;
    }

    __device__ fc_holders holding(int c) const {
        const fc_cover cover = fc_covering(axis, c, count);
        return fc_holders{cover.first, cover.last};
    }

    __device__ int bound(int n) const { return axis.covering_bound(n); }
};

// The cells [first, end) of one window along one axis.
struct fc_span {
    int first, end;
};

// The adaptive windows along one axis: n cells pooled to m windows. Unsigned 64-bit
// products (c * m reaches 2^62; unsigned divisions are the cheaper ones).
struct fc_adaptive_windows {
    unsigned long long n, m;

    __device__ fc_adaptive_windows(idx_t cells, idx_t windows)
        : n((unsigned long long)cells), m((unsigned long long)windows) {}

    __device__ bool holds(int o, int c) const {
        const unsigned long long window = (unsigned)o, cell = (unsigned)c;
        return window * n / m <= cell && cell < ((window + 1) * n + m - 1) / m;
    }

    // first: the smallest o with ceil((o+1)*n/m) > c; last: the largest o with
    // floor(o*n/m) <= c, i.e. o*n < (c+1)*m (at most m - 1, as c < n).
    __device__ fc_holders holding(int c) const {
        const unsigned long long cell = (unsigned)c;
        return fc_holders{(int)(cell * m / n), (int)(((cell + 1) * m - 1) / n)};
    }

    // Window o's cells: [floor(o*n/m), ceil((o+1)*n/m)), the range holds(o, c) tests c against.
    __device__ fc_span cells(int o) const {
        const unsigned long long start = (unsigned)o * n, end = start + n;
        return fc_span{(int)(start / m), (int)((end + m - 1) / m)};
    }

    __device__ int bound(int count) const { return count; }
};

// Calls visit(o) for the windows of holders, o ascending. fc_for_each_covering visits o
// descending (its kernel offsets ascending), and the sums must run in the order of i.
template <class Windows, class Visit>
__device__ __forceinline__ void fc_for_each_holder(const Windows& windows, fc_holders holders,
                                                   Visit visit) {
    FC_UNROLL
    for (int i = 0; i < windows.bound(holders.last - holders.first + 1); ++i) {
        const int o = holders.first + i;
        if (o > holders.last) break;  // an unrolled loop runs to its bound: fewer windows hold p
        visit(o);
    }
}

// One thread per pooled-side element i: outside[i] = 1 where index[i] is neither -1 nor a
// cell of its own window (rows.holds and columns.holds), else 0. The flags are of T, the
// float type the launcher compiles each kernel for.
template <class T, class Windows>
__device__ __forceinline__ void fc_flag_outside(const idx_t* index, T* outside, idx_t NC,
                                                idx_t H, idx_t W, idx_t OH, idx_t OW,
                                                const Windows& rows, const Windows& columns) {
    fc_for_each_cell(NC, OH, OW, [&](idx_t nc, unsigned pos, int oh, int ow) {
        const idx_t i = nc * OH * OW + pos;
        const idx_t v = index[i];
        bool inside = v == -1;
        if ((unsigned long long)v < (unsigned long long)(H * W)) {  // a cell of the plane
            const unsigned h = (unsigned)v / (unsigned)W;
            inside = rows.holds(oh, (int)h) &&
                     columns.holds(ow, (int)((unsigned)v - h * (unsigned)W));
        }
        outside[i] = inside ? fc_zero<T>() : fc_store<T>(1);
    });
}

// One thread per output cell p = (h, w): the sum, in ascending i, of the values whose index
// is p among the windows holding p (their ranges computed once per axis).
template <class T, class Windows>
__device__ __forceinline__ void fc_gather_sent(const T* values, const idx_t* index, T* out,
                                               idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                               const Windows& rows, const Windows& columns) {
    fc_for_each_cell(NC, H, W, [&](idx_t nc, unsigned pos, int h, int w) {
        const idx_t plane = nc * OH * OW;
        const fc_holders row_holders = rows.holding(h), column_holders = columns.holding(w);
        double sum = 0;
        fc_for_each_holder(rows, row_holders, [&](int oh) {
            fc_for_each_holder(columns, column_holders, [&](int ow) {
                const idx_t i = plane + fc_offset(oh, ow, OW);
                if (index[i] == (idx_t)pos) sum += fc_load_double(values[i]);
            });
        });
        out[nc * H * W + pos] = fc_round<T>(sum);
    });
}

// Max unpooling: x and index (NC, OH, OW), out (NC, H, W); the max pool's window
// (kernel KH x KW, stride SH x SW, padding PT, PL) over out. DH, DW: always 1.
template <class T, int K, int S>
__global__ void max_unpool_check_kernel(const idx_t* __restrict__ index, T* __restrict__ outside,
                                        idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                        idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                        idx_t PT, idx_t PL, idx_t /*DH*/, idx_t /*DW*/) {
    fc_flag_outside(index, outside, NC, H, W, OH, OW, fc_pool_windows<K, S>(KH, SH, PT, OH),
                    fc_pool_windows<K, S>(KW, SW, PL, OW));
}

template <class T, int K, int S>
__global__ void max_unpool_gather_kernel(const T* __restrict__ x, const idx_t* __restrict__ index,
                                         T* __restrict__ out,
                                         idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW,
                                         idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                                         idx_t PT, idx_t PL, idx_t /*DH*/, idx_t /*DW*/) {
    fc_gather_sent(x, index, out, NC, H, W, OH, OW, fc_pool_windows<K, S>(KH, SH, PT, OH),
                   fc_pool_windows<K, S>(KW, SW, PL, OW));
}

// The adaptive max pool's gradient: dout and index (NC, OH, OW), dx (NC, H, W), the
// adaptive windows of H pooled to OH and W to OW. No window scalars: only the <T, 0, 0>
// instantiation exists.
template <class T, int K, int S>
__global__ void adaptive_max_check_kernel(const idx_t* __restrict__ index,
                                          T* __restrict__ outside,
                                          idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW) {
    fc_flag_outside(index, outside, NC, H, W, OH, OW, fc_adaptive_windows(H, OH),
                    fc_adaptive_windows(W, OW));
}

template <class T, int K, int S>
__global__ void adaptive_max_gather_kernel(const T* __restrict__ dout,
                                           const idx_t* __restrict__ index, T* __restrict__ dx,
                                           idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW) {
    fc_gather_sent(dout, index, dx, NC, H, W, OH, OW, fc_adaptive_windows(H, OH),
                   fc_adaptive_windows(W, OW));
}

// The adaptive max pool's forward: x (NC, H, W), out and index (NC, OH, OW). One thread per
// pooled element scans its window, rows then columns (row-major: the order of
// fastconv/_window_max.py's passes), under the max-pool rule (fc_max_pool_takes: the first
// maximum, the first NaN), and writes the maximum and its flat index h * W + w in the plane.
// out is the winning cell itself, not its value stored back from the compare type: its NaN
// payload survives the float16 round trip, and a float subnormal -ftz=true would flush.
template <class T, int K, int S>
__global__ void adaptive_max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ out,
                                                 idx_t* __restrict__ index,
                                                 idx_t NC, idx_t H, idx_t W, idx_t OH, idx_t OW) {
    typedef typename fc_acc<T>::type acc_t;
    const fc_adaptive_windows rows(H, OH), columns(W, OW);
    fc_for_each_cell(NC, OH, OW, [&](idx_t nc, unsigned at, int oh, int ow) {
        const T* plane = x + nc * H * W;
        const fc_span row_cells = rows.cells(oh), column_cells = columns.cells(ow);
        acc_t best = 0;
        int best_at = -1;  // none yet: fc_max_pool_takes takes the first cell
        for (int h = row_cells.first; h < row_cells.end; ++h) {
            for (int w = column_cells.first; w < column_cells.end; ++w) {
                const int cell = fc_offset(h, w, W);
                const acc_t v = fc_load(plane[cell]);
                if (fc_max_pool_takes(v, best, best_at)) {
                    best = v;
                    best_at = cell;
                }
            }
        }
        const idx_t o = nc * OH * OW + at;
        out[o] = plane[best_at];  // every window holds a cell (H, W >= 1): best_at >= 0
        index[o] = best_at;
    });
}
