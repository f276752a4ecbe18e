"""The sandboxes' state file: a codec that keeps money exact and the sandbox's own types, an
atomic write, and clear refusals of a file that cannot be used."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter, deque
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.persist import (
    FORMAT,
    VERSION,
    Snapshots,
    StateFileError,
    decode,
    encode,
    read_state,
    write_atomic,
)
from sandbox.xero.books import TaxComponent
from sandbox.xero.documents import CREDIT_NOTES, INVOICES
from sandbox.xero.persistence import CONSTANTS


def round_trip(value, constants=None):
    return decode(json.loads(json.dumps(encode(value, constants))), constants)


def test_money_dates_and_containers_come_back_exactly():
    value = {
        "amounts": [Decimal("1.2300"), Decimal("-0.0001"), Decimal("1E+3"), Decimal("0.10")],
        "day": dt.date(2025, 3, 1),
        "at": dt.datetime(2025, 3, 1, 2, 0, 0, 123000, tzinfo=dt.UTC),
        "naive": dt.datetime(2025, 3, 1, 2, 0),
        ("tenant", "Invoices", None): ["id-1"],
        7: 1.1,
        "$looks-tagged": {"a", "b"},
        "frozen": frozenset({"REVENUE"}),
        "pair": ("x", 1),
        "raw": b"\x00\xffbody",
        "counted": Counter({"refreshes": 2}),
        "queue": deque(["503", "timeout"]),
        "rate": TaxComponent("VAT", Decimal("17.5"), is_compound=True),
    }
    back = round_trip(value)
    assert back == value
    assert [str(d) for d in back["amounts"]] == ["1.2300", "-0.0001", "1E+3", "0.10"]
    assert type(back["counted"]) is Counter and type(back["queue"]) is deque
    assert type(back["frozen"]) is frozenset and type(back["pair"]) is tuple
    assert back["at"].tzinfo is not None and back["naive"].tzinfo is None


def test_constants_come_back_as_the_same_object():
    back = round_trip({"kinds": [INVOICES, CREDIT_NOTES]}, CONSTANTS)
    assert back["kinds"][0] is INVOICES and back["kinds"][1] is CREDIT_NOTES


def test_what_the_codec_cannot_store_or_rebuild_is_refused():
    with pytest.raises(TypeError, match="object"):
        encode({"x": object()})
    with pytest.raises(StateFileError, match="not a sandbox class"):
        decode({"$dataclass": "subprocess:Popen", "fields": {"args": "true"}})
    with pytest.raises(StateFileError, match="no class"):
        decode({"$dataclass": "sandbox.xero.books:Gone", "fields": {}})
    with pytest.raises(StateFileError, match="has no rate"):
        decode({"$dataclass": "sandbox.xero.books:TaxComponent", "fields": {"name": "VAT"}})
    with pytest.raises(StateFileError, match="decimal"):
        decode({"$decimal": "twelve"})
    with pytest.raises(StateFileError, match="unknown value"):
        decode({"$const": "nothing"}, CONSTANTS)


def test_a_failed_write_leaves_the_last_save_whole(tmp_path: Path, monkeypatch):
    path = tmp_path / "state" / "xero.json"
    write_atomic(path, "first")
    assert path.read_text() == "first" and oct(path.stat().st_mode & 0o777) == "0o600"

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "second")
    assert path.read_text() == "first"
    assert os.listdir(path.parent) == ["xero.json"]  # no temporary file left behind


def test_a_file_that_cannot_be_used_is_refused_naming_it_and_the_way_out(tmp_path: Path):
    path = tmp_path / "xero.json"
    assert read_state(path, "xero", {}) is None  # no file yet: start as new

    def saved(**fields):
        path.write_text(json.dumps({"format": FORMAT, "version": VERSION, "sandbox": "xero",
                                    "config": {"orgs": ["A"]}, "state": {}, **fields}))  # fmt: skip

    path.write_text("{half a file")
    with pytest.raises(StateFileError, match="not JSON") as bad:
        read_state(path, "xero", {})
    assert str(path) in str(bad.value) and "--fresh" in str(bad.value)
    saved(sandbox="m3ter")
    with pytest.raises(StateFileError, match="m3ter sandbox's state, not the xero"):
        read_state(path, "xero", {"orgs": ["A"]})
    saved(version=VERSION + 1)
    with pytest.raises(StateFileError, match="format version"):
        read_state(path, "xero", {"orgs": ["A"]})
    saved()
    with pytest.raises(StateFileError, match=r"orgs \['A'\] \(now \['B'\]\)"):
        read_state(path, "xero", {"orgs": ["B"]})
    assert read_state(path, "xero", {"orgs": ["A"]}) == {}


def test_snapshots_write_only_what_changed_and_a_last_time_on_close(tmp_path: Path):
    path = tmp_path / "m3ter.json"
    data = {"bills": 1}
    snapshots = Snapshots(path, "m3ter", {"seed": 1}, lambda: encode(data), interval=0.05)
    assert snapshots.save() is True
    assert snapshots.save() is False  # nothing changed: no write
    snapshots.start()
    data["bills"] = 2
    snapshots.touch()
    deadline = dt.datetime.now() + dt.timedelta(seconds=5)
    while read_state(path, "m3ter", {"seed": 1}) != {"bills": 2}:
        assert dt.datetime.now() < deadline, "a touched change was not saved"
        time.sleep(0.02)
    data["bills"] = 3  # changed without a touch: the close still saves it
    snapshots.close()
    assert read_state(path, "m3ter", {"seed": 1}) == {"bills": 3}
