"""Function transforms, float64, against the reference: forward mode, vectorisation, gradient by transforms.

The fused kernels are custom-gradient functions (torch's ``autograd.Function``, JAX's
``custom_jvp``, TensorFlow's ``custom_gradient``), which each framework's transforms treat
apart from plain operations. Each check runs one transform of the backend on the public API:

- forward mode (``torch.func.jvp``, ``jax.jvp``, ``tf.autodiff.ForwardAccumulator``) against
  central finite differences of the reference along the same tangent;
- vectorisation (``torch.func.vmap``, ``jax.vmap``, ``tf.vectorized_map``) against the reference
  on each slice;
- the gradient by function transforms (``torch.func.grad``, ``jax.jit(jax.grad)``, a tape in a
  ``tf.function``) against finite differences of the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from idrop.core import reference

from . import _transforms
from ._cases import CASES, activations, logits, normals, prior_mu, prior_sigma, shapes
from ._layers import layer_problems, pre_activations, reference_layer
from ._report import assert_close, record, repro
from ._tolerances import tol
from .test_gradients import H, stencil

#: The traced transforms (``tf.vectorized_map``, ``tf.function``, ``jax.vmap``...) trace again for every
#: example, and the case is drawn: a few examples per test keep the suite cheap on two cores.
_FEW = settings(max_examples=min(settings().max_examples, 4))


@pytest.fixture(autouse=True)
def _transforms_supported(harness):
    reason = getattr(harness, "transforms_skip", None)
    if reason:
        pytest.skip(reason)


def _functional_problem(data):
    shape = data.draw(shapes)
    # f >= 0.01 keeps the finite differences away from the floor at 1e-4 and the mask at 0.
    f, a, eps = data.draw(activations(shape, positive=True)), data.draw(logits(shape)), data.draw(normals(shape))
    return f, a, eps, data.draw(prior_mu), data.draw(prior_sigma)


def _options(case) -> dict:
    opts = {k: v for k, v in case.options.items() if k != "activation"}
    opts["prior"] = case.prior
    return opts


def _reference(opts, eps, mu, sigma):
    kw = {"mu": mu, "sigma": sigma} if opts["prior"] == "log-normal" else {}
    return lambda f, a: reference.info_dropout(f, a, noise=eps, **opts, **kw)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_functional_forward_mode(harness, case, data):
    """Tangents of ``(z, kl)`` along ``(f_dot, a_dot)`` equal the reference's directional derivative."""
    f, a, eps, mu, sigma = _functional_problem(data)
    # f's tangent is relative (f * n): the step stays inside f > 0, as in test_gradients.
    f_dot, a_dot = f * data.draw(normals(f.shape)), data.draw(normals(f.shape))
    record(harness.name, f"jvp/{case.name}")
    opts = _options(case)
    ref = _reference(opts, eps, mu, sigma)
    want = [stencil(lambda t, i=i: ref(f + t * f_dot, a + t * a_dot)[i]) for i in (0, 1)]
    got = _transforms.info_dropout_jvp(harness, f, a, noise=eps, f_dot=f_dot, a_dot=a_dot, mu=mu, sigma=sigma, **opts)
    note = repro(
        harness.name,
        f"_transforms.info_dropout_jvp(h, f, a, noise=eps, f_dot=fd, a_dot=ad, mu={mu!r}, sigma={sigma!r}, **{opts!r})",
        f=f,
        a=a,
        eps=eps,
        fd=f_dot,
        ad=a_dot,
    )
    for name, g, w in zip(("z", "kl"), got, want):
        assert_close(g, w, tol("gradient", "float64"), what=f"tangent of {name}", note=note)


@pytest.mark.parametrize("kind", ["linear", "conv2d"])
@_FEW
@given(data=st.data())
def test_layer_forward_mode(harness, kind, data):
    """Forward mode of a training call along the input: ``(z, layer.kl)`` against the reference."""
    case = data.draw(st.sampled_from(CASES))
    w, x = data.draw(layer_problems(kind))
    h, _ = pre_activations(w, x)
    opts = dict(case.options)
    # Keep the pre-activations clear of ReLU's kink and the log-normal floor (as test_layer_gradients).
    assume(case.options["activation"] == "softplus" or np.abs(h).min() > 5e-2)
    if case.prior == "log-normal":
        f = reference.act(case.options["activation"], h)
        assume(np.all(np.abs(np.log(np.maximum(f, 1e-300) / 1e-4)) > 5e-2))
    noise, x_dot = data.draw(normals(h.shape)), data.draw(normals(x.shape))
    mu, sigma = data.draw(prior_mu), data.draw(prior_sigma)
    record(harness.name, f"layer-jvp/{kind}/{case.name}")

    def along(t, i):
        return reference_layer(w, x + t * x_dot, noise=noise, training=True, mu=mu, sigma=sigma, **opts)[i]

    want = [stencil(lambda t, i=i: along(t, i), H / 4) for i in (0, 1)]
    got = _transforms.layer_jvp(harness, w, x, noise=noise, x_dot=x_dot, mu=mu, sigma=sigma, **opts)
    note = repro(
        harness.name,
        f"_transforms.layer_jvp(h, w, x, noise=noise, x_dot=xd, mu={mu!r}, sigma={sigma!r}, **{opts!r})",
        w=w,
        x=x,
        noise=noise,
        xd=x_dot,
    )
    for name, g, wv in zip(("z", "kl"), got, want):
        assert_close(g, wv, tol("layer-gradient", "float64"), what=f"tangent of {name}", note=note)


@_FEW
@given(data=st.data())
def test_vmap_matches_reference(harness, data):
    """The functional op and a layer's training call, vectorised over a leading axis, in float64."""
    case = data.draw(st.sampled_from(CASES))
    opts = _options(case)
    f, a, eps, mu, sigma = _functional_problem(data)
    stack = [np.stack([v, v[::-1] * 0.5 + 0.01]) for v in (f, a, eps)]  # two different slices
    record(harness.name, f"vmap/{case.name}")
    got = _transforms.info_dropout_vmap(harness, *stack[:2], noise=stack[2], mu=mu, sigma=sigma, **opts)
    want = _reference(opts, stack[2], mu, sigma)(*stack[:2])
    for name, g, wv in zip(("z", "kl"), got, want):
        assert_close(g, wv, tol("elementwise", "float64"), what=f"vmapped {name}")

    w, x = data.draw(layer_problems("linear"))
    xs = np.stack([x, -x])
    noises = np.stack([data.draw(normals(pre_activations(w, x)[0].shape)) for _ in range(2)])
    lopts = dict(case.options)
    z, kl = _transforms.layer_vmap(harness, w, xs, noises=noises, mu=mu, sigma=sigma, **lopts)
    for i in range(2):
        zi, kli = reference_layer(w, xs[i], noise=noises[i], training=True, mu=mu, sigma=sigma, **lopts)
        assert_close(z[i], zi, tol("elementwise", "float64"), what="vmapped layer z")
        assert_close(kl[i], kli, tol("reduction", "float64"), what="vmapped layer kl")


@_FEW
@given(data=st.data())
def test_gradient_by_function_transforms(harness, data):
    """``d/d(f, alpha_logits)`` of ``sum(z * cz) + sum(kl * ckl)`` by the framework's function transforms."""
    case = data.draw(st.sampled_from(CASES))
    opts = _options(case)
    f, a, eps, mu, sigma = _functional_problem(data)
    cz, ckl = data.draw(normals(f.shape)), data.draw(normals(f.shape))
    record(harness.name, f"transform-grad/{case.name}")
    ref = _reference(opts, eps, mu, sigma)

    def loss(f_, a_):
        z, kl = ref(f_, a_)
        return z * cz + kl * ckl  # elementwise: unit i depends on f_i and a_i only

    want = {"f": stencil(lambda t: loss(f + t, a), H * f), "alpha_logits": stencil(lambda t: loss(f, a + t))}
    got = _transforms.info_dropout_transform_grad(
        harness, f, a, noise=eps, z_cotangent=cz, kl_cotangent=ckl, mu=mu, sigma=sigma, **opts
    )
    assert set(got) == set(want)
    for name, value in want.items():
        assert_close(got[name], value, tol("gradient", "float64"), what=f"d/d{name}")
