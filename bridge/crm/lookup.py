"""Who is calling, as the CRM knows it: the answer to the core's ``LookupCrm``."""

from __future__ import annotations

import structlog

from bridge.crm.errors import CrmError
from bridge.crm.telephony import CrmEntity, Telephony
from bridge.domain.events import CrmClient

log = structlog.get_logger(__name__)

PREFERENCE = ("CONTACT", "COMPANY", "LEAD")
"""When a number belongs to several records, the first kind in this order wins."""


def pick_entity(entities: list[CrmEntity]) -> CrmEntity | None:
    for kind in PREFERENCE:
        for entity in entities:
            if entity.entity_type == kind:
                return entity
    return None


class CrmLookup:
    """``searchCrmEntities`` -> :class:`CrmClient` with the responsible manager and, cheaply, the open deal."""

    def __init__(self, telephony: Telephony, *, with_deal: bool = True) -> None:
        self.telephony = telephony
        self.with_deal = with_deal

    async def lookup_caller(self, phone: str) -> CrmClient | None:
        """None when the number is unknown to the CRM; CRM errors propagate (the core falls back on its own)."""
        if not phone.strip():
            return None
        entity = pick_entity(await self.telephony.search_crm_entities(phone))
        if entity is None:
            return None
        fields = {"NAME": entity.name}
        if entity.assigned_by_id is not None:
            fields["ASSIGNED_BY_ID"] = str(entity.assigned_by_id)
        if entity.timeman_status:
            fields["TIMEMAN_STATUS"] = entity.timeman_status
        if self.with_deal and entity.entity_type in ("CONTACT", "COMPANY"):
            try:
                deal = await self.telephony.deal_for(entity.entity_type, entity.entity_id)
            except CrmError as exc:  # the deal is a nice-to-have; the caller is known without it
                log.warning("crm.lookup_partial", part="deal", code=exc.code)
                deal = None
            if deal is not None:
                for key in ("OPPORTUNITY", "CURRENCY_ID", "STAGE_ID", "TITLE"):
                    if deal.get(key) is not None:
                        fields[key if key != "TITLE" else "DEAL_TITLE"] = str(deal[key])
                if deal.get("ID") is not None:
                    fields["DEAL_ID"] = str(deal["ID"])
        return CrmClient(
            entity_type=entity.entity_type,
            entity_id=entity.entity_id,
            responsible_user_id=entity.assigned_by_id,
            fields=fields,
        )
