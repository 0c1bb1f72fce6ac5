"""The beta schedules give the same beta at every step in torch, Keras and JAX.

The Python-float forms (torch's ``BetaScheduler``, the Keras callback's ``beta_at``) are bit-identical;
the traced float32 forms (JAX's optax-style schedule, the value the Keras callback computes inside the
compiled step) agree with them to float32 rounding (2 ulp).
"""

from __future__ import annotations

import numpy as np
import pytest

from idrop.core.schedules import beta_schedule as core_schedule

KINDS = [
    ("constant", {}),
    ("linear", {"warmup_steps": 7}),
    ("cosine", {"warmup_steps": 7, "start": 1e-5}),
    ("cyclical", {"cycle_steps": 5, "ramp": 0.6}),
]
STEPS = range(0, 40)


@pytest.mark.parametrize(("kind", "kwargs"), KINDS)
def test_every_backend_gives_the_same_beta(kind: str, kwargs: dict) -> None:
    expected = [core_schedule(kind, 3e-3, **kwargs)(s) for s in STEPS]
    got = {}
    pytest.importorskip("torch")  # torch before TensorFlow in one process (Keras' rule)
    from idrop.backends.torch import BetaScheduler as TorchScheduler
    from idrop.backends.torch import beta_schedule as torch_schedule

    sched = TorchScheduler(torch_schedule(kind, 3e-3, **kwargs))
    got["torch"] = [sched.beta] + [sched.step() for _ in STEPS[1:]]
    pytest.importorskip("tensorflow")
    from idrop.backends.tensorflow import BetaScheduler as KerasScheduler
    from idrop.backends.tensorflow import beta_schedule as keras_schedule

    keras_s = keras_schedule(kind, 3e-3, **kwargs)
    got["keras"] = [KerasScheduler(keras_s).beta_at(s) for s in STEPS]
    from idrop.backends.keras._keras_tools import xp as keras_xp

    got["keras (compiled step)"] = [float(keras_s.at(np.int64(s), xp=keras_xp)) for s in STEPS]
    pytest.importorskip("flax")
    import jax
    import jax.numpy as jnp

    from idrop.backends.jax import beta_schedule as jax_schedule

    jax_s = jax_schedule(kind, 3e-3, **kwargs)
    got["jax"] = [float(jax_s(s)) for s in STEPS]
    got["jax (jit, vmap)"] = list(np.asarray(jax.jit(jax.vmap(jax_s))(jnp.arange(len(STEPS)))))
    assert got["torch"] == expected and got["keras"] == expected
    for name in ("jax", "jax (jit, vmap)", "keras (compiled step)"):
        np.testing.assert_allclose(np.float32(got[name]), np.float32(expected), rtol=2.4e-7, atol=0, err_msg=name)
