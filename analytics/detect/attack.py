"""MITRE ATT&CK (Enterprise, cloud matrix): the techniques keytrail's detectors map to, and
their tactics.

Detectors name techniques; an incident states the tactics they belong to, so an analyst sees at
a glance that a story went from discovery to impact. A sub-technique (``T1562.008``) takes its
parent's tactics. Names and tactic assignments follow attack.mitre.org.
"""

from __future__ import annotations

TACTICS: dict[str, str] = {
    "TA0001": "Initial Access",
    "TA0003": "Persistence",
    "TA0004": "Privilege Escalation",
    "TA0005": "Defense Evasion",
    "TA0006": "Credential Access",
    "TA0007": "Discovery",
    "TA0009": "Collection",
    "TA0010": "Exfiltration",
    "TA0040": "Impact",
}
"""Tactic ID → name, in the order ATT&CK lists them (an attack's usual progression)."""

TECHNIQUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "T1078": ("Valid Accounts", ("TA0001", "TA0003", "TA0004", "TA0005")),
    "T1087": ("Account Discovery", ("TA0007",)),
    "T1098": ("Account Manipulation", ("TA0003", "TA0004")),
    "T1119": ("Automated Collection", ("TA0009",)),
    "T1485": ("Data Destruction", ("TA0040",)),
    "T1486": ("Data Encrypted for Impact", ("TA0040",)),
    "T1490": ("Inhibit System Recovery", ("TA0040",)),
    "T1496": ("Resource Hijacking", ("TA0040",)),
    "T1526": ("Cloud Service Discovery", ("TA0007",)),
    "T1530": ("Data from Cloud Storage", ("TA0009",)),
    "T1531": ("Account Access Removal", ("TA0040",)),
    "T1537": ("Transfer Data to Cloud Account", ("TA0010",)),
    "T1552": ("Unsecured Credentials", ("TA0006",)),
    "T1555": ("Credentials from Password Stores", ("TA0006",)),
    "T1562": ("Impair Defenses", ("TA0005",)),
    "T1565": ("Data Manipulation", ("TA0040",)),
    "T1578": ("Modify Cloud Compute Infrastructure", ("TA0005",)),
    "T1580": ("Cloud Infrastructure Discovery", ("TA0007",)),
    "T1070": ("Indicator Removal", ("TA0005",)),
    "T1484": ("Domain or Tenant Policy Modification", ("TA0005", "TA0004")),
}
"""Technique ID → (name, tactic IDs). Sub-techniques resolve through their parent."""


def tactics_of(technique: str) -> tuple[str, ...]:
    """Tactic names of a technique or sub-technique; empty for an ID this table does not know."""
    entry = TECHNIQUES.get(technique) or TECHNIQUES.get(technique.split(".", 1)[0])
    return tuple(TACTICS[t] for t in entry[1]) if entry else ()


def tactics_in_order(techniques: list[str]) -> list[str]:
    """The distinct tactics of ``techniques``, in ATT&CK's order (reconnaissance to impact)."""
    found = {name for technique in techniques for name in tactics_of(technique)}
    return [name for name in TACTICS.values() if name in found]
