"""MkDocs hooks of the idrop site: everything generated at build time, with no network.

- **API reference**: one page per backend (every ``idrop/backends/<name>/`` package, so a new
  backend such as ``keras`` appears without an edit here) and one for ``idrop.core``, with one
  ``::: module.name`` block per name of the module's ``__all__``, read statically with
  :mod:`ast` (the build imports no framework; mkdocstrings reads the sources with griffe).
  ``tests/docs/test_api_reference.py`` checks these lists against each importable backend's runtime
  ``__all__``.
- **Tutorials**: ``docs/tutorials/*.py`` are jupytext percent-format notebooks; each becomes a
  page (markdown cells as text, code cells as code) and the ``.py`` stays downloadable. They
  are executed by ``tests/docs/test_tutorials.py``, not here.
- **Tables from the code**: ``<!-- idrop:tolerances -->`` (the conformance tolerance table of
  ``idrop/conformance/_tolerances.py``) and ``<!-- idrop:versions -->`` (the supported range of
  each framework from ``pyproject.toml`` beside the version CI tests from
  ``requirements/ci.txt``), so the pages cannot drift from the code.
- **Docstrings** written for Sphinx: their roles (``:func:``) are dropped, the code kept.
- **Maths without JavaScript**: the TeX that ``pymdownx.arithmatex`` marks (``$...$``,
  ``$$...$$``) and the docstrings' ``.. math::`` blocks become MathML at build time
  (``latex2mathml``), which browsers render natively: no MathJax, no CDN.

Adding to the site: a page is a ``.md`` file in ``docs/`` plus its ``nav`` entry in
``mkdocs.yml``; a tutorial is a percent-format ``docs/tutorials/NAME.py`` plus the nav entry
``tutorials/NAME.md`` (the test runs every tutorial it finds); a new public name needs only its
docstring and its place in the module's ``__all__``. The site is built with Python >= 3.11 (``tomllib``).
"""

from __future__ import annotations

import ast
import html
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BACKENDS_DIR = ROOT / "idrop" / "backends"
TUTORIALS = "tutorials"
API = "api"

#: The order of the framework backends on the site; any other backend package follows.
_PREFERRED = ("torch", "tensorflow", "keras", "jax")
_TITLES = {"torch": "PyTorch", "tensorflow": "TensorFlow", "keras": "Keras 3", "jax": "JAX / Flax NNX"}


# ---------------------------------------------------------------- the API reference


def static_all(init: Path) -> list[str]:
    """The module's ``__all__``, read without importing it (a literal list or tuple of strings)."""
    tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            try:
                names = ast.literal_eval(node.value)
            except ValueError as err:
                raise ValueError(f"{init}: __all__ must be a literal list of names for the API reference") from err
            return list(names)
    raise ValueError(f"{init} has no __all__: the API reference is generated from it")


def backend_packages() -> list[str]:
    """Every backend package under ``idrop/backends/``, in site order."""
    found = sorted(p.parent.name for p in BACKENDS_DIR.glob("*/__init__.py") if not p.parent.name.startswith("_"))
    return sorted(found, key=lambda n: (_PREFERRED.index(n) if n in _PREFERRED else len(_PREFERRED), n))


def api_modules() -> dict[str, tuple[str, list[str]]]:
    """``page stem -> (module, public names)`` for every page of the API reference."""
    pages = {"core": ("idrop.core", static_all(ROOT / "idrop" / "core" / "__init__.py"))}
    for name in backend_packages():
        pages[name] = (f"idrop.backends.{name}", static_all(BACKENDS_DIR / name / "__init__.py"))
    return pages


def api_page(stem: str, module: str, names: list[str]) -> str:
    title = "idrop.core (the NumPy spec)" if stem == "core" else f"{module} ({_TITLES.get(stem, stem)})"
    lines = [
        f"# {title}",
        "",
        f"::: {module}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "      show_root_toc_entry: false",
        "",
        f"Public names (`{module}.__all__`): " + ", ".join(f"[`{n}`][{module}.{n}]" for n in names) + ".",
        "",
    ]
    for name in names:
        lines += [f"::: {module}.{name}", ""]
    return "\n".join(lines)


def api_index(pages: dict[str, tuple[str, list[str]]]) -> str:
    rows = "\n".join(
        f"| [`{module}`]({stem}.md) | {len(names)} | " + ", ".join(f"`{n}`" for n in names) + " |"
        for stem, (module, names) in pages.items()
    )
    return (
        "# API reference\n\n"
        "Generated from the docstrings: one page per module, one entry per name of the module's "
        "`__all__`, so every public name is here (a test fails otherwise). The backends share "
        "names, options, defaults and errors; the framework-specific parts (modes, randomness, "
        "where the KL goes) are in [Getting started](../getting-started.md).\n\n"
        "| module | names | public names |\n|---|---:|---|\n" + rows + "\n"
    )


# ---------------------------------------------------------------- tutorials


def tutorial_markdown(source: str, filename: str) -> str:
    """A percent-format notebook as a page (jupytext's own reader, so the format is checked)."""
    import jupytext

    notebook = jupytext.reads(source, fmt="py:percent")
    out: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            out.append(cell.source)
        elif cell.source.strip():
            out.append(f"```python\n{cell.source}\n```")
    body = "\n\n".join(out)
    note = (
        f'\n\n!!! info "Run it yourself"\n    This page is the notebook [`{filename}`]({filename}) '
        "(jupytext percent format: `jupytext --to ipynb` makes a Jupyter notebook of it, or run it "
        "with `python`). CI executes it on every change (`tests/docs/test_tutorials.py`).\n"
    )
    # The note goes after the title (the first markdown line).
    head, _, rest = body.partition("\n")
    return head + note + "\n" + rest


# ---------------------------------------------------------------- tables from the code


def tolerance_table() -> str:
    spec = importlib.util.spec_from_file_location("_idrop_tol", ROOT / "idrop" / "conformance" / "_tolerances.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    rows = ["| kind | dtype | rtol | atol | reason for an override |", "|---|---|---:|---:|---|"]
    for kind, per_dtype in module.TOLERANCES.items():
        for dtype, tol in per_dtype.items():
            rows.append(f"| {kind} | {dtype} | {tol.rtol:g} | {tol.atol:g} | {tol.reason or '-'} |")
    return "\n".join(rows)


def _requirement(spec: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert match is not None, spec
    return match.group(1).lower().replace("_", "-"), match.group(2).strip()


def versions_table() -> str:
    # Python >= 3.11, which builds the site; imported here so that the tests can load this module on 3.10.
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    ranges: list[tuple[str, str, str]] = [("(core)", *_requirement(d)) for d in project["dependencies"]]
    ranges.append(("(core)", "python", project["requires-python"]))
    for extra, deps in project["optional-dependencies"].items():
        ranges += [(extra, *_requirement(d)) for d in deps if not d.startswith("idrop[")]
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements" / "ci.txt").read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    pins["tensorflow"] = pins.get("tensorflow-cpu", "")
    rows = ["| extra | package | supported (`pyproject.toml`) | tested in CI (`requirements/ci.txt`) |"]
    rows.append("|---|---|---|---|")
    for extra, name, spec in ranges:
        tested = pins.get(name, "")
        if name == "python":
            tested = f"{sys.version_info.major}.{sys.version_info.minor}"  # CI builds the site
        rows.append(f"| {extra} | {name} | `{spec}` | {tested or '-'} |")
    return "\n".join(rows)


_PLACEHOLDERS = {"<!-- idrop:tolerances -->": tolerance_table, "<!-- idrop:versions -->": versions_table}


# ---------------------------------------------------------------- maths


def tex_to_mathml(tex: str, display: bool) -> str:
    from latex2mathml.converter import convert

    return convert(tex.strip(), display="block" if display else "inline")


_ARITHMATEX = re.compile(
    r'<(?P<tag>div|span) class="arithmatex">\s*(?:\\\[(?P<block>.*?)\\\]|\\\((?P<inline>.*?)\\\))\s*</(?P=tag)>',
    re.DOTALL,
)
_RST_MATH = re.compile(r"<p>\.\. math::\s*(?P<tex>.*?)</p>", re.DOTALL)


def render_maths(content: str) -> str:
    def arithmatex(match: re.Match[str]) -> str:
        block = match.group("block")
        tex = html.unescape(block if block is not None else match.group("inline"))
        mathml = tex_to_mathml(tex, display=block is not None)
        return f'<div class="idrop-math">{mathml}</div>' if block is not None else mathml

    def rst(match: re.Match[str]) -> str:
        tex = html.unescape(re.sub(r"<[^>]+>", "", match.group("tex")))
        return f'<div class="idrop-math">{tex_to_mathml(tex, display=True)}</div>'

    return _RST_MATH.sub(rst, _ARITHMATEX.sub(arithmatex, content))


# ---------------------------------------------------------------- MkDocs events


def on_config(config: Any) -> Any:
    """Put one nav entry per API page under "API reference" (the nav lists ``api/index.md`` only)."""
    pages = api_modules()
    entries: list[Any] = [{"Overview": f"{API}/index.md"}]
    entries += [{pages[stem][0]: f"{API}/{stem}.md"} for stem in pages]
    for item in config["nav"] or []:
        if isinstance(item, dict) and "API reference" in item:
            item["API reference"] = entries
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    pages = api_modules()
    files.append(File.generated(config, f"{API}/index.md", content=api_index(pages)))
    for stem, (module, names) in pages.items():
        files.append(File.generated(config, f"{API}/{stem}.md", content=api_page(stem, module, names)))
    for file in list(files):
        if file.src_uri.startswith(f"{TUTORIALS}/") and file.src_uri.endswith(".py"):
            source = Path(file.abs_src_path).read_text(encoding="utf-8")
            page = file.src_uri[: -len(".py")] + ".md"
            files.append(File.generated(config, page, content=tutorial_markdown(source, Path(file.src_uri).name)))
    # The heat maps of the Cluttered MNIST runs, shown on the reproduction page.
    for png in sorted((ROOT / "results").glob("*/*/heatmaps.png")):
        uri = png.relative_to(ROOT).as_posix()
        files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for marker, make in _PLACEHOLDERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


#: Sphinx roles in docstrings (``:func:`kl_loss```): the code stays, the role goes.
_RST_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|obj|exc):(<code>)~?")


def on_page_content(html_text: str, page: Any, config: Any, files: Any) -> str:
    return render_maths(_RST_ROLE.sub(r"\1", html_text))
