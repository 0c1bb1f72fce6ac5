"""idrop's speed and memory benchmarks (issue "Speed and memory"); run ``python -m benchmarks --help``.

Per backend (torch, TensorFlow/Keras 3, JAX/Flax NNX), on the CPU and on a GPU when
one is present, the suite times Information Dropout's layer training step against a
floor (the stacked map plus the normal draws), a naive port and binary dropout; its
evaluation forward pass against the plain map; the memory a training step keeps for
backward; and the training throughput of the paper's MNIST MLP and All-CNN-32.
Results go to ``benchmarks/results/latest.{md,json}``.

Modules: ``_timing`` (round-robin, paired ratios), ``_settings`` (sizes, targets,
result rows), ``naive_*`` (the baselines), ``*_bench`` (one per backend), ``_worker``
(one backend per process), ``_report`` (machine info, Markdown), ``__main__`` (CLI).
"""
