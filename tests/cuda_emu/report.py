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
