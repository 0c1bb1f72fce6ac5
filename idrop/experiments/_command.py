"""The command line that made a result folder, for its ``config.json``."""

from __future__ import annotations

import shlex
import sys

#: The arguments :func:`idrop.cli.main` was called with (``None``: take ``sys.argv``), so a run
#: started in-process (tests, notebooks) records its own command, not its host's.
ARGV: list[str] | None = None


def command_line(argv: list[str] | None = None) -> str:
    """``idrop <arguments>`` as typed, without ``--resume`` (and the hidden ``--stop-after-epochs``), so a
    resumed run keeps the same config.

    The program name is written ``idrop`` whichever way it was started (the ``idrop`` script or
    ``python -m idrop``): both parse the same arguments.
    """
    if argv is None:
        argv = ARGV if ARGV is not None else sys.argv[1:]
    args, out = list(argv), []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--resume" or a.startswith("--stop-after-epochs="):
            continue
        elif a == "--stop-after-epochs":  # a test-only flag that stops a run early; not a setting
            skip = True
        else:
            out.append(a)
    return shlex.join(["idrop", *out])
