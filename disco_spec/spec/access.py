"""What a spec may read: the folders its paths must stay in, and whether its URLs may be fetched.

A spec (and a manifest or PNG that `rebuild` renders again) may come from a stranger, so the files it
names are read only from its own repository: paths resolve against the spec's folder, `~` expands,
symlinks are resolved, and the real path must lie inside one of the policy's roots — the enclosing git
work tree of the spec's folder (found by walking up to a `.git` entry), else the spec's folder itself,
plus every folder given with `render --allow-path DIR` or in $DISCO_SPEC_ALLOW_PATHS. URLs are fetched
only when the policy allows the network, within an overall deadline and a size cap.

One InputPolicy is built per render (by the CLI or the caller) and passed down explicitly to every
place that opens a file a spec names: init images and image prompts (run.inputs), the Video Input
source (run.video_input) and custom model files (models.resolve, models.clip).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import SpecError

ALLOW_PATHS_ENV = "DISCO_SPEC_ALLOW_PATHS"
URL_DEADLINE_S = 60.0  # the whole fetch (connect, headers, body), not one read
MAX_URL_BYTES = 64 * 2**20
MAX_FILE_BYTES = 512 * 2**20  # an init image, image prompt or video read whole (hashes are streamed)
URL_SCHEMES = ("http://", "https://")
WIDEN_HINT = f"pass `--allow-path DIR` (or list folders in ${ALLOW_PATHS_ENV}) to allow another folder"


def is_url(text: str) -> bool:
    return text[:8].lower().startswith(URL_SCHEMES)


def repository_root(folder: str | os.PathLike) -> Path:
    """The enclosing git work tree of `folder` (the nearest parent with a `.git` file or folder), else `folder`."""
    start = Path(os.path.realpath(folder))
    for candidate in (start, *start.parents):
        if os.path.lexists(candidate / ".git"):
            return candidate
    return start


def allow_paths_from_env(environ: Mapping[str, str]) -> list[str]:
    """The folders listed in $DISCO_SPEC_ALLOW_PATHS (os.pathsep-separated; empty entries ignored)."""
    return [p for p in environ.get(ALLOW_PATHS_ENV, "").split(os.pathsep) if p.strip()]


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


@dataclass(frozen=True)
class InputPolicy:
    """Where relative paths resolve (`base`), the folders files may be read from, and the network rules."""

    base: Path
    roots: tuple[Path, ...]
    allow_network: bool = False
    url_deadline_s: float = URL_DEADLINE_S
    max_url_bytes: int = MAX_URL_BYTES
    max_file_bytes: int = MAX_FILE_BYTES
    widen_hint: str = field(default=WIDEN_HINT, compare=False)

    @classmethod
    def for_spec(
        cls,
        spec_dir: str | os.PathLike | None,
        *,
        allow_paths: Iterable[str | os.PathLike] = (),
        allow_network: bool = False,
        **limits: Any,
    ) -> "InputPolicy":
        """The policy of a spec in `spec_dir` (None: a spec built in Python; the current folder stands in)."""
        base = _real(spec_dir if spec_dir is not None else os.getcwd())
        return cls.for_folders(base, [base], allow_paths=allow_paths, allow_network=allow_network, **limits)

    @classmethod
    def for_folders(
        cls,
        base: str | os.PathLike,
        trusted: Iterable[str | os.PathLike],
        *,
        allow_paths: Iterable[str | os.PathLike] = (),
        allow_network: bool = False,
        **limits: Any,
    ) -> "InputPolicy":
        """Relative paths resolve against `base`; files may be read from the repository of each `trusted`
        folder and from each of `allow_paths` (taken as they are, not widened to their repository)."""
        roots: list[Path] = []
        for r in [repository_root(_real(t)) for t in trusted] + [_real(p) for p in allow_paths]:
            if r not in roots:
                roots.append(r)
        return cls(base=_real(base), roots=tuple(roots), allow_network=allow_network, **limits)

    # -- paths -----------------------------------------------------------------------------------

    def _candidate(self, text: str, fld: str) -> Path:
        if "\x00" in text:
            raise SpecError(f"{fld}: a path holds a NUL character", [(fld, "a path holds a NUL character")])
        if "://" in text[:16]:
            why = f"{text!r}: only http:// and https:// URLs are supported"
            raise SpecError(f"{fld}: {why}", [(fld, why)])
        p = Path(os.path.expanduser(text))
        return Path(os.path.realpath(p if p.is_absolute() else self.base / p))

    def allows(self, real: Path) -> bool:
        return any(real == r or real.is_relative_to(r) for r in self.roots)

    def inside(self, text: str, fld: str = "path") -> Path | None:
        """The real path `text` names, or None when it lies outside every root (nothing is probed on disk)."""
        real = self._candidate(text, fld)
        return real if self.allows(real) else None

    def resolve(self, text: str, fld: str) -> Path:
        """The real path of a file a spec names; SpecError (exit 2, naming `fld`) when it lies outside.

        The check comes before any look at the file, so a refused path reveals nothing of what is there.
        """
        real = self._candidate(text, fld)
        if not self.allows(real):
            roots = ", ".join(str(r) for r in self.roots)
            where = "" if str(real) in (text, os.path.expanduser(text)) else f" (it resolves to {real})"
            why = f"{text!r} is outside the folders this spec may read ({roots}){where}; {self.widen_hint}"
            raise SpecError(f"{fld}: {why}", [(fld, why)])
        return real

    def check_url(self, url: str, fld: str) -> None:
        if not self.allow_network:
            why = f"{url!r} is a URL; URLs are fetched only with `--allow-network`"
            raise SpecError(f"{fld}: {why}", [(fld, why)])
