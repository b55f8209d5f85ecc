"""Sphinx configuration of the sklearn-ood documentation.

Build with ``bash docs/build.sh``: it installs what the build needs (the
``docs`` extra) into the project's ``.venv``, runs ``sphinx-build -W
--keep-going -n`` (a warning fails the build) and then checks every internal
link of the HTML (``docs/check_links.py``).

What the build checks
---------------------
- ``nitpicky``: every cross-reference to sklearn-ood (``:class:``, ``:func:``,
  ``:doc:``, ``:ref:``, the types of numpydoc's Parameters sections) must
  resolve; a broken internal link is a warning, so an error.
- References to other projects (numpy, scipy, scikit-learn, torch,
  matplotlib, Python) link through intersphinx when their inventories can be
  loaded. When they cannot (offline), :func:`_external_reference` checks that
  the object exists in the installed package, and the name is shown as code;
  a misspelt name is an error either way.
- ``docs/check_links.py`` checks the ``href`` of every built page (links
  written as URLs, the gallery's output, anchors).

Intersphinx, online and offline
-------------------------------
``SKLEARN_OOD_DOCS_INTERSPHINX`` says where the inventories come from:

- ``auto`` (default): from each project's site when it answers (a connection
  with a 3 s time-out is tried first, so an offline build does not wait on
  network time-outs), else not at all;
- ``online``: always from the sites; an unreachable one fails the build;
- ``offline``: never.

Sphinx keeps the inventories it fetched for five days in
``docs/_build/doctrees`` (``intersphinx_cache_limit``), so a build that follows
an online one links offline too.

Examples
--------
sphinx-gallery renders and runs every script of ``examples/`` (about five
minutes on two CPU cores). ``SKLEARN_OOD_DOCS_EXAMPLES=none`` runs none (the
pages show the code without its output), for quick iterations on the text.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import os
import re
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # build from a checkout without installing

from sphinx.util import logging as sphinx_logging  # noqa: E402

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
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "gen_modules/backreferences", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"
# Every internal cross-reference must resolve (the link check of the build);
# references to other projects go through _external_reference below.
nitpicky = True
# Broken references in docstrings of modules owned elsewhere, listed so that
# every other reference is checked meanwhile. Each is to be fixed in its
# docstring (then removed here): a private or unexported name, or an object
# that docs/api.rst does not document.
nitpick_ignore = [
    ("py:func", "lee_logistic_regression"),  # _ensemble.py: private function
    ("py:mod", "sklearn_ood.conformal"),  # base.py: module not on main yet
    ("py:data", "FASHION_MNIST_CLASSES"),  # datasets.py: not in api.rst
    ("py:meth", "_module_on_device"),  # nn/_device.py: private method
    ("py:class", "WideBasicBlock"),  # nn/_architectures.py: not exported
    ("py:class", "DeviceWarning"),  # nn/_device.py: not in api.rst
]

# autosummary writes one page per public object into gen_modules/ (ignored by git).
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters section has the types
autodoc_default_options = {"member-order": "groupwise"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Parameter and attribute types go through numpydoc's cross-referencing, which
# also keeps names such as ``n_features_in_`` in "ndarray of shape
# (n_features_in_,)" from being read as reST hyperlink references. Only the
# words below are linked ("all" other words stay plain text). Each alias gives
# the title shown, so that a type reads "tuple" or "ndarray" whether or not
# the inventory of its project could be loaded (never "python:tuple").
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"
_PYTHON_TYPES = {
    "int": "class",
    "float": "class",
    "str": "class",
    "bool": "class",
    "dict": "class",
    "list": "class",
    "tuple": "class",
    "bytes": "class",
    "object": "class",
    "slice": "class",
    "None": "data",
    "True": "data",
    "False": "data",
    "callable": "func",
}
numpydoc_xref_aliases = {
    **{w: f":{role}:`{w} <python:{w}>`" for w, role in _PYTHON_TYPES.items()},
    "boolean": ":class:`bool <python:bool>`",
    "string": ":class:`str <python:str>`",
    # numpydoc's defaults for these point at glossary terms: plain words here.
    **{w: w for w in ("iterable", "sequence", "generator", "scalar", "array")},
    "array-like": "array-like",
    "array_like": "array-like",
    "ndarray": "numpy.ndarray",
    "np.ndarray": "numpy.ndarray",
    "dtype": "numpy.dtype",
    "RandomState": "numpy.random.RandomState",
    "np.random.RandomState": "numpy.random.RandomState",
    "Tensor": "torch.Tensor",
    "torch.Tensor": "torch.Tensor",
    "torch.nn.Module": "torch.nn.Module",
    "nn.Module": "torch.nn.Module",
    "torch.device": "torch.device",
    "torch.dtype": "torch.dtype",
    "torch.Generator": "torch.Generator",
    "estimator": "sklearn.base.BaseEstimator",
    "Pipeline": "sklearn.pipeline.Pipeline",
    "Bunch": "sklearn.utils.Bunch",
    "Axes": "matplotlib.axes.Axes",
    "Figure": "matplotlib.figure.Figure",
    "Line2D": "matplotlib.lines.Line2D",
    "BarContainer": "matplotlib.container.BarContainer",
    "PolyCollection": "matplotlib.collections.PolyCollection",
    "Rectangle": "matplotlib.patches.Rectangle",
    "DataFrame": "pandas.DataFrame",
    **{
        name: f"sklearn_ood.{name}"
        for name in sklearn_ood.__all__
        if inspect.isclass(getattr(sklearn_ood, name))
    },
}
# numpydoc's validation runs as a test (tests/test_docstrings.py), not here.

# -- intersphinx -----------------------------------------------------------
INTERSPHINX_SITES = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "sklearn": "https://scikit-learn.org/stable/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "matplotlib": "https://matplotlib.org/stable/",
    "joblib": "https://joblib.readthedocs.io/en/stable/",
}
#: Top-level packages whose objects the documentation may name (checked by
#: import when their inventory is not loaded).
EXTERNAL_PACKAGES = {
    "numpy",
    "scipy",
    "sklearn",
    "torch",
    "matplotlib",
    "joblib",
    "pandas",
    "dask",
    "distributed",
    "PIL",
    "timm",
    "torchvision",
    "tqdm",
    "threadpoolctl",
}
intersphinx_timeout = 10
intersphinx_cache_limit = 5  # days


def _reachable(url: str) -> bool:
    host = urlsplit(url).hostname
    try:
        with socket.create_connection((host, 443), timeout=3):
            return True
    except OSError:
        return False


def _intersphinx_mapping(mode: str) -> dict:
    if mode == "offline":
        return {}
    if mode == "online":
        names = list(INTERSPHINX_SITES)
    else:
        with ThreadPoolExecutor(len(INTERSPHINX_SITES)) as pool:
            up = dict(
                zip(INTERSPHINX_SITES, pool.map(_reachable, INTERSPHINX_SITES.values()))
            )
        names = [name for name, ok in up.items() if ok]
        if len(names) < len(up):
            missing = ", ".join(name for name, ok in up.items() if not ok)
            print(
                f"[sklearn-ood docs] intersphinx: no connection to the sites of "
                f"{missing}; their objects are shown as code, checked against the "
                "installed packages."
            )
    return {name: (INTERSPHINX_SITES[name], None) for name in names}


_intersphinx_mode = os.environ.get("SKLEARN_OOD_DOCS_INTERSPHINX", "auto").lower()
if _intersphinx_mode not in ("auto", "online", "offline"):
    raise ValueError(
        "SKLEARN_OOD_DOCS_INTERSPHINX must be 'auto', 'online' or 'offline'; got "
        f"{_intersphinx_mode!r}."
    )
intersphinx_mapping = _intersphinx_mapping(_intersphinx_mode)

_logger = sphinx_logging.getLogger("sklearn_ood.docs")


def _object_exists(dotted: str) -> bool:
    """Whether ``dotted`` names a module or an attribute of an installed one."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _external_reference(app, env, node, contnode):
    """Handle a reference to another project that intersphinx did not resolve.

    Without that project's inventory (offline), a reference such as
    ``numpy.ndarray`` or ``python:tuple`` is kept as code when the object
    exists in the installed package (or is a Python builtin), and is a warning
    (an error of the build) when it does not: a misspelt name. References to
    sklearn-ood are left to Sphinx, whose ``nitpicky`` mode reports them.
    """
    domain, target = node.get("refdomain"), node.get("reftarget", "")
    if domain == "std" and ":" in target:  # e.g. :term:`python:iterable`
        project_name = target.split(":", 1)[0]
        return contnode if project_name in INTERSPHINX_SITES else None
    if domain != "py":
        return None
    name = target.split(":", 1)[1] if target.startswith("python:") else target
    root = name.split(".", 1)[0]
    if root in EXTERNAL_PACKAGES or root in sys.stdlib_module_names:
        if _object_exists(name):
            return contnode
        _logger.warning(
            "reference to %s, which the installed %s does not define",
            name,
            root,
            location=node,
        )
        return contnode
    if "." not in name and hasattr(builtins, name):
        return contnode
    return None


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
    # After intersphinx (priority 500), which resolves what it can first.
    app.connect("missing-reference", _external_reference, 900)


# -- sphinx-gallery --------------------------------------------------------
_run = os.environ.get("SKLEARN_OOD_DOCS_EXAMPLES", "all").lower()
if _run not in ("all", "none"):
    raise ValueError(
        f"SKLEARN_OOD_DOCS_EXAMPLES must be 'all' or 'none'; got {_run!r}."
    )

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": re.escape(os.sep) + r"plot_\w+\.py$" if _run == "all" else "^$",
    "plot_gallery": "True",
    "doc_module": ("sklearn_ood",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"sklearn_ood": None},
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 5,
    # An example that raises fails the build (and says which).
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}

# -- HTML ------------------------------------------------------------------
# pydata-sphinx-theme, as scikit-learn: a wide article area (the API pages
# have long signatures and tables), a page table of contents on the right.
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-ood {release}"
html_static_path = ["_static"]
html_css_files = ["sklearn_ood.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "header_links_before_dropdown": 5,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "getting_started": []}
