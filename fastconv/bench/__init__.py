"""The benchmark behind ``fastconv bench``: loops vs NumPy vs GPU vs PyTorch, checked then timed.

- :mod:`.cases`: the standard shape set (the conv layers S1..S6 and three pools) and custom shapes;
- :mod:`.ops`: how each implementation calls each op, and the agreement check;
- :mod:`.timing`: CPU and CUDA-event clocks, medians;
- :mod:`.machine`: the machine description and the measured GEMM peak;
- :mod:`.runner`: check, interleave, time; :mod:`.report`: table, JSON, chart;
- :mod:`.breakdown`: where a convolution's time goes (``fastconv bench --breakdown``).
"""
