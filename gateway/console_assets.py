"""The console's static files (``gateway/console/``), read once when the app is built.

Nothing is built at run time: the files are served as they ship in the package.
Each one carries an ETag, so a browser revalidates with one cheap request and a
304. Every console response carries the same security headers: a content
security policy that allows only the console's own scripts and styles (no inline
script, no eval, no string-to-DOM sinks, no framing, no form posting anywhere),
and no referrer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self'; "
    "img-src 'self' data:; "
    "connect-src 'self'; "
    "base-uri 'none'; "
    # the console's forms are handled by its scripts; were they ever submitted, a key must not
    # end up in a URL
    "form-action 'none'; "
    "frame-ancestors 'none'; "
    "require-trusted-types-for 'script'"
)

SECURITY_HEADERS = MappingProxyType({
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-cache",
})

_TYPES = MappingProxyType({
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
})


@dataclass(frozen=True, slots=True)
class Asset:
    """One file: its bytes, content type and ETag."""

    body: bytes
    content_type: str
    etag: str


class ConsoleAssets:
    """The console's files by path relative to ``gateway/console`` (``index.html``, ``js/app.js``)."""

    def __init__(self, files: dict[str, Asset]) -> None:
        self._files = MappingProxyType(dict(files))

    @classmethod
    def from_package(cls) -> ConsoleAssets:
        return cls.from_folder(resources.files("gateway") / "console")

    @classmethod
    def from_folder(cls, root: Traversable) -> ConsoleAssets:
        files: dict[str, Asset] = {}
        for path, entry in _walk(root, ""):
            suffix = path[path.rfind("."):] if "." in path else ""
            content_type = _TYPES.get(suffix)
            if content_type is None:
                continue  # only what a browser needs (no sources of vendored builds, no stray files)
            body = entry.read_bytes()
            files[path] = Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
        if "index.html" not in files:
            raise FileNotFoundError(f"the console's index.html is missing from {root}")
        return cls(files)

    def get(self, path: str) -> Asset | None:
        return self._files.get(path)

    def paths(self) -> list[str]:
        return sorted(self._files)


def _walk(folder: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
    for entry in folder.iterdir():
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            yield from _walk(entry, f"{prefix}{entry.name}/")
        else:
            yield f"{prefix}{entry.name}", entry
