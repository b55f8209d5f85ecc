"""The link checks of the documentation build, on small hand-made cases.

The build itself (``bash docs/build.sh``) is too slow for the test suite; these
tests check that its two link checks catch what they are meant to catch:
``docs/check_links.py`` (internal links of the HTML) and the handler of
``docs/conf.py`` for references to other projects when their intersphinx
inventory is not loaded.
"""

import importlib.util
import logging
import os
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_links = _load("check_links", DOCS / "check_links.py")


def _page(path, body):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><body>{body}</body></html>")


def test_check_links_finds_missing_files_and_anchors(tmp_path, monkeypatch):
    monkeypatch.setattr(check_links, "KNOWN_BROKEN", set())
    _page(
        tmp_path / "index.html",
        '<a href="api.html#sklearn_ood.KNNDetector">ok</a>'
        '<a href="api.html#sklearn_ood.Missing">bad anchor</a>'
        '<a href="user_guide/gone.html">bad file</a>'
        '<a href="https://numpy.org/doc/stable/">external</a>'
        '<a href="#top">own anchor</a><span id="top"></span>'
        '<img src="_images/plot.png">',
    )
    _page(tmp_path / "api.html", '<dt id="sklearn_ood.KNNDetector">KNNDetector</dt>')
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "plot.png").write_bytes(b"png")
    _page(tmp_path / "user_guide" / "page.html", '<a href="../api.html">up</a>')
    assert check_links.broken_links(tmp_path) == [
        "index.html: api.html#sklearn_ood.Missing (no anchor #sklearn_ood.Missing)",
        "index.html: user_guide/gone.html (no file gone.html)",
    ]
    assert check_links.main([str(tmp_path)]) == 1
    # A known broken link is tolerated; once fixed, its entry is reported.
    monkeypatch.setattr(
        check_links, "KNOWN_BROKEN", {"index.html: user_guide/gone.html"}
    )
    (tmp_path / "index.html").write_text('<a href="user_guide/gone.html">x</a>')
    assert check_links.main([str(tmp_path)]) == 0
    (tmp_path / "index.html").write_text('<a href="api.html">fixed</a>')
    assert check_links.main([str(tmp_path)]) == 1  # stale entry
    monkeypatch.setattr(check_links, "KNOWN_BROKEN", set())
    assert check_links.main([str(tmp_path)]) == 0


@pytest.fixture(scope="module")
def conf():
    old = os.environ.get("SKLEARN_OOD_DOCS_INTERSPHINX")
    os.environ["SKLEARN_OOD_DOCS_INTERSPHINX"] = "offline"  # no network probe
    path = list(sys.path)
    try:
        yield _load("sklearn_ood_docs_conf", DOCS / "conf.py")
    finally:
        sys.path[:] = path
        if old is None:
            del os.environ["SKLEARN_OOD_DOCS_INTERSPHINX"]
        else:
            os.environ["SKLEARN_OOD_DOCS_INTERSPHINX"] = old


class _Node(dict):
    """Stands for a pending_xref node (its attributes read with ``get``)."""

    source, line = "page.rst", 1


@pytest.mark.parametrize(
    "domain, target, resolved",
    [
        ("py", "numpy.ndarray", True),
        ("py", "sklearn.ensemble.IsolationForest.fit_predict", True),
        ("py", "torch.nn.Module", True),
        ("py", "python:tuple", True),  # numpydoc's aliases
        ("py", "int", True),
        ("std", "python:iterable", True),
        # Left to Sphinx (nitpicky): internal references, resolved or not.
        ("py", "sklearn_ood.NoSuchDetector", False),
        ("py", "WideBasicBlock", False),
        ("std", "migration", False),
    ],
)
def test_external_references_offline(conf, domain, target, resolved):
    assert conf.intersphinx_mapping == {}
    node, contnode = _Node(refdomain=domain, reftarget=target), object()
    result = conf._external_reference(None, None, node, contnode)
    assert (result is contnode) == resolved


def test_misspelt_external_reference_is_a_warning(conf, caplog):
    node = _Node(refdomain="py", reftarget="numpy.ndaray")
    with caplog.at_level(logging.WARNING):
        conf._external_reference(None, None, node, object())
    assert "numpy.ndaray" in caplog.text
    assert "does not define" in caplog.text


def test_type_aliases_show_plain_names(conf):
    # numpydoc renders an alias as its title: never "python:tuple".
    aliases = conf.numpydoc_xref_aliases
    assert aliases["tuple"] == ":class:`tuple <python:tuple>`"
    assert aliases["None"] == ":data:`None <python:None>`"
    assert aliases["ndarray"] == "numpy.ndarray"
    assert aliases["MahalanobisDetector"] == "sklearn_ood.MahalanobisDetector"
