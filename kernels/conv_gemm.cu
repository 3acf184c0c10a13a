// Convolution as an implicit matrix product, NCHW: no column matrix in memory (see
// kernels/common.cuh for the conventions this file departs from, named below).
//
//   out[n][m][oh][ow] = sum over k of a[m][k] * x[n][c][oh*SH - PT + kh*DH][ow*SW - PL + kw*DW]
//                       (+ b[m]),   k = (c*KH + kh)*KW + kw,
//
// the taps in the padding adding nothing: the product of a (M, K) matrix with im2col's
// columns (kernels/im2col.cu), whose entries are read from x where the product needs them
// instead of being written out and read back. The column index j = n*OH*OW + oh*OW + ow
// runs over all the images' positions, so a small image does not leave a tile half empty.
//
// a is read in place from a C-contiguous filter array, k = outer*KH*KW + tap:
//
//   a[m][k] = filters[m*A_ROW + outer*A_OUTER + (FLIP ? KH*KW - 1 - tap : tap)],
//
// so one kernel takes both products the GPU backend needs without a copy of the filters:
// the convolution itself (filters (M, C, KH, KW): A_ROW = C*KH*KW, A_OUTER = KH*KW, no flip)
// and the input gradient of a stride-1 one, whose filters are the forward's flipped along
// both window axes and transposed (the forward's (F, M, KH, KW): A_ROW = KH*KW, A_OUTER =
// M*KH*KW, flipped).
//
// It departs from the conventions of the other files in two ways, as any tiled product
// must: a block of TILE_THREADS threads computes a TILE_M x TILE_N tile of out, each thread
// 64 of its sums, so each value loaded is used several times from registers; and the
// block stages a TILE_K slice of a and of the columns in __shared__ memory, between
// __syncthreads barriers. It keeps the others: one thread writes each output element, in
// ascending k (deterministic, no atomics); the window as template parameters <T, K, S>.
// Two kernels share the staging and differ in how a staged slice is multiplied:
// conv_gemm_kernel on the CUDA cores (fc_cuda_core_product), conv_gemm_tf32_kernel on
// the tensor cores in TF32 (fc_tf32_product), which is what makes an implicit product
// pay where cuBLAS would run the explicit one on tensor cores too. A third,
// conv_weight_grad_tf32_kernel (at the end), turns the product's roles for the weight
// gradient: dout times the columns, summed over the columns j.
// fastconv/_cuda_conv_gemm.py keeps K, OH*OW, each image's input and the filters below 2^31
// elements and every extent of the window below 2^29, and launches the blocks this file's
// tile sizes need (fastconv/_cuda_registry.py, TILES).
#include "common.cuh"

// The tile of a block (fastconv/_cuda_registry.py's TILES holds the same four numbers):
constexpr int FC_TILE_M = 64;         // filters m
constexpr int FC_TILE_N = 128;        // columns j (the weight gradient's: kernel offsets k)
constexpr int FC_TILE_K = 8;          // the reduction slice staged per step
constexpr int FC_TILE_THREADS = 128;  // threads, an 8 x 8 sub-tile each

// Thread t's sub-tile: rows 4*(t / 16) + i and 32 + 4*(t / 16) + i of the block's tile,
// columns 4*(t % 16) + i and 64 + 4*(t % 16) + i (i < 4): four consecutive values, read from
// shared memory in one 16-byte load, and the two halves apart so that a warp's loads fall
// on distinct banks.
__device__ __forceinline__ int fc_sub_tile(int lane_group, int i, int half) {
    return (i < 4 ? 0 : half) + 4 * lane_group + (i & 3);
}

// The two ways a block multiplies a staged slice: Product is fc_cuda_core_product or
// fc_tf32_product. Each thread holds Product::ROWS x Product::COLUMNS sums of the tile,
// sum[i][j] at the tile's row(i) and column(j); PAD_M and PAD_N pad the rows of a's
// slice (k, m) and of the columns' (k, j) so that the product's loads from shared memory,
// and the stores that stage them, fall on distinct banks; staged() is what is stored of a
// loaded value.

// On the CUDA cores, in the accumulator type: thread t's 8 x 8 sub-tile (fc_sub_tile), one
// multiply-add per entry per k, in ascending k.
template <class T> struct fc_cuda_core_product {
    typedef typename fc_acc<T>::type value_t;
    static constexpr int ROWS = 8, COLUMNS = 8, PAD_M = 16, PAD_N = 0;
    const int row_group, column_group;
    __device__ explicit fc_cuda_core_product(int t) : row_group(t / 16), column_group(t % 16) {}
    __device__ static value_t staged(T v) { return fc_load(v); }
    __device__ int row(int i) const { return fc_sub_tile(row_group, i, FC_TILE_M / 2); }
    __device__ int column(int j) const { return fc_sub_tile(column_group, j, FC_TILE_N / 2); }
    __device__ void multiply(const value_t (&a_tile)[FC_TILE_K][FC_TILE_M + PAD_M],
                             const value_t (&col_tile)[FC_TILE_K][FC_TILE_N + PAD_N],
                             value_t (&sum)[ROWS][COLUMNS]) const {
        FC_UNROLL
        for (int kk = 0; kk < FC_TILE_K; ++kk) {
            value_t a_values[8], col_values[8];
            FC_UNROLL
            for (int i = 0; i < 8; ++i) {
                a_values[i] = a_tile[kk][row(i)];
                col_values[i] = col_tile[kk][column(i)];
            }
            FC_UNROLL
            for (int i = 0; i < 8; ++i) {
                FC_UNROLL
                for (int jj = 0; jj < 8; ++jj) sum[i][jj] += a_values[i] * col_values[jj];
            }
        }
    }
};

// On the tensor cores, in TF32 (float only; sm_80+, kernels/common.cuh's fc_mma_tf32):
// warp w takes the tile's rows 32 * (w / 2) and columns 64 * (w % 2), 32 x 64, as 2 x 8
// mma tiles of 16 x 8, one fc_mma_tf32 each per slice (FC_TILE_K is the mma's k of 8).
// Lane 4 * group + member holds of mma tile (mt, nt) the sums sum[2*mt + h][2*nt + e] at
// row 16*mt + group + 8*h and column 8*nt + 2*member + e of the warp's (the mma's d
// fragment). The slices' entries are rounded to TF32 (to nearest, ties away from zero)
// as they are staged; padded by 8, a fragment's loads (rows member and member + 4 of a
// slice, group apart) fall on distinct banks.
struct fc_tf32_product {
    typedef float value_t;
    static constexpr int ROWS = 4, COLUMNS = 16, PAD_M = 8, PAD_N = 8;
    const int row0, column0, group, member;
    __device__ explicit fc_tf32_product(int t)
        : row0(32 * (t / 64)), column0(64 * (t / 32 % 2)), group(t % 32 / 4), member(t % 4) {}
    __device__ static float staged(float v) { return fc_tf32(v); }
    __device__ int row(int i) const { return row0 + 16 * (i / 2) + group + 8 * (i % 2); }
    __device__ int column(int j) const { return column0 + 8 * (j / 2) + 2 * member + j % 2; }
    __device__ void multiply(const float (&a_tile)[FC_TILE_K][FC_TILE_M + PAD_M],
                             const float (&col_tile)[FC_TILE_K][FC_TILE_N + PAD_N],
                             float (&sum)[ROWS][COLUMNS]) const {
        float a[2][4];  // the a fragments: rows group and group + 8, k member and member + 4
        FC_UNROLL
        for (int mt = 0; mt < 2; ++mt) {
            const int m = row0 + 16 * mt + group;
            a[mt][0] = a_tile[member][m];
            a[mt][1] = a_tile[member][m + 8];
            a[mt][2] = a_tile[member + 4][m];
            a[mt][3] = a_tile[member + 4][m + 8];
        }
        FC_UNROLL
        for (int nt = 0; nt < 8; ++nt) {
            const int j = column0 + 8 * nt + group;
            const float b[2] = {col_tile[member][j], col_tile[member + 4][j]};
            FC_UNROLL
            for (int mt = 0; mt < 2; ++mt) {
                float d[4] = {sum[2 * mt][2 * nt], sum[2 * mt][2 * nt + 1],
                              sum[2 * mt + 1][2 * nt], sum[2 * mt + 1][2 * nt + 1]};
                fc_mma_tf32(d, a[mt], b);
                sum[2 * mt][2 * nt] = d[0];
                sum[2 * mt][2 * nt + 1] = d[1];
                sum[2 * mt + 1][2 * nt] = d[2];
                sum[2 * mt + 1][2 * nt + 1] = d[3];
            }
        }
    }
};

// One block per tile, in grid-stride loops over the tiles (x: columns, y: filters). Per
// step the block stages a's (TILE_M, TILE_K) slice and the columns' (TILE_K, TILE_N) slice,
// the next step's loaded while this one's is multiplied. Thread t stages the column entries
// of kernel offsets k = 2 * (t / 32) and k + 1 of the slice at columns t % 32 + 32 * q (q <
// 4): the window origins of its four columns computed once per tile, the two offsets' (c,
// kh, kw) once per step (one division), and a warp reading 32 adjacent columns of one
// offset. It stages a at one of the two, k + (t % 32) / 16, in rows t % 16 + 16 * r (r < 4),
// its place in the filters taken from the same (c, tap). a's entries outside (M, K), in the
// tiles' remainders, are zeros, not loads. The wrapper keeps C*H*W and a's M*K entries below
// 2^31: offsets inside an image and into a are 32-bit (a's unsigned: they wrap, exactly, for
// the rows and k's it does not load).
// A thread's part of a slice, stored for the product: a at (k_pair + a_half, a_row + 16 r),
// the columns at (k_pair + r, lane + 32 q), each value as Product stages it. Both staging
// loops (the convolution's and the weight gradient's) share these thread roles.
template <class Product, class T>
__device__ __forceinline__ void fc_stage(
    typename Product::value_t (&a_tile)[FC_TILE_K][FC_TILE_M + Product::PAD_M],
    typename Product::value_t (&col_tile)[FC_TILE_K][FC_TILE_N + Product::PAD_N],
    const T (&staged_a)[4], const T (&staged_col)[2][4], int k_pair, int a_half, int a_row,
    int lane) {
    FC_UNROLL
    for (int r = 0; r < 4; ++r)
        a_tile[k_pair + a_half][a_row + 16 * r] = Product::staged(staged_a[r]);
    FC_UNROLL
    for (int r = 0; r < 2; ++r) {
        FC_UNROLL
        for (int q = 0; q < 4; ++q)
            col_tile[k_pair + r][lane + 32 * q] = Product::staged(staged_col[r][q]);
    }
}

#define FC_CONV_GEMM_PARAMETERS(T)                                                         \
    const T* __restrict__ x, const T* __restrict__ a, const T* __restrict__ b,             \
        T* __restrict__ out, idx_t N, idx_t C, idx_t M, idx_t A_ROW, idx_t A_OUTER,        \
        idx_t FLIP, idx_t has_bias, idx_t H, idx_t W, idx_t OH, idx_t OW, idx_t KH,        \
        idx_t KW, idx_t SH, idx_t SW, idx_t PT, idx_t PL, idx_t DH, idx_t DW
#define FC_CONV_GEMM_ARGUMENTS \
    x, a, b, out, N, C, M, A_ROW, A_OUTER, FLIP, has_bias, H, W, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW

template <class Product, class T, int K, int S>
__device__ __forceinline__ void fc_conv_gemm(FC_CONV_GEMM_PARAMETERS(T)) {
    typedef typename Product::value_t value_t;
    // a's slice transposed, (k, m), and the columns' slice (k, j), their rows padded
    __shared__ __align__(16) value_t a_tile[FC_TILE_K][FC_TILE_M + Product::PAD_M];
    __shared__ __align__(16) value_t col_tile[FC_TILE_K][FC_TILE_N + Product::PAD_N];

    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    const int taps = rows.size * columns.size;
    const int reduction = (int)C * taps;  // K of the product
    const int positions = (int)(OH * OW), plane = (int)(H * W);
    const idx_t total_columns = N * positions;
    const int t = threadIdx.x;
    const Product product(t);
    const int lane = t % 32, k_pair = 2 * (t / 32), a_row = t % 16, a_half = lane / 16;
    // the window origin of a column past the last, and the kernel offset of a k past the
    // reduction: far enough into the padding that no tap reaches the input, and no sum of
    // two overflows (the wrapper keeps every extent below 2^29)
    const int outside = -(1 << 30);

    for (idx_t tile_m = blockIdx.y; tile_m * FC_TILE_M < M; tile_m += gridDim.y) {
        const idx_t m0 = tile_m * FC_TILE_M;
        // this thread's first row of a (its four are 16 apart), and how many of them it
        // loads: none past row M
        const unsigned a_first = (unsigned)((m0 + a_row) * A_ROW);
        const int a_rows = (int)((M - m0 - a_row + 15) / 16);
        for (idx_t tile_n = blockIdx.x; tile_n * FC_TILE_N < total_columns;
             tile_n += gridDim.x) {
            const idx_t j0 = tile_n * FC_TILE_N;
            // the columns this thread stages: each one's image, and its window's origin
            // (top-left cell, in the padding where it is negative)
            const T* image_x[4];
            int top[4], left[4];
            unsigned origin[4];
            FC_UNROLL
            for (int q = 0; q < 4; ++q) {
                const idx_t j = j0 + lane + 32 * q;
                const idx_t image = j < total_columns ? j / positions : 0;
                const int pos = (int)(j - image * positions), oh = pos / (int)OW;
                image_x[q] = x + image * C * plane;
                top[q] = j < total_columns ? oh * rows.stride - rows.pad : outside;
                left[q] = (pos - oh * (int)OW) * columns.stride - columns.pad;
                // wraps where the origin is in the padding; only inside taps are read
                origin[q] = (unsigned)top[q] * (unsigned)W + (unsigned)left[q];
            }

            T staged_a[4], staged_col[2][4];  // converted as they are stored
            // a[m][k] and the column entries of the slice at k0, 0 in the padding
            auto load = [&](int k0) {
                // the thread's two kernel offsets as (c, tap): k0 + k_pair, and the next
                const int first = k0 + k_pair, c0 = first / taps, tap0 = first - c0 * taps;
                const bool wraps = tap0 + 1 == taps;
                const int c1 = c0 + wraps, tap1 = wraps ? 0 : tap0 + 1;
                // a at the one of them this thread stages, in its four rows: the tap within
                // its block of KH*KW the same, or flipped
                const int a_c = a_half ? c1 : c0, a_tap = a_half ? tap1 : tap0;
                const bool a_inside = first + a_half < reduction;
                unsigned entry = a_first + a_c * (unsigned)A_OUTER +
                                 (unsigned)(FLIP ? taps - 1 - a_tap : a_tap);
                FC_UNROLL
                for (int r = 0; r < 4; ++r, entry += 16 * (unsigned)A_ROW)
                    staged_a[r] = a_inside && r < a_rows ? a[entry] : fc_zero<T>();
                FC_UNROLL
                for (int r = 0; r < 2; ++r) {
                    const int k = first + r, c = r ? c1 : c0, tap = r ? tap1 : tap0;
                    const int kh = tap / columns.size, kw = tap - kh * columns.size;
                    // the offset's cells in the padding for a k past the reduction
                    const int dh = k < reduction ? kh * rows.dilation : outside;
                    const int dw = kw * columns.dilation;
                    const unsigned offset = (unsigned)c * (unsigned)plane +
                                            (unsigned)(kh * rows.dilation) * (unsigned)W + dw;
                    FC_UNROLL
                    for (int q = 0; q < 4; ++q) {
                        // one unsigned compare tests both ends: a negative h wraps past H
                        const int h = top[q] + dh, w = left[q] + dw;
                        const bool inside = (unsigned)h < (unsigned)H && (unsigned)w < (unsigned)W;
                        staged_col[r][q] = inside ? image_x[q][origin[q] + offset] : fc_zero<T>();
                    }
                }
            };

            value_t sum[Product::ROWS][Product::COLUMNS];
            FC_UNROLL
            for (int i = 0; i < Product::ROWS; ++i) {
                FC_UNROLL
                for (int jj = 0; jj < Product::COLUMNS; ++jj) sum[i][jj] = 0;
            }
            // float64's 64 accumulators take half the registers a thread may have, and
            // float16's staged halves and their conversions push the run-time window past
            // them (ptxas spills): there the next slice is loaded after the product, not
            // held in registers during it (the GPU backend launches these kernels in
            // float32 only)
            constexpr bool overlapped = sizeof(T) == 4;
            if (overlapped) load(0);
            for (int k0 = 0; k0 < reduction; k0 += FC_TILE_K) {
                if (!overlapped) load(k0);
                fc_stage<Product>(a_tile, col_tile, staged_a, staged_col, k_pair, a_half, a_row,
                                  lane);
                __syncthreads();
                // the next slice's loads are in flight while this one is multiplied
                if (overlapped && k0 + FC_TILE_K < reduction) load(k0 + FC_TILE_K);
                product.multiply(a_tile, col_tile, sum);
                __syncthreads();  // every thread has read the slice before it is replaced
            }

            FC_UNROLL
            for (int jj = 0; jj < Product::COLUMNS; ++jj) {
                const idx_t column = j0 + product.column(jj);
                if (column >= total_columns) continue;
                const idx_t column_image = column / positions;
                T* target = out + column_image * M * positions + (column - column_image * positions);
                FC_UNROLL
                for (int i = 0; i < Product::ROWS; ++i) {
                    const idx_t m = m0 + product.row(i);
                    if (m < M)
                        target[m * positions] = fc_store<T>(has_bias ? sum[i][jj] + fc_load(b[m])
                                                                     : sum[i][jj]);
                }
            }
        }
    }
}

template <class T, int K, int S>
__global__ void __launch_bounds__(FC_TILE_THREADS)
conv_gemm_kernel(FC_CONV_GEMM_PARAMETERS(T)) {
    fc_conv_gemm<fc_cuda_core_product<T>, T, K, S>(FC_CONV_GEMM_ARGUMENTS);
}

// The same product on the tensor cores in TF32, for float32 with TF32 allowed on sm_80+
// (fastconv/_cuda_registry.py's DTYPES and CAPABILITY): each output element is still one
// thread's, its k in ascending slices, the same bits every run.
template <class T, int K, int S>
__global__ void __launch_bounds__(FC_TILE_THREADS)
conv_gemm_tf32_kernel(FC_CONV_GEMM_PARAMETERS(T)) {
    fc_conv_gemm<fc_tf32_product, T, K, S>(FC_CONV_GEMM_ARGUMENTS);
}

// The weight gradient as an implicit product, in slices of the columns ("splits"):
//
//   partials[s][f][k] = sum over the columns j of split s of dout[f][j] * col[k][j],
//
// col being im2col's columns (k = (c*KH + kh)*KW + kw, j = n*OH*OW + oh*OW + ow), read from
// x where the product needs them, and col[K][j] = 1 where has_bias: partials[s][f][K] sums
// dout, the bias gradient. Split s takes the columns [s * SPLIT, (s + 1) * SPLIT), SPLIT a
// multiple of TILE_K; partials has a row of K + 1 entries per filter, as the GPU backend's
// per-image partials have, and kernels/weight_sum.cu sums the splits in ascending order.
// It is the forward's product with the roles turned: the rows are the filters (dout's
// channels), the tile's columns the kernel offsets, the reduction the columns j. One
// block per (split, column tile) on x and filter tile on y, in grid-stride loops. Thread t
// stages the entries of kernel offsets t % 32 + 32 * q (q < 4) of the tile, their (c, kh,
// kw) found once per tile, at columns j0 + 2 * (t / 32) and the next (their images and
// output positions moved on step by step), and dout at column j0 + k_pair + (t % 32) / 16 in rows
// t % 16 + 16 * r (r < 4). The wrapper keeps each image's input, F*OH*OW and the window's
// extents within the 32-bit limits of the forward.
template <class Product, class T, int K, int S>
__device__ __forceinline__ void fc_conv_weight_grad(
    const T* __restrict__ x, const T* __restrict__ dout,
    typename Product::value_t* __restrict__ partials, idx_t N, idx_t C, idx_t F, idx_t splits,
    idx_t SPLIT, idx_t has_bias, idx_t H, idx_t W, idx_t OH, idx_t OW, idx_t KH, idx_t KW,
    idx_t SH, idx_t SW, idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    typedef typename Product::value_t value_t;
    __shared__ __align__(16) value_t a_tile[FC_TILE_K][FC_TILE_M + Product::PAD_M];
    __shared__ __align__(16) value_t col_tile[FC_TILE_K][FC_TILE_N + Product::PAD_N];

    const fc_axis<K, S> rows(KH, SH, DH, PT), columns(KW, SW, DW, PL);
    const int taps = rows.size * columns.size, reduction = (int)C * taps;
    const int width = reduction + (int)(has_bias != 0);  // the partials' entries used
    const int positions = (int)(OH * OW), plane = (int)(H * W);
    const idx_t total_columns = N * positions;
    const idx_t tiles = (width + FC_TILE_N - 1) / FC_TILE_N;
    const int t = threadIdx.x;
    const Product product(t);
    const int lane = t % 32, k_pair = 2 * (t / 32), a_row = t % 16;
    const int a_half = lane / 16;  // which column of its pair the thread stages dout at
    const int outside = -(1 << 30);  // a kernel offset's rows past every input row

    for (idx_t tile_m = blockIdx.y; tile_m * FC_TILE_M < F; tile_m += gridDim.y) {
        const idx_t m0 = tile_m * FC_TILE_M;
        for (idx_t block = blockIdx.x; block < splits * tiles; block += gridDim.x) {
            const idx_t split = block / tiles, k0 = (block - split * tiles) * FC_TILE_N;
            const idx_t first_column = split * SPLIT;
            const idx_t end = first_column + SPLIT < total_columns ? first_column + SPLIT
                                                                    : total_columns;
            // the kernel offsets this thread stages: each one's place in an image, its
            // cells' offsets from a window's origin; the ones of the bias gradient
            unsigned offset[4];
            int dh[4], dw[4];
            bool ones[4];
            FC_UNROLL
            for (int q = 0; q < 4; ++q) {
                const int k = (int)k0 + lane + 32 * q;
                const int c = k / taps, tap = k - c * taps, kh = tap / columns.size;
                const int kw = tap - kh * columns.size;
                ones[q] = k == reduction;  // the bias's (its partial kept where has_bias)
                dh[q] = k < reduction ? kh * rows.dilation : outside;
                dw[q] = kw * columns.dilation;
                offset[q] = (unsigned)c * (unsigned)plane + (unsigned)dh[q] * (unsigned)W +
                            (unsigned)dw[q];
            }

            // the two columns j0 + k_pair + r this thread stages: each one's image, output
            // row and column, found once per tile and then moved on by the slice's 8
            // columns at each step (no division in the loop)
            idx_t image[2];
            int oh[2], ow[2];
            FC_UNROLL
            for (int r = 0; r < 2; ++r) {
                const idx_t j = first_column + k_pair + r;
                image[r] = j / positions;
                const int pos = (int)(j - image[r] * positions);
                oh[r] = pos / (int)OW;
                ow[r] = pos - oh[r] * (int)OW;
            }
            auto advance = [&]() {
                FC_UNROLL
                for (int r = 0; r < 2; ++r) {
                    ow[r] += FC_TILE_K;
                    while (ow[r] >= (int)OW) ow[r] -= (int)OW, ++oh[r];
                    while (oh[r] >= (int)OH) oh[r] -= (int)OH, ++image[r];
                }
            };

            T staged_a[4], staged_col[2][4];
            // dout and the column entries of the slice at column j0, 0 past the split
            auto load = [&](idx_t j0) {
                // dout at the one of the two columns this thread stages it for
                const bool a_valid = j0 + k_pair + a_half < end;
                const T* a_at = dout + ((a_half ? image[1] : image[0]) * F + m0 + a_row) *
                                positions + (a_half ? oh[1] : oh[0]) * (int)OW +
                                (a_half ? ow[1] : ow[0]);
                FC_UNROLL
                for (int r = 0; r < 4; ++r)
                    staged_a[r] = a_valid && m0 + a_row + 16 * r < F ? a_at[16 * r * positions]
                                                                     : fc_zero<T>();
                FC_UNROLL
                for (int r = 0; r < 2; ++r) {
                    const bool valid = j0 + k_pair + r < end;
                    const int top = valid ? oh[r] * rows.stride - rows.pad : outside;
                    const int left = ow[r] * columns.stride - columns.pad;
                    // wraps where the origin is in the padding; only inside cells are read
                    const unsigned origin = (unsigned)top * (unsigned)W + (unsigned)left;
                    const T* image_x = x + (valid ? image[r] : 0) * C * plane;
                    FC_UNROLL
                    for (int q = 0; q < 4; ++q) {
                        const int h = top + dh[q], w = left + dw[q];
                        const bool inside = (unsigned)h < (unsigned)H && (unsigned)w < (unsigned)W;
                        staged_col[r][q] = ones[q] ? (valid ? fc_store<T>(1) : fc_zero<T>())
                                           : inside ? image_x[origin + offset[q]] : fc_zero<T>();
                    }
                }
            };

            value_t sum[Product::ROWS][Product::COLUMNS];
            FC_UNROLL
            for (int i = 0; i < Product::ROWS; ++i) {
                FC_UNROLL
                for (int jj = 0; jj < Product::COLUMNS; ++jj) sum[i][jj] = 0;
            }
            if (first_column < end) load(first_column);
            for (idx_t j0 = first_column; j0 < end; j0 += FC_TILE_K) {
                fc_stage<Product>(a_tile, col_tile, staged_a, staged_col, k_pair, a_half, a_row,
                                  lane);
                __syncthreads();
                // the next slice's loads are in flight while this one is multiplied
                if (j0 + FC_TILE_K < end) {
                    advance();
                    load(j0 + FC_TILE_K);
                }
                product.multiply(a_tile, col_tile, sum);
                __syncthreads();  // the slice read by every thread before the next is staged
            }

            value_t* split_partials = partials + split * F * (reduction + 1);
            FC_UNROLL
            for (int i = 0; i < Product::ROWS; ++i) {
                const idx_t m = m0 + product.row(i);
                if (m >= F) continue;
                FC_UNROLL
                for (int jj = 0; jj < Product::COLUMNS; ++jj) {
                    const idx_t k = k0 + product.column(jj);
                    if (k < width) split_partials[m * (reduction + 1) + k] = sum[i][jj];
                }
            }
        }
    }
}

// The weight gradient on the tensor cores in TF32, for float32 with TF32 allowed on sm_80+:
// each partial is one thread's, its columns in ascending slices, the same bits every run.
template <class T, int K, int S>
__global__ void __launch_bounds__(FC_TILE_THREADS)
conv_weight_grad_tf32_kernel(const T* __restrict__ x, const T* __restrict__ dout,
                             float* __restrict__ partials, idx_t N, idx_t C, idx_t F,
                             idx_t splits, idx_t SPLIT, idx_t has_bias, idx_t H, idx_t W,
                             idx_t OH, idx_t OW, idx_t KH, idx_t KW, idx_t SH, idx_t SW,
                             idx_t PT, idx_t PL, idx_t DH, idx_t DW) {
    fc_conv_weight_grad<fc_tf32_product, T, K, S>(x, dout, partials, N, C, F, splits, SPLIT,
                                                  has_bias, H, W, OH, OW, KH, KW, SH, SW, PT,
                                                  PL, DH, DW);
}
