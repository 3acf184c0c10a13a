"""The benchmark behind ``fastconv bench``: loops vs NumPy vs GPU vs PyTorch, checked then timed.

- :mod:`.cases`: the standard shape set (the conv layers S1..S6 and three pools) and custom shapes;
- :mod:`.ops`: how each implementation calls each op, and the agreement check;
- :mod:`.timing`: CPU and CUDA-event clocks, medians;
- :mod:`.machine`: the machine description and the measured GEMM peak;
- :mod:`.runner`: check, interleave, time; :mod:`.report`: table, JSON, chart;
- :mod:`.breakdown`: where a convolution's time goes (``fastconv bench --breakdown``);
- :mod:`.network`: one whole training step of the ``cnn`` and ``convnet`` models against the
  same networks in PyTorch (``fastconv bench --network``), with :mod:`.twin` (the PyTorch
  network built from a fastconv model, its weights copied), :mod:`.layer_time` (each layer
  type's share of the step) and :mod:`.network_report` (the table).
"""
