"""The experiments ``idrop reproduce`` knows, loaded lazily by name.

Each entry maps an experiment name to ``"package:function"``: the experiment's package
``idrop.experiments.<name>`` (protocol in its ``__init__``, train steps in ``torch.py``,
``tensorflow.py``, ``jax.py``), which exposes
``add_arguments(parser)`` and ``run(args) -> int``. Nothing is imported until the
command line asks for it, so ``idrop --help`` stays fast and a module that is not
written yet only breaks its own experiment.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: name -> "module:function" of the experiment's ``run``; ``add_arguments`` lives beside it.
EXPERIMENTS: dict[str, str] = {
    "mnist": "idrop.experiments.mnist:run",
    "cifar10": "idrop.experiments.cifar10:run",
    "cluttered": "idrop.experiments.cluttered:run",
    "vae": "idrop.experiments.vae:run",
}

#: One line each, for ``--help`` (no import needed to show it).
DESCRIPTIONS: dict[str, str] = {
    "mnist": "Fig. 3a: test error vs. hidden units of a 3-layer fully connected net on MNIST",
    "cifar10": "All-CNN-32 on CIFAR-10 as the official cifar.py (Fig. 3b, Table 2a)",
    "cluttered": "Cluttered MNIST (Fig. 2): KL heat maps, localisation measured against ink",
    "vae": "Variational autoencoder as a special case of Information Dropout (Section 5, Table 1)",
}


class ExperimentUnavailable(ImportError):
    """An experiment is registered but its module cannot be imported (not written yet, or broken)."""


def load(name: str) -> ModuleType:
    """Import the module of experiment ``name``.

    Raises:
        KeyError: ``name`` is not registered.
        ExperimentUnavailable: its module is missing or lacks ``add_arguments``/``run``.
    """
    if name not in EXPERIMENTS:
        raise KeyError(f"Unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}.")
    module_name, func = EXPERIMENTS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        # Only the experiment's own module missing means "not there yet"; a missing
        # dependency inside it is a real error and keeps its own message.
        if err.name != module_name:
            raise
        raise ExperimentUnavailable(
            f"Experiment {name!r} is registered but its module {module_name} is not available in this "
            "install of idrop yet."
        ) from err
    for attr in ("add_arguments", func):
        if not callable(getattr(module, attr, None)):
            raise ExperimentUnavailable(f"{module_name} does not define {attr}(); it cannot run as an experiment.")
    return module
