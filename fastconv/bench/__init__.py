"""The benchmark behind ``fastconv bench``: loops vs NumPy vs GPU vs PyTorch, checked then timed.

- :mod:`.cases`: the standard shape set (the conv layers S1..S6 and three pools) and custom shapes;
- :mod:`.ops`: how an op is called (fastconv's API, torch), its inputs, its work, the
  agreement measure; :mod:`.impls`: the implementations timed (CPU, GPU, PyTorch, loops,
  TF32 variants) and their clocks; :mod:`.tf32`: TF32 on or off on both sides;
- :mod:`.oracle`: what results are checked against; :mod:`.reduced`: the smaller problems
  of the same layer that the loops check and time (scaled to the batch);
- :mod:`.timing`: CPU and CUDA-event clocks, medians;
- :mod:`.machine`: the machine description, the measured GEMM peak, the kernel compile time;
- :mod:`.runner`: check, interleave, time; :mod:`.report`: rows, Markdown table, notes, JSON,
  chart; :mod:`.terminal`: the table as printed, within 100 columns;
- :mod:`.breakdown`: where a convolution's time goes (``fastconv bench --breakdown``);
- :mod:`.network`: one whole training step of the ``cnn`` and ``convnet`` models against the
  same networks in PyTorch (``fastconv bench --network``), with :mod:`.twin` (the PyTorch
  network built from a fastconv model, its weights copied), :mod:`.layer_time` (each layer
  type's share of the step) and :mod:`.network_report` (the table).
"""
