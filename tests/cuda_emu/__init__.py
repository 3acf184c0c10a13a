"""Run fastconv's CUDA kernels on the CPU: the emulation header and a ctypes RawModule."""
