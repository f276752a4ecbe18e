"""ISO 3166-1 alpha-2 country codes: the keys of ``tax_type_by_country``, and how an m3ter
account's ``address.country`` is read as one.

``COUNTRY_CODES`` are the 249 officially assigned alpha-2 codes, as tzdata's ``iso3166.tab``
lists them (current as of ISO/TC 46 N1108, 2023-04-05).

m3ter's ``address.country`` is free text: the SDK types it as an optional string with no
format (``m3ter.types.Address.country``), and people write ``UK`` for GB (this project's own
account filter examples do). So an account's country is read as a code when, trimmed and
upper-cased, it is an assigned code, or ``UK`` (exceptionally reserved in ISO 3166-1 for the
United Kingdom: read as GB). Anything else (a name such as "Germany", an alpha-3 code such as
DEU) is no country: guessing at names would put a tax type on a customer nobody chose it for.
"""

from __future__ import annotations

__all__ = ["COUNTRY_CODES", "country_code"]

_ALPHA2 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRY_CODES: frozenset[str] = frozenset(_ALPHA2.split())

# ISO 3166-1's exceptionally reserved codes that name an assigned country's territory.
_RESERVED = {"UK": "GB"}


def country_code(text: str | None) -> str | None:
    """The ISO 3166-1 alpha-2 code an m3ter account's free-text country holds, or None."""
    if not text:
        return None
    code = text.strip().upper()
    code = _RESERVED.get(code, code)
    return code if code in COUNTRY_CODES else None
