"""Backend-neutral experiment protocol: result folders, resume, summaries, progress.

A reproduction script builds a :class:`ResultDir`, writes its config, and hands
:func:`run_grid` a ``make_run(key)`` factory from its backend; the loop logs
metrics, checkpoints through the run's own ``save_state`` / ``load_state``, resumes
after a kill, and :func:`write_summary` makes the table and the plot::

    results = ResultDir.create(out, "mnist_fc", "torch")
    results.write_config(config)
    keys = [RunKey(m, w, s) for m in methods for w in widths for s in seeds]
    run_grid(results, keys, make_run, epochs=config["epochs"])
    write_summary(results)

The first write to a result folder takes its lock (``.lock``, an ``flock``) for the rest
of the process, so a second process cannot interleave its runs. A user-fixable problem (a
locked, damaged or unwritable result folder, a run whose loss became NaN) raises an
:class:`ExperimentError` whose message names it and the fix.

Nothing here imports a deep-learning framework; matplotlib and tqdm are imported
only when a plot or a progress bar is made.
"""

from ._errors import ExperimentError as ExperimentError
from ._errors import ResultFolderError as ResultFolderError
from ._errors import RunDiverged as RunDiverged
from ._io import append_jsonl as append_jsonl
from ._io import atomic_write_json as atomic_write_json
from ._io import atomic_write_text as atomic_write_text
from ._io import read_jsonl as read_jsonl
from ._layout import ResultDir as ResultDir
from ._progress import EpochProgress as EpochProgress
from ._progress import format_metrics as format_metrics
from ._run_state import RunKey as RunKey
from ._run_state import RunRegistry as RunRegistry
from ._runner import Run as Run
from ._runner import read_metrics as read_metrics
from ._runner import run_grid as run_grid
from ._runner import save_checkpoint as save_checkpoint
from ._summary import markdown_table as markdown_table
from ._summary import plot_error_vs_width as plot_error_vs_width
from ._summary import summarize as summarize
from ._summary import summary_csv as summary_csv
from ._summary import write_summary as write_summary

__all__ = [
    "EpochProgress",
    "ExperimentError",
    "ResultDir",
    "ResultFolderError",
    "Run",
    "RunDiverged",
    "RunKey",
    "RunRegistry",
    "append_jsonl",
    "atomic_write_json",
    "atomic_write_text",
    "format_metrics",
    "markdown_table",
    "plot_error_vs_width",
    "read_jsonl",
    "read_metrics",
    "run_grid",
    "save_checkpoint",
    "summarize",
    "summary_csv",
    "write_summary",
]
