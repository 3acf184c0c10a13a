"""Plant known bugs in copies of the kernels and check that the emulation tests catch each.

    python tests/cuda_emu/mutants.py               # every mutant, about 25 s each on 2 cores
    python tests/cuda_emu/mutants.py pool.cu ...   # the mutants of these files only

Not part of the test run: run it after changing the kernels or the tests, to
see that the tests still fail on the bugs they are meant to find. Each mutant
is a one-line change to a copy of kernels/, run through the emulation tests of
its file (:data:`TESTS`; a change to common.cuh through all of them) with
FC_EMU_KERNEL_DIR pointing at the copy. Exit status 1 if any mutant survives.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "kernels"
# The emulation tests that run each kernel file
TESTS = {
    "im2col.cu": ["tests/test_cuda_emulated.py", "tests/test_cuda_launcher.py"],
    "pool.cu": ["tests/test_cuda_emulated.py", "tests/test_cuda_launcher.py"],
    "depthwise.cu": ["tests/test_cuda_depthwise.py"],
    "vol2col.cu": ["tests/test_cuda_vol2col.py"],
    "unpool.cu": ["tests/test_cuda_unpool.py"],
    "interpolate.cu": ["tests/test_cuda_interpolate.py"],
    "pool3d.cu": ["tests/test_cuda_pool3d.py"],
    "conv_gemm.cu": ["tests/test_cuda_conv_gemm.py"],
    "weight_sum.cu": ["tests/test_cuda_weight_sum.py", "tests/test_cuda_depthwise.py"],
}


def tests_of(file):
    """The emulation tests a mutant of ``file`` runs through (common.cuh: every kernel file's)."""
    if file in TESTS:
        return TESTS[file]
    return sorted({test for tests in TESTS.values() for test in tests})


# (file, original text, planted text, what the bug is)
MUTANTS = [
    ("im2col.cu", "(unsigned)h < (unsigned)H", "(unsigned)h <= (unsigned)H",
     "im2col reads one row past the input"),
    ("im2col.cu", "col += L;", "col += L - 1;", "im2col writes the taps one column block short"),
    ("im2col.cu", "(idx_t)(kh * columns.size + kw) * L", "(idx_t)(kh * rows.size + kw) * L",
     "col2im tap index with the kernel height for its width"),
    ("common.cuh", "const int first = o * axis.stride - axis.pad;",
     "const int first = o * axis.stride + axis.pad;", "window start: padding sign"),
    ("common.cuh", "(unsigned)(padded - extent) / axis.stride) + 1;",
     "(unsigned)(padded - extent) / axis.stride);", "covering range starts one window early"),
    ("common.cuh", "(int)((unsigned)padded / axis.stride), (int)out - 1)",
     "(int)((unsigned)padded / axis.stride), (int)out)", "covering range ends one window late"),
    ("common.cuh", "return K ? (K + S - 1) / S : n;", "return K ? K / S : n;",
     "unrolled covering loop one candidate short (3x3/2, 5x5/2)"),
    ("common.cuh", "stride(K ? S : (int)s)", "stride(K ? 1 : (int)s)",
     "unrolled windows use stride 1"),
    ("common.cuh", "} else if (offset % axis.dilation == 0) {",
     "} else if (offset % axis.dilation <= 1) {", "gather keeps offsets between dilated taps"),
    ("common.cuh", "return row * (int)width + col;", "return row * (int)width - col;",
     "in-plane offset sign"),
    ("common.cuh", "const unsigned width = (unsigned)cols,",
     "const unsigned width = (unsigned)rows,", "in-plane index split with the wrong width"),
    ("common.cuh", "for (unsigned pos = blockIdx.x * blockDim.x + threadIdx.x;",
     "for (unsigned pos = threadIdx.x;", "in-plane grid-stride start ignores blockIdx"),
    ("common.cuh", "for (idx_t plane = (idx_t)blockIdx.y * blockDim.y + threadIdx.y;",
     "for (idx_t plane = (idx_t)blockIdx.y * blockDim.y;", "plane loop ignores threadIdx.y"),
    ("common.cuh", "(!best_nan && fc_greater(v, best))", "(!best_nan && !fc_greater(best, v))",
     "max-pool tie goes to the last maximum"),
    ("common.cuh", "(v_nan ? !best_nan :", "(v_nan ? true :", "max-pool picks the last NaN"),
    ("pool.cu", "const int k = argmax_plane[o] - kh * columns.size;",
     "const int k = argmax_plane[o] - kh;", "max-pool backward decodes the offset's row wrongly"),
    ("pool.cu", "fc_for_each_covering<true>(rows, h, OH,", "fc_for_each_covering(rows, h, OH,",
     "max-pool backward adds the rows of windows in kernel-offset order, not window order"),
    ("pool.cu", "double sums[2] = {0, 0};", "typename fc_acc<T>::type sums[2] = {0, 0};",
     "max-pool backward sums in float, not in double as the CPU's scatter"),
    ("pool.cu", "const bool in_row = (unsigned)k < (unsigned)columns.size;",
     "const bool in_row = k < columns.size;",
     "max-pool backward: a winner in an earlier row of the window counts"),
    ("pool.cu", "const bool first = in_row && won == 0, next = in_row && won == 1;",
     "const bool first = in_row && won == 1, next = in_row && won == 0;",
     "max-pool backward: the pair's two columns swapped"),
    ("pool.cu", "const int won = k * columns.dilation - offset;", "const int won = k - offset;",
     "max-pool backward: the winner's column offset without the dilation"),
    ("pool.cu", "const bool second = w + 1 < W;\n        const T* dout_plane = dout + nc * OH * OW;\n"
     "        const int* argmax_plane", "const bool second = w + 1 <= W;\n"
     "        const T* dout_plane = dout + nc * OH * OW;\n        const int* argmax_plane",
     "max-pool backward: an odd row's last pair writes a second column past the row"),
    ("common.cuh", "const int last = second ? fc_covering(axis, p + 1, out).last : cover.last;",
     "const int last = cover.last;", "pair cover: the windows covering only the second column"),
    ("common.cuh", "for (int i = 0; i < (K ? (K + S) / S : cover.last - cover.first + 1); ++i) {",
     "for (int i = 0; i < (K ? (K + S - 1) / S : cover.last - cover.first + 1); ++i) {",
     "unrolled pair loop one window short (3x3/1, 2x2/2 with odd padding)"),
    ("common.cuh", "if (InWindowOrder ? window > cover.last : window < cover.first) break;",
     "if (InWindowOrder ? window >= cover.last : window <= cover.first) break;",
     "pair loop: the last window in its order never visited"),
    ("common.cuh", "return offset >= 0 && offset <= (axis.size - 1) * axis.dilation",
     "return offset >= 0 && offset < (axis.size - 1) * axis.dilation",
     "pair loop: a window's last tap reads nothing (avg-pool backward)"),
    ("pool.cu", "const bool second = w + 1 < W;\n        const T* dout_plane = dout + nc * OH * OW;\n"
     "        const fc_cover", "const bool second = w + 1 <= W;\n"
     "        const T* dout_plane = dout + nc * OH * OW;\n        const fc_cover",
     "avg-pool backward: an odd row's last pair writes a second column past the row"),
    ("pool.cu", "sums[1] += fc_reads(columns, offset + 1) ? share : acc_t(0);",
     "sums[1] += fc_reads(columns, offset) ? share : acc_t(0);",
     "avg-pool backward: the second column takes the first's windows"),
    ("pool.cu", "const acc_t share = fc_load(dout_plane[o]) / fc_load(divisor[o]);",
     "const acc_t share = fc_load(dout_plane[o]) / fc_load(divisor[ow]);",
     "avg-pool backward: a window's share over another's divisor"),
    ("common.cuh", "const int o = InWindowOrder ? cover.first + i : cover.last - i;",
     "const int o = cover.last - i;", "the window-order walk visits the windows backwards"),
    ("pool3d.cu", "fc_for_each_covering3<true>(window", "fc_for_each_covering3(window",
     "3-D max-pool backward in kernel-offset order, not the CPU's window order"),
    ("pool.cu", "sum / fc_load(divisor[pos])", "sum / fc_load(divisor[ow])",
     "avg-pool divisor of the wrong window"),
    ("common.cuh", "if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;",
     "if (rest >= 0x1000u) ++h;", "float16 rounding: ties away from zero"),
    ("common.cuh", "unsigned int e = 113u;", "unsigned int e = 112u;",
     "float16 subnormals decoded at half their value"),
    ("depthwise.cu", "const int f = (int)(nf - n * F);", "const int f = (int)(nf - n * C);",
     "depthwise forward: a plane's filter from the channel count"),
    ("depthwise.cu", "x + (n * C + f / (int)M) * H * W;\n        const T* filter",
     "x + (n * C + f % (int)M) * H * W;\n        const T* filter",
     "depthwise forward: filter f reads channel f % M"),
    ("depthwise.cu", "filter[kh * columns.size + kw]);\n            });\n        });\n        if",
     "filter[kw * rows.size + kh]);\n            });\n        });\n        if",
     "depthwise forward: weights read transposed"),
    ("depthwise.cu", "sum += fc_load(b[f]);", "sum += fc_load(b[f / (int)M]);",
     "depthwise forward: the channel's bias for each of its filters"),
    ("depthwise.cu", "dout + nc * M * OH * OW;", "dout + nc * OH * OW;",
     "depthwise dx: dout plane of the channel, not of its first filter"),
    ("depthwise.cu", "w + (int)(nc % C) * (int)M * taps;", "w + (int)(nc % C) * taps;",
     "depthwise dx: weights of filter c, not c*M"),
    ("depthwise.cu", "grad += OH * OW, filter += taps)", "grad += OH * OW, filter += 1)",
     "depthwise dx: the next filter's weights one tap on"),
    ("depthwise.cu", "(int)(((unsigned)-start + axis.stride - 1) / axis.stride);",
     "(int)(((unsigned)-start) / axis.stride);", "depthwise dw: a tap's span starts early"),
    ("depthwise.cu", "((unsigned)end - 1) / axis.stride) + 1, (int)out);",
     "((unsigned)end - 1) / axis.stride), (int)out);", "depthwise dw: a tap's span ends short"),
    ("depthwise.cu", "const int kh = tap / columns.size,", "const int kh = tap / rows.size,",
     "depthwise dw: a tap's row from the kernel height"),
    ("depthwise.cu", "for (int o = 0; o < (int)(OH * OW); ++o)",
     "for (int o = 1; o < (int)(OH * OW); ++o)", "depthwise db: the first position left out"),
    ("depthwise.cu", "*slot = accumulate ? *slot + sum : sum;", "*slot = sum;",
     "depthwise dw: a later chunk overwrites the earlier chunks' partials"),
    ("depthwise.cu", "partials + n * F * (taps + 1) + pos;", "partials + n * F * taps + pos;",
     "depthwise dw: an image's partials of the wrong size"),
    ("weight_sum.cu", "for (idx_t n = 0; n < images; ++n)", "for (idx_t n = 1; n < images; ++n)",
     "weight sum: the sum over the images skips the first"),
    ("weight_sum.cu", "for (idx_t n = 0; n < images; ++n) sum += slot[n * slots];",
     "for (idx_t n = images; n-- > 0;) sum += slot[n * slots];",
     "weight sum: the images summed last to first (same terms, another order)"),
    ("weight_sum.cu", "dw[f * taps + tap]", "dw[tap * F + f]", "weight sum: dw stored transposed"),
    ("weight_sum.cu", "partials + f * (taps + 1) + tap;", "partials + f * taps + tap;",
     "weight sum: a filter's row of partials one slot short"),
    ("weight_sum.cu", "if (tap == (unsigned)taps && !has_bias) return;",
     "if (tap == (unsigned)taps && has_bias) return;", "weight sum: db skipped with a bias"),
    ("weight_sum.cu", "if (tap < (unsigned)taps) {", "if (tap <= (unsigned)taps) {",
     "weight sum: the bias slot written into dw, one past the filter's taps"),
    ("pool3d.cu", ": depths(KD, SD, DD, PF), rows(", ": depths(KD, SD, DD, PT), rows(",
     "3-D pools: the depth axis padded by the top padding"),
    ("pool3d.cu", "return (kd * rows.size + kh) * columns.size + kw;",
     "return (kd * columns.size + kh) * rows.size + kw;",
     "3-D pools: the flat kernel offset with the row and column sizes swapped"),
    ("pool3d.cu", "const unsigned d = (unsigned)row / (unsigned)H;",
     "const unsigned d = (unsigned)row / (unsigned)W;", "3-D pools: a row split by the width"),
    ("pool3d.cu", "row - (int)(d * (unsigned)H), w);", "row - (int)(d * (unsigned)W), w);",
     "3-D pools: a row's h with the width for the height"),
    ("pool3d.cu", "return fc_offset(fc_offset(d, h, H), w, W);",
     "return fc_offset(fc_offset(d, h, W), w, W);", "3-D pools: in-volume offset of W x W planes"),
    ("pool3d.cu", "if ((unsigned)d >= (unsigned)D) return;",
     "if ((unsigned)d > (unsigned)D) return;",
     "3-D pools: the window reads one plane past the depth"),
    ("pool3d.cu", "fc_covering(window.depths, d, OD);", "fc_covering(window.depths, d, OH);",
     "3-D pools backward: the depth's covering range bounded by the output height"),
    ("pool3d.cu", "argmax[o] = best_k < 0 ? 0 : best_k;", "argmax[o] = best_k;",
     "3-D max pool: a window of padding only gets offset -1"),
    ("pool3d.cu", "if (argmax[outputs + o] == k)", "if (argmax[outputs + o] >= k)",
     "3-D max pool backward: an input takes the windows won at or past its offset"),
    ("pool3d.cu", "const idx_t outputs = nc * OD * OH * OW;", "const idx_t outputs = nc * OH * OW;",
     "3-D max pool backward: dout and argmax of a plane's size, not a volume's"),
    ("pool3d.cu", "sum / fc_load(divisor[pos])", "sum / fc_load(divisor[0])",
     "3-D avg pool: every window divided by the first window's divisor"),
    ("pool3d.cu", "fc_load(grad[o]) / fc_load(divisor[o]);",
     "fc_load(grad[o]) / fc_load(divisor[0]);",
     "3-D avg pool backward: every window's share over the first window's divisor"),
    ("pool3d.cu", "const T* grad = dout + nc * OD * OH * OW;",
     "const T* grad = dout + nc * OD * OH;",
     "3-D avg pool backward: dout volumes one output plane short"),
    ("unpool.cu", "c + axis.pad - o * axis.stride) < (unsigned)axis.size;",
     "c + axis.pad - o * axis.stride) <= (unsigned)axis.size;",
     "unpool check: the cell past a window counts as inside it"),
    ("unpool.cu", "(unsigned)(c + axis.pad - o * axis.stride)",
     "(unsigned)(c - axis.pad - o * axis.stride)", "unpool check: the padding's sign"),
    ("unpool.cu", ": axis(size, stride, 1, pad)", ": axis(size, stride, 1, 0)",
     "unpool windows: the padding left out"),
    ("unpool.cu", "return window * n / m <= cell &&", "return window * n / m < cell &&",
     "adaptive check: a window's first cell counts as outside it"),
    ("unpool.cu", "cell < ((window + 1) * n + m - 1) / m;", "cell < ((window + 1) * n) / m;",
     "adaptive check: a window's end rounded down"),
    ("unpool.cu", "return fc_holders{(int)(cell * m / n),",
     "return fc_holders{(int)((cell + 1) * m / n),",
     "adaptive gather: the first window holding a cell skipped"),
    ("unpool.cu", "(int)(((cell + 1) * m - 1) / n)};", "(int)(((cell + 1) * m - 1) / n) - 1};",
     "adaptive gather: the last window holding a cell skipped"),
    ("unpool.cu", "if (o > holders.last) break;", "if (o >= holders.last) break;",
     "gather: the last window holding a cell never visited"),
    ("unpool.cu", "if (index[i] == (idx_t)pos) sum", "if (index[i] != -1) sum",
     "gather: every value of a holding window summed, wherever its index points"),
    ("unpool.cu", "double sum = 0;", "typename fc_acc<T>::type sum = 0;",
     "gather: sums in float32 for float32 and float16, not the CPU path's float64"),
    ("unpool.cu", "outside[i] = inside ? fc_zero<T>() : fc_store<T>(1);",
     "outside[i] = fc_zero<T>();",
     "check: no index ever flagged (indices outside their window lost)"),
    ("unpool.cu", "fc_for_each_cell(NC, OH, OW, [&](idx_t nc, unsigned pos, int oh, int ow)",
     "fc_for_each_cell(NC, OW, OH, [&](idx_t nc, unsigned pos, int oh, int ow)",
     "check: pooled positions split with the height for the width"),
    ("unpool.cu", "out, NC, H, W, OH, OW, fc_pool_windows<K, S>(KH, SH, PT, OH),",
     "out, NC, H, W, OH, OW, fc_pool_windows<K, S>(KH, SH, PT, OW),",
     "unpool gather: rows of windows bounded by the pooled width"),
    ("unpool.cu", "fc_gather_sent(dout, index, dx, NC, H, W, OH, OW, fc_adaptive_windows(H, OH),",
     "fc_gather_sent(dout, index, dx, NC, H, W, OH, OW, fc_adaptive_windows(W, OH),",
     "adaptive gather: row windows of the width's cells"),
    ("common.cuh", "if (rest > (1ull << 41) || (rest == (1ull << 41) && (h & 1u))) ++h;",
     "if (rest >= (1ull << 41)) ++h;", "double to float16: ties away from zero"),
    ("common.cuh", "const unsigned shift = 1051u - exponent;",
     "const unsigned shift = 1052u - exponent;",
     "double to float16: subnormals at half their value"),
    ("common.cuh", "h = ((exponent - 1008u) << 10)", "h = ((exponent - 1007u) << 10)",
     "double to float16: normal results at twice their value"),
    ("vol2col.cu", "const int od = row / (int)OH,", "const int od = row / (int)OW,",
     "vol2col: a row of positions split by the output width"),
    ("vol2col.cu", "const bool depth_inside = (unsigned)d < (unsigned)D;",
     "const bool depth_inside = (unsigned)d <= (unsigned)D;",
     "vol2col reads one plane past the depth"),
    ("vol2col.cu", "depth_inside && (unsigned)h < (unsigned)H;",
     "depth_inside && (unsigned)h < (unsigned)W;", "vol2col: rows tested against the width"),
    ("vol2col.cu", "volume[fc_offset(d * (int)H + h, w, W)]",
     "volume[fc_offset(d * (int)W + h, w, W)]",
     "vol2col: in-volume offset of planes W rows high"),
    ("vol2col.cu", "cols + nc * depths.size * rows.size * columns.size * L + pos;",
     "cols + nc * rows.size * columns.size * L + pos;",
     "vol2col: a volume's columns KH*KW taps long, not KD*KH*KW"),
    ("vol2col.cu", "h = row - d * (int)H;", "h = row - d * (int)W;",
     "col2vol: an input row's h with the width for the height"),
    ("vol2col.cu", "fc_covering(depths, d, OD);", "fc_covering(depths, d, OH);",
     "col2vol: the depth's covering range bounded by the output height"),
    ("vol2col.cu", "fc_covering(rows, h, OH);", "fc_covering(columns, h, OH);",
     "col2vol: rows covered by the column axis's window"),
    ("vol2col.cu", "tap_row = kd * rows.size + kh;", "tap_row = kd * columns.size + kh;",
     "col2vol: the tap index with the kernel width for its height"),
    ("vol2col.cu", "const int out_row = od * (int)OH + oh,",
     "const int out_row = od * (int)OW + oh,",
     "col2vol: an output row with the output width for its height"),
    ("vol2col.cu", "x[nc * D * H * W + pos] = fc_store<T>(sum);",
     "x[nc * H * W + pos] = fc_store<T>(sum);", "col2vol: input volumes one plane long"),
    ("interpolate.cu", "t < taps; ++t, entry += positions)", "t < taps; ++t, entry += 1)",
     "interpolate: tap t read one entry on, not one table row on"),
    ("interpolate.cu", "sum = t == 0 ? term : fc_interp_add(sum, term);",
     "sum = fc_interp_add(sum, term);", "interpolate: a sum starts at +0, not at its first term"),
    ("interpolate.cu", "fc_interp_mul(v, weight[entry])", "fc_interp_mul(v, weight[p])",
     "interpolate: every tap weighted by the first tap's weight"),
    ("interpolate.cu", "return fc_load(plane[fc_offset(h, col, W)]);",
     "return fc_load(plane[fc_offset(col, h, W)]);", "interpolate forward: input read transposed"),
    ("interpolate.cu", "const T* plane = x + nc * H * W;", "const T* plane = x + nc * H * H;",
     "interpolate forward: input planes of the wrong size"),
    ("interpolate.cu", "rows(row_index, row_weight, TH, OH, weighted_h);",
     "rows(row_index, row_weight, TH, OW, weighted_h);",
     "interpolate forward: the row table's width from the output width"),
    ("interpolate.cu",
     "return rows.combine(oh, [&](int h) { return fc_load(plane[fc_offset(h, col, W)]); });",
     "return fc_load(fc_store<T>(rows.combine(oh, [&](int h) { "
     "return fc_load(plane[fc_offset(h, col, W)]); })));",
     "interpolate forward: the H pass rounded to the storage dtype before the W pass"),
    ("interpolate.cu", "rows(row_index, row_weight, MH, H, weighted_h);",
     "rows(row_index, row_weight, MH - 1, H, weighted_h);",
     "interpolate backward: each input row's last reader left out"),
    ("interpolate.cu", "columns(col_index, col_weight, MW, W, weighted_w);",
     "columns(col_index, col_weight, MW, H, weighted_w);",
     "interpolate backward: the column table's width from the input height"),
    ("interpolate.cu", "if (oh == (int)OH) return 0;", "if (oh == (int)OH - 1) return 0;",
     "interpolate backward: the last output row taken for the zero row"),
    ("interpolate.cu", "return ow == (int)OW ? acc_t(0) :", "return ow > (int)OW ? acc_t(0) :",
     "interpolate backward: the zero column read from dout"),
    ("interpolate.cu", "const T* grad = dout + nc * OH * OW;", "const T* grad = dout + nc * H * W;",
     "interpolate backward: dout planes of the input's size"),
    ("interpolate.cu", "weighted(weighted_ != 0)", "weighted(weighted_ >= 0)",
     "interpolate: unweighted axes multiplied by their placeholder weights"),
    ("unpool.cu", "return fc_span{(int)(start / m),",
     "return fc_span{(int)((start + m - 1) / m),",
     "adaptive forward: a window's first cell rounded up"),
    ("unpool.cu", "(int)((end + m - 1) / m)};", "(int)(end / m)};",
     "adaptive forward: a window's end rounded down"),
    ("unpool.cu", "end = start + n;", "end = start + n - 1;",
     "adaptive forward: a window's end one product short"),
    ("unpool.cu", "const fc_adaptive_windows rows(H, OH), columns(W, OW);",
     "const fc_adaptive_windows rows(H, OH), columns(W, OH);",
     "adaptive forward: column windows of the pooled height"),
    ("unpool.cu", "const T* plane = x + nc * H * W;", "const T* plane = x + nc * OH * OW;",
     "adaptive forward: input planes of the pooled size"),
    ("unpool.cu", "row_cells = rows.cells(oh), column_cells = columns.cells(ow);",
     "row_cells = rows.cells(ow), column_cells = columns.cells(oh);",
     "adaptive forward: the windows of the transposed position"),
    ("unpool.cu", "const int cell = fc_offset(h, w, W);", "const int cell = fc_offset(w, h, W);",
     "adaptive forward: cells read transposed"),
    ("unpool.cu", "if (fc_max_pool_takes(v, best, best_at)) {",
     "if (best_at < 0 || fc_greater(v, best)) {",
     "adaptive forward: NaN compared as a number"),
    ("unpool.cu", "int best_at = -1;", "int best_at = 0;",
     "adaptive forward: the first cell compared with 0, not taken"),
    ("unpool.cu", "const idx_t o = nc * OH * OW + at;", "const idx_t o = nc * H * W + at;",
     "adaptive forward: outputs written at the input's plane offsets"),
    ("conv_gemm.cu", "if (k0 + FC_TILE_K < reduction) load(k0 + FC_TILE_K);",
     "if (k0 + FC_TILE_K < reduction) load(k0);", "implicit product: the same slice staged again"),
    ("conv_gemm.cu", "origin[q] = (unsigned)top[q] * (unsigned)W + (unsigned)left[q];",
     "origin[q] = (unsigned)top[q] * (unsigned)H + (unsigned)left[q];",
     "implicit product: a window's origin with the input's height for its width"),
    ("conv_gemm.cu", "return (i < 4 ? 0 : half) + 4 * lane_group + (i & 3);",
     "return (i < 4 ? 0 : half) + 4 * lane_group + (i & 1);",
     "implicit product: a sub-tile's values overlap"),
    ("conv_gemm.cu", "a_k = (t % 2) * 4,", "a_k = (t % 2) * 2,",
     "implicit product: the filter slice staged half overlapping"),
    ("conv_gemm.cu", "const int kh = tap / columns.size, kw = tap - kh * columns.size;",
     "const int kh = tap / rows.size, kw = tap - kh * rows.size;",
     "implicit product: a tap split with the kernel's height for its width"),
    ("conv_gemm.cu", "const int dw = kw * columns.dilation;", "const int dw = kw * rows.dilation;",
     "implicit product: the columns dilated as the rows"),
    ("conv_gemm.cu", "__syncthreads();\n                // the next slice",
     "\n                // the next slice",
     "implicit product: the slice multiplied before every thread has staged its part"),
    ("conv_gemm.cu", "__syncthreads();  // every thread has read",
     "// every thread has read", "implicit product: a slice replaced while still being read"),
]


def run_mutant(file, old, new):
    """True when the emulation tests fail on the planted bug."""
    with tempfile.TemporaryDirectory() as tmp:
        for path in KERNELS.glob("*.cu*"):
            shutil.copy(path, Path(tmp) / path.name)
        source = (Path(tmp) / file).read_text()
        assert source.count(old) == 1, f"{old!r} is not (once) in {file}"
        (Path(tmp) / file).write_text(source.replace(old, new))
        env = dict(os.environ, FC_EMU_KERNEL_DIR=tmp)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             *tests_of(file)],
            cwd=ROOT, env=env, capture_output=True, text=True)
        return result.returncode != 0


def main(files=()):
    """Run the mutants of ``files`` (every mutant when empty); 1 if any survives."""
    unknown = set(files) - {file for file, *_ in MUTANTS}
    if unknown:
        sys.exit(f"no mutants for {', '.join(sorted(unknown))}")
    chosen = [mutant for mutant in MUTANTS if not files or mutant[0] in files]
    survivors = 0
    for file, old, new, what in chosen:
        caught = run_mutant(file, old, new)
        survivors += not caught
        print(f"{'caught  ' if caught else 'SURVIVED'} {file}: {what}", flush=True)
    print(f"{len(chosen) - survivors} of {len(chosen)} planted bugs caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
