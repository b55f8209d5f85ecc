"""Check the internal links of the built HTML documentation.

Every ``href`` and ``src`` of every page of the build that points inside the
build (a relative URL, not ``http(s)://``, ``mailto:`` ...) must name a file
that exists, and its ``#fragment``, if any, an ``id`` (or ``name``) on that page.
Sphinx's own checks (``nitpicky``) catch unresolved cross-references in reST;
this catches what they cannot see: raw links written as URLs (``<page.html>`_``,
``.. raw:: html``), links in the sphinx-gallery output and in templates, and
anchors that moved.

Run as ``python docs/check_links.py docs/_build/html`` (``docs/build.sh`` does
after each build); exits with status 1 and one line per broken link.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["broken_links", "main"]

# Generated pages whose links are Sphinx's or a theme's own business.
_SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
# Known broken links, each with its cause; remove an entry once fixed (a stale
# entry is reported too).
KNOWN_BROKEN: set[str] = set()


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            value = attrs.get(key)
            if value and not (tag == "link" and attrs.get("rel") == "canonical"):
                self.links.append(value)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(root: str | Path) -> list[str]:
    """Return ``"page: link (reason)"`` for every broken internal link.

    Parameters
    ----------
    root : str or path-like
        Folder of the HTML build (``docs/_build/html``).

    Returns
    -------
    list of str
        One entry per broken link, sorted; empty when all links resolve.
    """
    root = Path(root).resolve()
    pages: dict[Path, _Page] = {}

    def page(path: Path) -> _Page:
        if path not in pages:
            pages[path] = _parse(path)
        return pages[path]

    broken = []
    for html in sorted(root.rglob("*.html")):
        if html.name in _SKIP_PAGES or "_static" in html.parts:
            continue
        for link in page(html).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("javascript:"):
                continue  # external: Sphinx's linkcheck builder checks those
            target = (
                html if not parts.path else (html.parent / unquote(parts.path))
            ).resolve()
            where = f"{html.relative_to(root)}: {link}"
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(root) or not target.exists():
                broken.append(f"{where} (no file {target.name})")
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in page(target).ids:
                    broken.append(f"{where} (no anchor #{parts.fragment})")
    return sorted(set(broken))


def main(argv: list[str] | None = None) -> int:
    """Print the broken links of a build; return 1 if there are any.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments: the build folder (default
        ``docs/_build/html``).

    Returns
    -------
    int
        Exit status: 0 when every internal link resolves, 1 otherwise.
    """
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else "docs/_build/html")
    if not (root / "index.html").exists():
        print(f"check_links: no HTML build in {root}", file=sys.stderr)
        return 1
    broken = broken_links(root)
    known = {line for line in broken if line.split(" (")[0] in KNOWN_BROKEN}
    stale = KNOWN_BROKEN - {line.split(" (")[0] for line in known}
    for line in sorted(set(broken) - known):
        print(f"broken link: {line}", file=sys.stderr)
    for line in sorted(stale):
        print(f"fixed, remove from KNOWN_BROKEN: {line}", file=sys.stderr)
    n_pages = sum(1 for _ in root.rglob("*.html"))
    print(
        f"check_links: {n_pages} pages, {len(broken) - len(known)} broken internal "
        f"link(s), {len(known)} known"
    )
    return 1 if len(broken) > len(known) or stale else 0


if __name__ == "__main__":
    sys.exit(main())
