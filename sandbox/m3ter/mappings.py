"""The seeded external mappings, as ``ExternalMappingResponse`` wire dicts.

m3ter's external mappings pair an m3ter entity (``m3terEntity``, ``m3terId``) with a record of
another system (``externalSystem``, ``externalTable``, ``externalId``: free text, "the name of the
table in the external system", ``ExternalMappingResponse`` in m3ter's SDK), optionally for one
integration configuration (``integrationConfigId``, "UUID of the configuration this mapping is
for"). The seed holds two kinds for Xero:

- Account -> Xero ``Contact``, per account (``make_mappings``);
- Product -> Xero ``Account`` (a revenue account code), ``Item`` (an item code), ``TaxRate`` (a
  TaxType) or ``TrackingOption`` (``"<category>:<option>"``), per product (``product_mappings``),
  for the accounting products bill lines carry (``catalogue``) and, for lines without one, their
  products. The codes are ones the Xero sandbox's seeded organisations hold.
"""

from __future__ import annotations

from typing import Any

from sandbox.m3ter import catalogue
from sandbox.m3ter.ids import account_id, integration_config_id, stable_id

XERO_SYSTEM = "Xero"
XERO_CONTACT_TABLE = "Contact"
XERO_ACCOUNT_TABLE = "Account"
XERO_ITEM_TABLE = "Item"
XERO_TAX_RATE_TABLE = "TaxRate"
XERO_TRACKING_TABLE = "TrackingOption"
PRODUCT_TABLES = frozenset(
    {XERO_ACCOUNT_TABLE, XERO_ITEM_TABLE, XERO_TAX_RATE_TABLE, XERO_TRACKING_TABLE}
)
"""The Xero tables a Product maps to."""

PRODUCT_MAPPINGS: tuple[tuple[str, str, str, bool], ...] = (
    # product code, Xero table, externalId, linked to integration_config_id(seed)
    ("compute_revenue", XERO_ACCOUNT_TABLE, "202", False),
    ("compute_revenue", XERO_TRACKING_TABLE, "Product Line:Compute", False),
    ("storage_revenue", XERO_ACCOUNT_TABLE, "202", False),
    ("storage_revenue", XERO_TRACKING_TABLE, "Product Line:Storage", False),
    ("usage_revenue", XERO_ACCOUNT_TABLE, "202", True),
    ("platform_subscriptions", XERO_ACCOUNT_TABLE, "201", False),
    ("compute", XERO_ACCOUNT_TABLE, "200", False),
    ("storage", XERO_ACCOUNT_TABLE, "200", False),
    ("api_calls", XERO_ACCOUNT_TABLE, "202", False),
    ("egress", XERO_ACCOUNT_TABLE, "200", False),
    ("support", XERO_ACCOUNT_TABLE, "201", False),
    ("support", XERO_ITEM_TABLE, "SUPPORT", False),
    ("analytics", XERO_ACCOUNT_TABLE, "200", False),
)
"""Every Product a line can be attributed to (each accounting product, and each sold product: the
fallback of its Plan, and the ``productId`` of lines with no accounting product) has an Account
mapping: ``202`` usage, ``201`` subscriptions, ``200`` sales. Support also maps to the Item
``SUPPORT``; Compute Revenue and Storage Revenue to a ``Product Line`` tracking option. No
TaxRate mapping: tax comes from the integration's default (add one with ``POST
/_sandbox/mappings``). Only Usage Revenue's Account mapping is linked to the seed's integration
config, so that "enforce external mappings for config" keeps it and drops the rest."""


def make_mappings(seed: int, index: int) -> list[dict[str, Any]]:
    """External mappings for account ``index``.

    Xero Contact mapping: indexes 0,1,2 mod 5 are linked to ``integration_config_id(seed)``,
    3 mod 5 has a mapping with no integration config, 4 mod 5 has none. Every third account
    also has a Salesforce mapping, so filters have something to filter out.
    """
    acc = account_id(seed, index)
    out: list[dict[str, Any]] = []
    kind = index % 5
    if kind != 4:
        out.append(
            make_mapping(
                seed,
                mapping_id=stable_id(seed, "mapping", "xero", index),
                m3ter_id=acc,
                external_id=stable_id(seed, "xero-contact", index),
                integration_config=integration_config_id(seed) if kind < 3 else None,
            )
        )
    if index % 3 == 0:
        out.append(
            make_mapping(
                seed,
                mapping_id=stable_id(seed, "mapping", "salesforce", index),
                m3ter_id=acc,
                external_id=f"001{index:012d}",
                system="Salesforce",
                table="Account",
            )
        )
    return out


def product_mappings(seed: int) -> list[dict[str, Any]]:
    """The seed's Product -> Xero mappings (``PRODUCT_MAPPINGS``), in that order."""
    return [
        make_mapping(
            seed,
            mapping_id=stable_id(seed, "mapping", "xero-product", code, table),
            m3ter_id=catalogue.product_by_code(seed, code).id,
            external_id=external_id,
            integration_config=integration_config_id(seed) if linked else None,
            table=table,
            entity="Product",
        )
        for code, table, external_id, linked in PRODUCT_MAPPINGS
    ]


def make_mapping(
    seed: int,
    *,
    mapping_id: str,
    m3ter_id: str,
    external_id: str,
    integration_config: str | None = None,
    system: str = XERO_SYSTEM,
    table: str = XERO_CONTACT_TABLE,
    entity: str = "Account",
) -> dict[str, Any]:
    """One ``ExternalMappingResponse`` dict."""
    mapping: dict[str, Any] = {
        "id": mapping_id,
        "externalSystem": system,
        "externalTable": table,
        "externalId": external_id,
        "m3terEntity": entity,
        "m3terId": m3ter_id,
        "dtCreated": "2024-06-02T10:00:00Z",
        "dtLastModified": "2024-06-02T10:00:00Z",
        "createdBy": "sandbox",
        "lastModifiedBy": "sandbox",
        "version": 1,
    }
    if integration_config:
        mapping["integrationConfigId"] = integration_config
    return mapping
