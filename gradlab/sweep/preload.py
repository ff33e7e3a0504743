"""Warm a sweep worker up: import torch and the trainer before the first run.

Imported once by the forkserver that forks the local process pool's workers, so each forked
worker starts warm instead of paying seconds of imports (including the modules torch imports
lazily when it builds its first optimiser). Dask workers can do the same with
``dask worker --preload gradlab.sweep.preload``. Nothing here runs a torch operation, so forking
afterwards is safe; any failure is left for the runs to meet and report.
"""

try:
    import torch

    torch.set_num_threads(1)

    import gradlab.train  # noqa: F401  (the default train function)

    # torch.optim imports torch._dynamo when it builds its first optimiser: do it once, here.
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
except Exception:  # pragma: no cover - a broken install shows up in the runs instead
    pass
