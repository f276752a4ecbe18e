"""A sandbox's state in a JSON file, so that a restart keeps what the sandbox knew.

``python -m sandbox.xero --state-file PATH`` (and ``sandbox.m3ter``, and ``make serve
ARGS=--sandbox`` in its data folder) restore their state from the file and save it there: a
moment after any request (at most once a ``interval``), and on close. Each save writes a temporary
file beside it and renames it over the old one, so a crash leaves the previous save whole.
Without a state file a sandbox lives in memory, as the tests use it.

The codec keeps what JSON alone would lose: ``Decimal`` digit for digit, dates, sets, tuples,
dict keys that are not text, bytes, ``Counter`` and the sandbox's own dataclasses (only classes
of ``sandbox.*`` modules are rebuilt from a file). ``constants`` are objects written by name and
read back as the very same object (code compares them with ``is``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import importlib
import json
import logging
import os
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

FORMAT = "sandbox-state"
VERSION = 1
_log = logging.getLogger("sandbox.persist")


class StateFileError(ValueError):
    """A state file that cannot be used; the message names the file and the way out."""


# ----- the codec -----------------------------------------------------------------------------


def encode(value: Any, constants: Mapping[str, object] | None = None) -> Any:
    """``value`` as plain JSON values (a deep copy: safe to dump after the locks are let go).
    ``TypeError`` names a type the codec does not know."""
    by_id = {id(obj): name for name, obj in (constants or {}).items()}
    return _encode(value, by_id)


def _encode(value: Any, consts: dict[int, str]) -> Any:
    if id(value) in consts:
        return {"$const": consts[id(value)]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [_encode(v, consts) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, consts) for v in value]}
    if isinstance(value, frozenset | set):
        tag = "$frozenset" if isinstance(value, frozenset) else "$set"
        items = [_encode(v, consts) for v in value]
        return {tag: sorted(items, key=lambda item: json.dumps(item, sort_keys=True))}
    if isinstance(value, deque):
        return {"$deque": [_encode(v, consts) for v in value]}
    if isinstance(value, Counter):
        return {"$counter": [[_encode(k, consts), v] for k, v in value.items()]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, consts) for k, v in value.items()}
        return {"$pairs": [[_encode(k, consts), _encode(v, consts)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        fields = {
            f.name: _encode(getattr(value, f.name), consts) for f in dataclasses.fields(value)
        }
        return {"$dataclass": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise TypeError(f"the sandbox state codec cannot store a {type(value).__qualname__}")


def decode(data: Any, constants: Mapping[str, object] | None = None) -> Any:
    """The value ``encode`` wrote; ``StateFileError`` for anything it would not have written."""
    return _decode(data, constants or {})


def _decode(data: Any, consts: Mapping[str, object]) -> Any:
    if isinstance(data, list):
        return [_decode(v, consts) for v in data]
    if not isinstance(data, dict):
        return data
    tags = [k for k in data if k.startswith("$")]
    if not tags:
        return {k: _decode(v, consts) for k, v in data.items()}
    tag = tags[0]
    raw = data[tag]
    if tag == "$dataclass":
        fields = data.get("fields")
        if not isinstance(fields, dict):
            raise StateFileError(f"{raw} has no fields")
        return _dataclass(str(raw), fields, consts)
    try:
        return _TAGS[tag](raw, consts)
    except KeyError as exc:
        raise StateFileError(f"unknown value {tag} {exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise StateFileError(f"unreadable {tag} value: {exc}") from None


def _dataclass(name: str, fields: dict[str, Any], consts: Mapping[str, object]) -> Any:
    module_name, _, qualname = name.partition(":")
    if not (module_name == "sandbox" or module_name.startswith("sandbox.")):
        raise StateFileError(f"{name} is not a sandbox class")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        raise StateFileError(f"no class {name} (the sandbox changed since the save)") from None
    if not (isinstance(target, type) and dataclasses.is_dataclass(target)):
        raise StateFileError(f"{name} is not a dataclass")
    obj = object.__new__(target)
    for field in dataclasses.fields(target):
        if field.name in fields:
            value = _decode(fields[field.name], consts)
        elif field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            raise StateFileError(f"{name} has no {field.name} (the sandbox changed since the save)")
        object.__setattr__(obj, field.name, value)  # frozen dataclasses too
    return obj


_TAGS: dict[str, Callable[[Any, Mapping[str, object]], Any]] = {
    "$const": lambda raw, consts: consts[raw],
    "$decimal": lambda raw, _: Decimal(raw),
    "$datetime": lambda raw, _: dt.datetime.fromisoformat(raw),
    "$date": lambda raw, _: dt.date.fromisoformat(raw),
    "$bytes": lambda raw, _: base64.b64decode(raw, validate=True),
    "$tuple": lambda raw, c: tuple(_decode(v, c) for v in raw),
    "$set": lambda raw, c: {_decode(v, c) for v in raw},
    "$frozenset": lambda raw, c: frozenset(_decode(v, c) for v in raw),
    "$deque": lambda raw, c: deque(_decode(v, c) for v in raw),
    "$counter": lambda raw, c: Counter({_decode(k, c): v for k, v in raw}),
    "$pairs": lambda raw, c: {_decode(k, c): _decode(v, c) for k, v in raw},
}


# ----- the file ------------------------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` whole or not at all: a temporary file (mode 0600) beside it,
    synced, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_state(
    path: Path,
    sandbox: str,
    config: Mapping[str, Any],
    constants: Mapping[str, object] | None = None,
) -> Any:
    """The state saved in ``path`` by a ``sandbox`` started with ``config``; ``None`` when
    there is no file yet. ``StateFileError`` when the file is not such a save."""
    fix = (
        f"start the sandbox fresh (--fresh-sandbox with make serve, --fresh here) or remove {path}"
    )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read sandbox state file {path}: {exc}") from None
    try:
        saved = json.loads(text)
    except ValueError:
        raise StateFileError(f"{path} is not a sandbox state file (not JSON): {fix}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise StateFileError(f"{path} is not a sandbox state file: {fix}")
    if saved.get("sandbox") != sandbox:
        raise StateFileError(
            f"{path} holds the {saved.get('sandbox')} sandbox's state, not the {sandbox} one's"
        )
    if saved.get("version") != VERSION:
        raise StateFileError(
            f"{path} was saved in format version {saved.get('version')}, this sandbox reads "
            f"version {VERSION}: {fix}"
        )
    differs = {k: v for k, v in saved.get("config", {}).items() if config.get(k) != v}
    if differs:
        named = ", ".join(f"{k} {v!r} (now {config.get(k)!r})" for k, v in sorted(differs.items()))
        raise StateFileError(f"{path} was saved by a {sandbox} sandbox started with {named}: {fix}")
    try:
        return decode(saved["state"], constants)
    except KeyError:
        raise StateFileError(f"{path} has no state: {fix}") from None
    except StateFileError as exc:
        raise StateFileError(f"{path}: {exc}: {fix}") from None


class Snapshots:
    """Saves one sandbox's state to ``path``: after changes (``touch``), at most once per
    ``interval`` seconds on a background thread, and a last time on ``close``."""

    def __init__(
        self,
        path: Path,
        sandbox: str,
        config: Mapping[str, Any],
        capture: Callable[[], Any],
        *,
        interval: float = 1.0,
    ) -> None:
        self.path = path
        self.sandbox = sandbox
        self.config = dict(config)
        self.capture = capture
        self.interval = interval
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._saving = threading.Lock()
        self._last = ""
        self._thread: threading.Thread | None = None

    def touch(self) -> None:
        """Something may have changed: save within ``interval``."""
        self._changed.set()

    def save(self) -> bool:
        """Write the state now if it differs from the last save; whether it wrote."""
        with self._saving:
            text = json.dumps(
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "sandbox": self.sandbox,
                    "config": self.config,
                    "state": self.capture(),
                },
                separators=(",", ":"),
            )
            if text == self._last:
                return False
            write_atomic(self.path, text)
            self._last = text
            return True

    def start(self) -> Snapshots:
        """Begin saving in the background (a daemon thread)."""
        self._thread = threading.Thread(
            target=self._loop, name=f"sandbox-state-{self.sandbox}", daemon=True
        )
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            if self._changed.is_set():
                self._changed.clear()
                try:
                    self.save()
                except (OSError, TypeError, ValueError) as exc:  # keep serving; say why
                    _log.error("the %s sandbox's state was not saved to %s: %s",
                               self.sandbox, self.path, exc)  # fmt: skip

    def close(self) -> None:
        """Stop the background saves and save a last time."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)
        self.save()


class TouchAfterRequests:
    """ASGI middleware: after every HTTP request (API or control), ``touch``."""

    def __init__(self, app: Any, touch: Callable[[], None]) -> None:
        self.app = app
        self.touch = touch

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope.get("type") == "http":
                self.touch()


def persist_app(
    app: Any,
    path: Path,
    *,
    sandbox: str,
    config: Mapping[str, Any],
    capture: Callable[[], Any],
    restore: Callable[[Any], None],
    fresh: bool = False,
    constants: Mapping[str, object] | None = None,
    interval: float = 1.0,
) -> Snapshots:
    """Restore a sandbox's state from ``path`` (unless ``fresh``) with ``restore`` and keep
    saving it there after every request; ``close()`` the result when the server stops.
    ``StateFileError`` for a file it cannot use (another sandbox, seed or organisations)."""
    if not fresh:
        saved = read_state(path, sandbox, config, constants)
        if saved is not None:
            restore(saved)
    snapshots = Snapshots(path, sandbox, config, capture, interval=interval)
    snapshots.save()  # a fresh start replaces the old file at once
    app.add_middleware(TouchAfterRequests, touch=snapshots.touch)
    return snapshots.start()
