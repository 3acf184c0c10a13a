"""``fastconv info``: versions, BLAS, GPU status, workspace limit, data-parallel transport."""


def add_info_parser(sub):
    """Options of ``fastconv info`` (none)."""
    return sub.add_parser("info", help="versions, BLAS, GPU status and the workspace limit")


def cmd_info(args):
    """Print fastconv's version, NumPy and its BLAS, CuPy/CUDA/GPU (or why none), the workspace limit."""
    from ..bench.machine import describe
    from ..workspace import get_workspace_limit
    m = describe(include_torch=False)
    print(f"fastconv {m['fastconv']} (Python {m['python']}, {m['platform']})")
    print(f"CPU: {m['cpu']}, {m['cores']} usable cores")
    print(f"NumPy {m['numpy']}")
    for b in m["blas"]:
        print(f"  BLAS: {b['library']} {b['version'] or ''}, {b['threads'] or '?'} threads"
              + (f", {b['architecture']} kernels" if b.get("architecture") else ""))
    print(f"CuPy: {m['cupy']}")
    print(f"GPU: {'usable' if m['gpu_available'] else 'not usable'}: {m['gpu']}")
    if "cuda_runtime" in m:
        print(f"  CUDA runtime {m['cuda_runtime']}")
    print(f"workspace limit: {get_workspace_limit() / 2**20:g} MiB per call "
          "(fastconv.set_workspace_limit)")
    from ..distributed import describe_transport
    print(f"data-parallel: {describe_transport()}")
    return 0
