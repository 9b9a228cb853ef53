"""Lead rules on a field of the lead against both simulators: the portal gives the leads its calls create the
defaults of its lead user fields (enumerations as item IDs); the hand-over reads the lead and, when a rule's field
matches, gives the lead to that rule's manager, who is notified and gets the one missed-call task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.sim.bitrix24.seed import default_seed_data
from bridge.sim.stage import stage
from tests.integration.test_lead_distribution import away_known, handed_to, lead_of, missed_call, with_leads

LEAD_USER_FIELDS = [
    {"FIELD_NAME": "UF_CRM_REGION", "USER_TYPE_ID": "enumeration", "MULTIPLE": "N",
     "LIST": [{"ID": 44, "VALUE": "South"}, {"ID": 45, "VALUE": "North", "DEF": "Y"}]},
    {"FIELD_NAME": "UF_CRM_TAGS", "USER_TYPE_ID": "enumeration", "MULTIPLE": "Y",
     "LIST": [{"ID": 50, "VALUE": "Retail", "DEF": "Y"}, {"ID": 51, "VALUE": "Wholesale", "DEF": "Y"}]},
]  # fmt: skip
RULES: list[dict[str, Any]] = [
    {"name": "south", "when": "field:UF_CRM_REGION=44", "then": "employee:1002"},
    {"name": "wholesale", "when": ["prefix:7812", "field:UF_CRM_TAGS=51"], "then": "employee:1003"},
]


async def test_a_lead_whose_field_matches_a_rule_goes_to_that_manager_with_the_task(tmp_path: Path) -> None:
    seed = default_seed_data() | {"lead_user_fields": LEAD_USER_FIELDS}
    async with stage(tmp_path, tweak=with_leads("round_robin", rules=RULES), crm_seed=seed) as s:
        await away_known(s)
        await missed_call(s, "79990001001")
        await handed_to(s, "79990001001", 11)  # a North lead, no 7812: no field rule matches, round robin's 1001
        await missed_call(s, "78120001002")
        assert lead_of(s, "78120001002")["UF_CRM_TAGS"] == ["50", "51"]
        await handed_to(s, "78120001002", 13)  # wholesale: the lead has tag 51 (and the prefix holds)
        notes = [n["USER_ID"] for n in s.crm.state()["notifications"]]
        assert notes == [11, 13], "each manager told once"
