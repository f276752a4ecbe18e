"""m3ter external mappings to Xero: one finder for every entity (accounts, products).

An external mapping links an m3ter entity (``m3terEntity`` "Account", "Product", ...; its id in
``m3terId``) to a row of a Xero table (``externalTable`` "Contact", "Account", "Item", "TaxRate",
"TrackingOption"; the Xero value in ``externalId``). A mapping may be linked to one integration
(``integrationConfigId``) or to none (the organisation's). Which one counts, as m3ter's "enforce
external mappings for config" option says:

- enforce: only mappings linked to this integration; none linked, none used;
- otherwise: those linked to this integration, else the unlinked ones, else any (linked to
  another integration).

Names compare without case (m3ter's console writes "Xero", "Product"; integrators write what
they like); a mapping with a blank ``externalId`` is no mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from config.integration import IntegrationConfig
from tasks.m3ter.models import ExternalMapping

__all__ = ["XeroMappings", "find_mapping", "find_mappings", "preferred_mappings"]

XERO = "xero"


def as_mapping(m: ExternalMapping | dict[str, Any]) -> ExternalMapping:
    """The wire model of a mapping given as a model or as m3ter's JSON."""
    return m if isinstance(m, ExternalMapping) else ExternalMapping.model_validate(m)


class XeroMappings:
    """The usable Xero mappings of a list, indexed by (m3ter entity, m3ter id, Xero table).

    Build it once per bill (``map_bill`` does) so every line's look-up is a dict access.
    """

    __slots__ = ("_index",)

    def __init__(self, mappings: Iterable[ExternalMapping | dict[str, Any]] = ()) -> None:
        index: dict[tuple[str, str, str], list[ExternalMapping]] = {}
        for m in map(as_mapping, mappings):
            if m.external_system.lower() != XERO or not m.external_id.strip():
                continue
            key = (m.m3ter_entity.lower(), m.m3ter_id, m.external_table.lower())
            index.setdefault(key, []).append(m)
        self._index = index

    @classmethod
    def of(
        cls, mappings: XeroMappings | Iterable[ExternalMapping | dict[str, Any]]
    ) -> XeroMappings:
        """``mappings`` as an index (itself when it already is one)."""
        return mappings if isinstance(mappings, XeroMappings) else cls(mappings)

    def candidates(self, entity: str, m3ter_id: str, table: str) -> list[ExternalMapping]:
        """Every usable mapping of the entity to the Xero table, in the order given."""
        return list(self._index.get((entity.lower(), m3ter_id, table.lower()), ()))


def preferred_mappings(
    config: IntegrationConfig, integration_id: str, candidates: Sequence[ExternalMapping]
) -> list[ExternalMapping]:
    """The candidates that count for this integration (the rule in the module docstring)."""
    linked = [m for m in candidates if m.integration_config_id == integration_id]
    if linked or config.enforce_external_mappings_for_config:
        return linked
    unlinked = [m for m in candidates if not m.integration_config_id]
    return unlinked or list(candidates)


def find_mappings(
    config: IntegrationConfig,
    integration_id: str,
    mappings: XeroMappings | Iterable[ExternalMapping | dict[str, Any]],
    *,
    entity: str,
    m3ter_id: str,
    table: str,
) -> list[ExternalMapping]:
    """The mappings of ``entity`` ``m3ter_id`` to Xero ``table`` that count, best first."""
    found = XeroMappings.of(mappings).candidates(entity, m3ter_id, table)
    return preferred_mappings(config, integration_id, found)


def find_mapping(
    config: IntegrationConfig,
    integration_id: str,
    mappings: XeroMappings | Iterable[ExternalMapping | dict[str, Any]],
    *,
    entity: str,
    m3ter_id: str,
    table: str,
) -> ExternalMapping | None:
    """The one mapping of ``entity`` ``m3ter_id`` to Xero ``table`` to use, or None.

    E.g. ``find_mapping(config, integration_id, mappings, entity="Product",
    m3ter_id="prod-1", table="Account")``: its ``external_id`` is the Xero account code.
    """
    found = find_mappings(
        config, integration_id, mappings, entity=entity, m3ter_id=m3ter_id, table=table
    )
    return found[0] if found else None
