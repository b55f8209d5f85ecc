"""Docstrings of the public API: numpydoc-valid, and their examples run.

Which objects
-------------
The public API is enumerated at run time, so new estimators are covered as soon
as they are exported: every module ``sklearn_ood.<name>`` (and sub-package) whose
dotted name has no part starting with ``_``, plus ``sklearn_ood`` itself; in each,
the classes and functions listed in ``__all__``; in each class, the public methods
and properties that sklearn-ood defines (those inherited from scikit-learn or
torch are theirs to document).

Which numpydoc checks
---------------------
All of numpydoc's built-in checks (``numpydoc.validate.ERROR_MSGS``) are enforced
except:

- ``GL01``, ``GL02``: where the summary starts and blank lines around it;
  ``RT02``: the first line of a Returns entry may name the value
  (``scores : ndarray``). scikit-learn's ``test_docstrings.py`` ignores these three.
- ``SA01`` (See Also) and ``ES01`` (extended summary): welcome, not required.
- For methods and properties also ``EX01`` (Examples); scikit-learn requires
  ``EX01``, ``SA01`` and ``ES01`` only for the class docstring too.
- For properties also ``PR02`` and ``GL08`` (scikit-learn's rule: their
  signature cannot be parsed, and attributes are documented in the class).

So every public class and function needs a summary line in the imperative mood
(``SS05``) ending with a period, every parameter documented with a type
(``PR01``-``PR10``), a Returns section (``RT01``) and an Examples section
(``EX01``); methods need Parameters and Returns as well.

Examples run
------------
``test_doctests`` runs :mod:`doctest` (ELLIPSIS and NORMALIZE_WHITESPACE) on every
module of the package, private ones included, with matplotlib's Agg backend.
Examples import from public paths only (``from sklearn_ood import X``,
``sklearn_ood.base``, ...): ``test_examples_import_public_paths`` fails on an
import from a private module (``from sklearn_ood._mahalanobis import ...``) in a
docstring, a gallery example or a code block of the documentation.

Sources readable by Sphinx
--------------------------
``test_source_readable_by_sphinx``: the documentation's "[source]" links need
Sphinx's reader of Python source (``sphinx.pycode``) to parse every module; a
module it cannot parse silently loses its source page, and the link breaks.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil
import re
import sys
from pathlib import Path

import numpydoc.validate as numpydoc_validate  # a test dependency, not optional
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import sklearn_ood

IGNORED = {"GL01", "GL02", "RT02", "SA01", "ES01"}
IGNORED_FOR_METHODS = IGNORED | {"EX01"}
IGNORED_FOR_PROPERTIES = IGNORED_FOR_METHODS | {"PR02", "GL08"}
# Methods that torch.nn.Module subclasses override as torch's own hooks.
TORCH_HOOKS = {"extra_repr"}

# Known docstring problems, object -> the error codes still expected. An entry is
# only a stop-gap until the module's owner fixes the docstring (the fixes are
# listed in the report of issue 8); ``test_known_failures_still_fail`` fails as
# soon as an entry is fixed or gone, so that the list only ever shrinks.
KNOWN_FAILURES: dict[str, set[str]] = {}

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# ``from sklearn_ood._x import``, ``from sklearn_ood.nn._x import``,
# ``import sklearn_ood._x``: an import from a private module.
PRIVATE_IMPORT = re.compile(
    r"^\s*(?:>>>\s*)?(?:from|import)\s+sklearn_ood(?:\.[A-Za-z]\w*)*\._", re.M
)


def _all_modules() -> list[str]:
    names = ["sklearn_ood"]
    for info in pkgutil.walk_packages(sklearn_ood.__path__, "sklearn_ood."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def _public_modules() -> list[str]:
    return [
        name
        for name in _all_modules()
        if not any(part.startswith("_") for part in name.split("."))
    ]


def _public_exports() -> list[tuple[str, object]]:
    """``(dotted name, object)`` for every class and function in an ``__all__``."""
    exports = []
    for mod_name in _public_modules():
        module = importlib.import_module(mod_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                # not constants, version strings or scorer instances
                exports.append((f"{mod_name}.{name}", obj))
    return exports


def _public_objects() -> dict[str, object]:
    """Dotted name -> class or function, each object once (first export wins)."""
    found: dict[str, object] = {}
    seen: set[int] = set()
    for qualname, obj in _public_exports():
        if id(obj) not in seen:
            seen.add(id(obj))
            found[qualname] = obj
    return found


def _defined_here(func) -> bool:
    module = inspect.getmodule(func)
    return module is not None and module.__name__.startswith("sklearn_ood")


def _members() -> list[tuple[str, str]]:
    """``(dotted name, kind)`` for every object and public member to validate."""
    members = []
    seen: set[int] = set()
    for qualname, obj in _public_objects().items():
        members.append((qualname, "object"))
        if not inspect.isclass(obj):
            continue
        for attr in sorted(dir(obj)):
            if attr.startswith("_") or attr in TORCH_HOOKS:
                continue
            raw = inspect.getattr_static(obj, attr)
            if isinstance(raw, property):
                func, kind = raw.fget, "property"
            elif isinstance(raw, (classmethod, staticmethod)):
                func, kind = raw.__func__, "method"
            elif inspect.isfunction(raw):
                func, kind = raw, "method"
            else:
                continue
            if func is None or not _defined_here(func) or id(func) in seen:
                continue
            seen.add(id(func))
            members.append((f"{qualname}.{attr}", kind))
    return members


MEMBERS = _members()


def _errors(qualname: str, kind: str) -> list[tuple[str, str]]:
    ignored = {
        "object": IGNORED,
        "method": IGNORED_FOR_METHODS,
        "property": IGNORED_FOR_PROPERTIES,
    }[kind]
    result = numpydoc_validate.validate(qualname)
    return [(code, msg) for code, msg in result["errors"] if code not in ignored]


def test_public_modules_define_all():
    for mod_name in _public_modules():
        module = importlib.import_module(mod_name)
        names = getattr(module, "__all__", None)
        assert names is not None, f"{mod_name} has no __all__"
        missing = [n for n in names if not hasattr(module, n)]
        assert not missing, f"{mod_name}.__all__ names missing objects: {missing}"


def test_the_enumeration_finds_the_known_api():
    # An independent hand-written sample: if the enumeration broke (and found
    # nothing), the parametrised tests below would pass vacuously.
    names = {q for q, _ in MEMBERS}
    for expected in (
        "sklearn_ood.MahalanobisDetector",
        "sklearn_ood.MahalanobisDetector.mahalanobis",
        "sklearn_ood.KNNDetector.kneighbors",
        "sklearn_ood.TorchFeatureExtractor.transform",
        "sklearn_ood.metrics.auroc",
        "sklearn_ood.datasets.load_fashion_mnist",
        "sklearn_ood.backbones.load_backbone",
        "sklearn_ood.stats.dirichlet_mle",
        "sklearn_ood.cli.main",
    ):
        assert expected in names
    assert "sklearn_ood.MahalanobisDetector.get_params" not in names  # sklearn's


@pytest.mark.parametrize("qualname, kind", MEMBERS, ids=[q for q, _ in MEMBERS])
def test_docstring(qualname, kind):
    errors = _errors(qualname, kind)
    expected = KNOWN_FAILURES.get(qualname, set())
    errors = [(c, m) for c, m in errors if c not in expected]
    assert not errors, f"{qualname}:\n" + "\n".join(f"  {c}: {m}" for c, m in errors)


def test_known_failures_still_fail():
    kinds = dict(MEMBERS)
    stale = []
    for qualname, expected in sorted(KNOWN_FAILURES.items()):
        if qualname not in kinds:
            stale.append(f"{qualname} is no longer public")
            continue
        fixed = expected - {c for c, _ in _errors(qualname, kinds[qualname])}
        if fixed:
            stale.append(f"{qualname}: {sorted(fixed)} fixed")
    assert not stale, "remove from KNOWN_FAILURES: " + "; ".join(stale)


def test_validation_catches_a_bad_docstring():
    # The checks are live: numpydoc reports what this test module relies on.
    result = numpydoc_validate.validate(f"{__name__}._bad_example")
    codes = {code for code, _ in result["errors"]}
    assert {"PR01", "RT01", "EX01", "SS03"} <= codes


def _bad_example(x):
    """Return x without a period"""
    return x


@pytest.mark.parametrize("mod_name", _all_modules())
def test_doctests(mod_name):
    module = importlib.import_module(mod_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    report: list[str] = []
    try:
        for test in finder.find(module, mod_name):
            # Only the module's own objects (not what it imports).
            if test.examples:
                runner.run(test, out=report.append)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)


def test_api_reference_lists_every_public_object():
    """docs/api.rst has an autosummary entry for every public class and function."""
    text = (DOCS / "api.rst").read_text()
    listed: set[str] = set()
    current = None
    for line in text.splitlines():
        mod = re.match(r"\.\. (?:currentmodule|module):: (\S+)", line)
        if mod:
            current = mod.group(1)
            continue
        entry = re.match(r"\s{3,}(~?[\w.]+)\s*$", line)
        if entry and current is not None:
            listed.add(f"{current}.{entry.group(1).lstrip('~')}")
    names: dict[int, list[str]] = {}
    for qualname, obj in _public_exports():
        names.setdefault(id(obj), []).append(qualname)
    missing = [n[0] for n in names.values() if not listed.intersection(n)]
    assert not missing, f"add to docs/api.rst: {missing}"


# Modules (owned elsewhere) whose doctests still import from private paths; a
# stop-gap like KNOWN_FAILURES: ``test_known_private_imports_still_there``
# fails once a module is fixed, so that the list only shrinks.
KNOWN_PRIVATE_IMPORTS = {
    "sklearn_ood.nn._efficientnet",
}


def _imports_public_name(source: str) -> bool:
    """Whether a private-path import in ``source`` imports a public object.

    Internal helpers (thread budgets, progress bars) have no public path, so
    their own examples import them from where they live; a public object must
    be imported from its public path.
    """
    public = {id(obj) for _, obj in _public_exports()}
    for match in re.finditer(
        r"from\s+(sklearn_ood[\w.]*)\s+import\s+\(?([\w\s,]+)", source
    ):
        module = importlib.import_module(match.group(1))
        for name in re.split(r"[\s,]+", match.group(2).strip()):
            if name and id(getattr(module, name, None)) in public:
                return True
    return bool(re.search(r"^\s*(?:>>>\s*)?import\s+sklearn_ood[\w.]*\._", source))


def _private_imports_in_docstrings(module, mod_name) -> list[str]:
    found = []
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, mod_name):
        for example in test.examples:
            if PRIVATE_IMPORT.search(example.source) and _imports_public_name(
                example.source
            ):
                found.append(f"{test.name}: {example.source.strip()}")
    return found


@pytest.mark.parametrize("mod_name", _all_modules())
def test_examples_import_public_paths(mod_name):
    if mod_name in KNOWN_PRIVATE_IMPORTS:
        return  # checked by test_known_private_imports_still_there
    module = importlib.import_module(mod_name)
    found = _private_imports_in_docstrings(module, mod_name)
    assert not found, "import from the public path instead:\n" + "\n".join(found)


def test_known_private_imports_still_there():
    modules = set(_all_modules())
    fixed = [
        name
        for name in sorted(KNOWN_PRIVATE_IMPORTS)
        if name not in modules
        or not _private_imports_in_docstrings(importlib.import_module(name), name)
    ]
    assert not fixed, f"remove from KNOWN_PRIVATE_IMPORTS: {fixed}"


def test_gallery_and_pages_import_public_paths():
    files = sorted((ROOT / "examples").glob("*.py")) + sorted(DOCS.rglob("*.rst"))
    files += sorted((DOCS / "user_guide" / "code").glob("*.py"))
    assert len(files) > 10
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for path in files
        for match in PRIVATE_IMPORT.finditer(path.read_text())
    ]
    assert not found, "import from the public path instead:\n" + "\n".join(found)


def test_private_import_check_is_live():
    bad = type(sys)("bad_doc_module")
    bad.__doc__ = """Example.

    >>> from sklearn_ood._mahalanobis import MahalanobisDetector
    >>> from sklearn_ood.nn._device import resolve_device
    >>> from sklearn_ood.base import BaseDetector
    """
    found = _private_imports_in_docstrings(bad, "bad_doc_module")
    assert [line.split(": ", 1)[1] for line in found] == [
        "from sklearn_ood._mahalanobis import MahalanobisDetector",
        "from sklearn_ood.nn._device import resolve_device",
    ]


@pytest.mark.parametrize("mod_name", _all_modules())
def test_source_readable_by_sphinx(mod_name):
    from sphinx.pycode import ModuleAnalyzer  # Sphinx comes with numpydoc

    ModuleAnalyzer.for_module(mod_name).find_tags()
