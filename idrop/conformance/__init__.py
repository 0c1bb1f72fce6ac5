"""The conformance suite: every installed backend against the NumPy reference.

Run it on your own install::

    python -m idrop.conformance            # a table: backend, version, case, examples, result
    pytest --pyargs idrop.conformance      # the same tests through pytest

It feeds the same inputs, weights and injected noise to each backend and to
:mod:`idrop.core.reference` and compares with the per-dtype tolerances of
:mod:`idrop.conformance._tolerances`; sampling is checked per backend by
goodness-of-fit tests. Environment: ``IDROP_BACKENDS`` (which to run),
``IDROP_REQUIRE_BACKENDS`` (which must be present; CI sets all three; a name that
is not a backend stops every entry point at once), ``IDROP_HYPOTHESIS_PROFILE``
(``ci``, default, or ``thorough``).
"""

from ._backends import Backend as Backend

__all__ = ["Backend"]
