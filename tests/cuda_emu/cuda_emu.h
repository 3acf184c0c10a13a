// CUDA on the CPU, for testing fastconv's kernels without a GPU.
//
// Force-included (g++ -include cuda_emu.h) in front of an unchanged kernel
// file. Defines the CUDA built-ins the kernels use and runs a launch serially:
// block after block, thread after thread (x fastest), optionally in reversed
// order, each CUDA thread seeing its own threadIdx/blockIdx. Serial execution
// cannot honour a barrier, so __shared__ and __syncthreads are refused at
// compile time, unless the file is built with FC_EMU_COOPERATIVE (emu.py does
// for a file that synchronises its threads, kernels/conv_gemm.cu): then the
// blocks still run one after the other, but a block's threads run at once, one
// std::thread each, __syncthreads is a std::barrier over them, and a __shared__
// variable is a function-local static, one per kernel instantiation, which the
// block running alone has to itself. A thread that returns leaves the barrier
// (arrive_and_drop), as an exited thread no longer counts on a GPU. There each
// warp of 32 threads also has a barrier of its own, for the one warp-collective
// instruction the kernels use (fc_mma_tf32, the tensor cores' mma.sync).
//
// fc_emu_launch mimics cuLaunchKernel(void** params): each kernel named by
// FC_EMU_ENTRY gets a type-erased trampoline and a description of its
// parameters (count, byte size, pointer or scalar, element kind) that the
// Python side (emu.py) checks every launch against, as strictly as possible.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <utility>

#define FC_CUDA_EMU 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define FC_UNROLL  // kernels/common.cuh's unroll pragma: g++ has no such pragma
#define __align__(n) __attribute__((aligned(n)))
#if defined(FC_EMU_COOPERATIVE)
#include <algorithm>
#include <barrier>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>
#define __shared__ static
#define __syncthreads() fc_emu::block_barrier->arrive_and_wait()
namespace fc_emu { inline thread_local std::barrier<>* block_barrier = nullptr; }
#else
#define __shared__ FC_EMU_ERROR_shared_memory_is_not_emulated_in_serial_mode
#define __syncthreads() static_assert(false, "__syncthreads is not emulated in serial mode")
#endif

struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;


inline float __uint_as_float(unsigned int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
inline long long __double_as_longlong(double d) { long long i; std::memcpy(&i, &d, 8); return i; }
template <class T> T __ldg(const T* p) { return *p; }
// Round-to-nearest products and sums that CUDA never fuses into an FMA; g++ targeting
// baseline x86-64 has no FMA to fuse them into, and honours the flush modes (fc_emu_launch).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
// kernels/common.cuh's float <-> double conversions (inline PTX there), as the GPU has them:
// exact and to nearest even, float subnormals kept under the flush modes fc_emu_launch sets,
// which would flush them in a cast. Outside the float subnormal range a cast is not flushed.
inline double fc_widen(float v) {
    const unsigned int bits = __float_as_uint(v);
    if (bits & 0x7f800000u) return v;  // normal, inf or NaN
    const double magnitude = (int)(bits & 0x7fffffu) * 0x1p-149;  // exact, a normal double
    return bits >> 31 ? -magnitude : magnitude;
}
inline float fc_narrow(double v) {
    const double magnitude = std::fabs(v);
    if (!(magnitude < 0x1p-126)) return (float)v;  // a normal float, inf or NaN
    // steps of 2^-149 to nearest even (the default rounding mode, which fc_emu_launch leaves
    // as it is): a subnormal's bits, or the smallest normal's (0x00800000)
    const unsigned int steps = (unsigned int)std::nearbyint(magnitude * 0x1p149);
    return __uint_as_float((std::signbit(v) ? 0x80000000u : 0u) | steps);
}
// kernels/common.cuh's TF32 rounding (cvt.rna.tf32.f32): to nearest, ties away from zero,
// at the 13th bit; a NaN stays a (quiet) NaN, a carry past the largest finite value gives
// infinity.
inline float fc_tf32(float v) {
    const unsigned int bits = __float_as_uint(v);
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu))
        return __uint_as_float((bits & 0xffffe000u) | 0x00400000u);
    return __uint_as_float((bits + 0x1000u) & 0xffffe000u);
}
#if defined(FC_EMU_COOPERATIVE)
// A warp of a cooperative launch: its lanes meet at a barrier of their own for the
// warp-collective fc_mma_tf32, which hands each lane's fragments to the others.
namespace fc_emu {
struct Warp {
    explicit Warp(std::ptrdiff_t lanes) : barrier(lanes) {}
    std::barrier<> barrier;
    float a[32][4], b[32][2];
};
inline thread_local Warp* warp = nullptr;
inline thread_local int lane = 0;
[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "cuda_emu: %s in CUDA thread blockIdx=(%u,%u,%u) threadIdx=(%u,%u,%u)\n",
                 what, blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    std::abort();
}
}  // namespace fc_emu
// kernels/common.cuh's mma.m16n8k8 in TF32: the warp's a (16 x 8) and b (8 x 8) gathered
// from the lanes' fragments in the PTX ISA's layout, each lane's four sums of d += a b
// added in ascending k in float. Operands must be TF32 already (the hardware ignores their
// low 13 bits; the kernels round them as they stage them), and a warp must be full.
inline void fc_mma_tf32(float (&d)[4], const float (&a)[4], const float (&b)[2]) {
    fc_emu::Warp& warp = *fc_emu::warp;
    for (float v : a) if (__float_as_uint(v) & 0x1fffu) fc_emu::fail("fc_mma_tf32 given a non-TF32 a");
    for (float v : b) if (__float_as_uint(v) & 0x1fffu) fc_emu::fail("fc_mma_tf32 given a non-TF32 b");
    const int lane = fc_emu::lane, group = lane / 4, member = lane % 4;
    for (int i = 0; i < 4; ++i) warp.a[lane][i] = a[i];
    for (int i = 0; i < 2; ++i) warp.b[lane][i] = b[i];
    warp.barrier.arrive_and_wait();
    // a[row][k] is lane 4 * (row % 8) + k % 4's register (row >= 8) + 2 * (k >= 4);
    // b[k][column] is lane 4 * column + k % 4's register (k >= 4)
    auto a_at = [&](int row, int k) { return warp.a[4 * (row % 8) + k % 4][(row >= 8) + 2 * (k >= 4)]; };
    auto b_at = [&](int k, int column) { return warp.b[4 * column + k % 4][k >= 4]; };
    for (int i = 0; i < 4; ++i) {
        const int row = group + 8 * (i / 2), column = 2 * member + i % 2;
        float sum = d[i];
        for (int k = 0; k < 8; ++k) sum += a_at(row, k) * b_at(k, column);
        d[i] = sum;
    }
    warp.barrier.arrive_and_wait();  // every lane has read the fragments before new ones
}
#endif
template <class T, class U> T atomicAdd(T* p, U v) { return std::atomic_ref<T>(*p).fetch_add(T(v)); }

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace fc_emu {

// What Python needs to know about one kernel parameter.
enum Kind : char { SCALAR_INT = 'i', SCALAR_FLOAT = 'f', CONST_POINTER = 'p', POINTER = 'P' };
enum Element : char { NONE = '-', INTEGER = 'i', FLOATING = 'f', OTHER = 'o' };

template <class P> constexpr char kind() {
    if constexpr (std::is_pointer_v<P>)
        return std::is_const_v<std::remove_pointer_t<P>> ? CONST_POINTER : POINTER;
    else if constexpr (std::is_floating_point_v<P>)
        return SCALAR_FLOAT;
    else
        return SCALAR_INT;
}

template <class P> constexpr char element() {
    if constexpr (!std::is_pointer_v<P>) {
        return NONE;
    } else {
        using E = std::remove_cv_t<std::remove_pointer_t<P>>;
        if constexpr (std::is_floating_point_v<E>) return FLOATING;
        else if constexpr (std::is_integral_v<E>) return INTEGER;
        else return OTHER;  // e.g. fc_half, the binary16 storage struct
    }
}

// Byte size of a scalar, or of one element for a pointer.
template <class P> constexpr size_t size() {
    if constexpr (std::is_pointer_v<P>) return sizeof(std::remove_pointer_t<P>);
    else return sizeof(P);
}

template <class F> struct signature;
template <class... P> struct signature<void (*)(P...)> {
    static constexpr int arity = sizeof...(P);
    static constexpr size_t sizes[] = {size<P>()..., 0};
    static constexpr char kinds[] = {kind<P>()..., 0};
    static constexpr char elements[] = {element<P>()..., 0};
    template <auto K, size_t... I> static void call(void** args, std::index_sequence<I...>) {
        K(*static_cast<std::remove_cv_t<P>*>(args[I])...);
    }
};

template <auto K> void invoke(void** args) {
    using S = signature<decltype(K)>;
    S::template call<K>(args, std::make_index_sequence<S::arity>{});
}

struct Entry {
    const char* name;
    int arity;
    const size_t* sizes;
    const char* kinds;
    const char* elements;
    void (*call)(void**);
};

inline std::atomic<bool> sanitizer_error = false;

#if defined(__SANITIZE_ADDRESS__)
inline void on_asan_report(const char*) {
    std::fprintf(stderr, "cuda_emu: failing CUDA thread blockIdx=(%u,%u,%u) threadIdx=(%u,%u,%u)\n",
                 blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    sanitizer_error = true;
}
#endif

}  // namespace fc_emu

#define FC_EMU_ENTRY(...)                                                                 \
    {#__VA_ARGS__, fc_emu::signature<decltype(&__VA_ARGS__)>::arity,                      \
     fc_emu::signature<decltype(&__VA_ARGS__)>::sizes,                                    \
     fc_emu::signature<decltype(&__VA_ARGS__)>::kinds,                                    \
     fc_emu::signature<decltype(&__VA_ARGS__)>::elements, &fc_emu::invoke<&__VA_ARGS__>},

// Status codes of fc_emu_launch, mirrored in emu.py.
#define FC_EMU_OK 0
#define FC_EMU_UNKNOWN_KERNEL 1
#define FC_EMU_BAD_CONFIGURATION 2
#define FC_EMU_SANITIZER_ERROR 3

// The exported C interface: FC_EMU_TABLE(FC_EMU_ENTRY(k<float>) ...) after the kernels.
#define FC_EMU_TABLE(...)                                                                 \
    static const fc_emu::Entry fc_emu_entries[] = {__VA_ARGS__{nullptr, 0, nullptr, nullptr, nullptr, nullptr}}; \
    static const fc_emu::Entry* fc_emu_find(const char* name) {                          \
        for (const fc_emu::Entry* e = fc_emu_entries; e->name; ++e)                       \
            if (std::strcmp(e->name, name) == 0) return e;                                \
        return nullptr;                                                                   \
    }                                                                                     \
    extern "C" int fc_emu_describe(const char* name, int* arity, const size_t** sizes,    \
                                   const char** kinds, const char** elements) {           \
        const fc_emu::Entry* e = fc_emu_find(name);                                       \
        if (!e) return FC_EMU_UNKNOWN_KERNEL;                                             \
        *arity = e->arity; *sizes = e->sizes; *kinds = e->kinds; *elements = e->elements; \
        return FC_EMU_OK;                                                                 \
    }                                                                                     \
    extern "C" int fc_emu_launch(const char* name, const unsigned* grid, const unsigned* block, \
                                 int reversed, int flush_denormals, void** args) {         \
        return fc_emu::launch(fc_emu_find(name), grid, block, reversed, flush_denormals, args); \
    }                                                                                     \
    extern "C" int fc_emu_can_flush_denormals() { return fc_emu::can_flush_denormals; }

namespace fc_emu {

// CuPy compiles every kernel with -ftz=true: single-precision arithmetic and
// comparisons on the GPU flush subnormal inputs and results to zero (double
// precision does not). On x86 the MXCSR flush-to-zero and denormals-are-zero
// bits give the CPU the same behaviour for the duration of a launch; they act
// on double too, so emu.py sets them for float and half kernels only.
#if defined(__SSE__)
inline constexpr int can_flush_denormals = 1;
struct FlushDenormals {
    unsigned saved = _mm_getcsr();
    explicit FlushDenormals(bool on) { if (on) _mm_setcsr(saved | 0x8040u); }  // FTZ | DAZ
    ~FlushDenormals() { _mm_setcsr(saved); }
};
#else
inline constexpr int can_flush_denormals = 0;
struct FlushDenormals { explicit FlushDenormals(bool) {} };
#endif

// One CUDA thread: its indices, then the kernel.
inline void run_thread(const Entry* entry, void** args, const unsigned* grid,
                       const unsigned* block, unsigned long long b, unsigned long long t) {
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    blockIdx = {unsigned(b % grid[0]), unsigned(b / grid[0] % grid[1]),
                unsigned(b / grid[0] / grid[1])};
    threadIdx = {unsigned(t % block[0]), unsigned(t / block[0] % block[1]),
                 unsigned(t / block[0] / block[1])};
    entry->call(args);
}

// Run every thread of the grid: one after the other, or (FC_EMU_COOPERATIVE) a block's
// threads at once. The limits are a real launch's: at most 1024 threads per block,
// block z <= 64, grid y, z <= 65535.
inline int launch(const Entry* entry, const unsigned* grid, const unsigned* block, int reversed,
                  int flush_denormals, void** args) {
    if (!entry) return FC_EMU_UNKNOWN_KERNEL;
    const FlushDenormals flushing(flush_denormals != 0);
    const unsigned long long threads = 1ull * block[0] * block[1] * block[2];
    if (threads == 0 || threads > 1024 || block[2] > 64 || grid[0] == 0 || grid[1] == 0 ||
        grid[2] == 0 || grid[0] > 2147483647u || grid[1] > 65535 || grid[2] > 65535)
        return FC_EMU_BAD_CONFIGURATION;
#if defined(__SANITIZE_ADDRESS__)
    __asan_set_error_report_callback(on_asan_report);
#endif
    sanitizer_error = false;
    const unsigned long long blocks = 1ull * grid[0] * grid[1] * grid[2];
    for (unsigned long long b = 0; b < blocks; ++b) {
        const unsigned long long bb = reversed ? blocks - 1 - b : b;
#if defined(FC_EMU_COOPERATIVE)
        std::barrier<> barrier((std::ptrdiff_t)threads);
        std::vector<std::unique_ptr<Warp>> warps;
        for (unsigned long long first = 0; first < threads; first += 32)
            warps.push_back(std::make_unique<Warp>((std::ptrdiff_t)std::min(32ull, threads - first)));
        std::vector<std::thread> running;
        running.reserve(threads);
        for (unsigned long long t = 0; t < threads; ++t) {
            const unsigned long long tt = reversed ? threads - 1 - t : t;
            running.emplace_back([&, tt] {
                const FlushDenormals thread_flushing(flush_denormals != 0);  // MXCSR is per thread
                block_barrier = &barrier;
                warp = warps[tt / 32].get();
                lane = (int)(tt % 32);
                run_thread(entry, args, grid, block, bb, tt);
                barrier.arrive_and_drop();
                warp->barrier.arrive_and_drop();
            });
        }
        for (std::thread& thread : running) thread.join();
        if (sanitizer_error) return FC_EMU_SANITIZER_ERROR;
#else
        for (unsigned long long t = 0; t < threads; ++t) {
            run_thread(entry, args, grid, block, bb, reversed ? threads - 1 - t : t);
            if (sanitizer_error) return FC_EMU_SANITIZER_ERROR;
        }
#endif
    }
    return FC_EMU_OK;
}

}  // namespace fc_emu
