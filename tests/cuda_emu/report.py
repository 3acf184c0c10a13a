"""Lines for the end of the pytest output (case counts, register usage) without a conftest hook."""

_NAME = "fastconv-cuda-summary"


class _SummaryLines:
    def __init__(self):
        self.lines = []

    def pytest_terminal_summary(self, terminalreporter):
        for line in self.lines:
            terminalreporter.write_line(line)


def summary_lines(config):
    """The list of lines printed in pytest's terminal summary (a plugin registered on first use)."""
    plugin = config.pluginmanager.get_plugin(_NAME)
    if plugin is None:
        plugin = _SummaryLines()
        config.pluginmanager.register(plugin, _NAME)
    return plugin.lines


def report_cases(config, title, oracle, cases, unrolled=None):
    """At the end of the run, a line "[<title> ]CUDA emulation[ under ASan+UBSan]: N cases vs
    <oracle> (each kind's count)[; M of them on unrolled windows, also vs the run-time
    instantiation (...)]", when any case ran (``cases``, ``unrolled``: Counters by kind)."""
    from .emu import sanitizing

    if not cases:
        return
    counts = ", ".join(f"{kind} {count}" for kind, count in sorted(cases.items()))
    line = (f"{title + ' ' if title else ''}CUDA emulation"
            f"{' under ASan+UBSan' if sanitizing() else ''}: "
            f"{sum(cases.values())} cases vs {oracle} ({counts})")
    if unrolled:
        windows = ", ".join(f"{kind} {count}" for kind, count in sorted(unrolled.items()))
        line += (f"; {sum(unrolled.values())} of them on unrolled windows, also vs the run-time "
                 f"instantiation ({windows})")
    summary_lines(config).append(line)


def built_and_reported(title, oracle, cases, unrolled=None):
    """An emulation test file's module fixture (autouse): the emulated kernels built up front
    (skipped without g++), and at the end the :func:`report_cases` line of ``cases``."""
    import pytest

    from .emu import prebuild, require_kernel_tools

    @pytest.fixture(scope="module", autouse=True, name="build_and_report")
    def fixture(request):
        require_kernel_tools("g++")
        prebuild()
        yield
        report_cases(request.config, title, oracle, cases, unrolled)

    return fixture
