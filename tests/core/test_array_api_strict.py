"""The core runs on array_api_strict: it uses nothing outside its small protocol."""

import numpy as np
import pytest

from idrop.core import InfoDropoutSpec, functional, reference
from idrop.core.loss import kl_term, per_sample_kl

xps = pytest.importorskip("array_api_strict")


@pytest.mark.parametrize("options", [{}, {"activation": "softplus"}, {"zero_units": "mask", "mean_one": True}])
def test_info_dropout_on_array_api_strict(options):
    rng = np.random.default_rng(0)
    f, a, e = np.abs(rng.standard_normal((3, 4))), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    f[0, 0] = 0.0
    spec = InfoDropoutSpec(**options)
    kw = {"mu": xps.asarray(0.2), "sigma": xps.asarray(1.3)} if spec.prior == "log-normal" else {}
    z, kl = functional.info_dropout(xps.asarray(f), xps.asarray(a), xps.asarray(e), spec=spec, xp=xps, **kw)
    z_ref, kl_ref = reference.info_dropout(f, a, noise=e, **options, **({"mu": 0.2, "sigma": 1.3} if kw else {}))
    np.testing.assert_allclose(np.asarray(z), z_ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(kl), kl_ref, rtol=1e-12)
    total = kl_term([per_sample_kl(kl, xp=xps)], n_train=7, xp=xps)
    assert float(total) == pytest.approx(kl_ref.sum(axis=1).mean() / 7)
