"""Documents handed to a posting task are released once the task takes them."""

from __future__ import annotations

import gc
import weakref

import pytest

from tasks.sync import handoff


class Documents(list):  # a list that can be weakly referenced
    pass


def test_a_handed_value_is_taken_once_and_then_held_by_nobody():
    documents = Documents([{"InvoiceNumber": "b1"}])
    watcher = weakref.ref(documents)
    key = handoff.hand(documents)
    del documents
    assert watcher() is not None  # held until taken
    taken = handoff.take(key)
    assert taken == [{"InvoiceNumber": "b1"}]
    del taken
    gc.collect()
    assert watcher() is None
    with pytest.raises(KeyError):
        handoff.take(key)
