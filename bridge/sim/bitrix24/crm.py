"""CRM contacts, companies, leads and deals: phone search, lead auto-creation, the ``crm.*`` reads."""

from __future__ import annotations

import copy
from typing import Any

from bridge.sim.bitrix24 import filters
from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.directory import Directory
from bridge.sim.bitrix24.errors import RestError
from bridge.sim.bitrix24.params import Params, to_int, to_str
from bridge.sim.bitrix24.phone import normalize_phone, same_phone
from bridge.sim.bitrix24.seed import CrmEntity, Deal, Seed
from bridge.sim.bitrix24.timefmt import iso

ENTITY_TYPES = ("CONTACT", "COMPANY", "LEAD")
_LEAD_FIELDS = ("ID", "TITLE", "ASSIGNED_BY_ID", "STATUS_ID", "STATUS_SEMANTIC_ID", "SOURCE_ID")
LEAD_SEMANTICS = {"CONVERTED": "S", "JUNK": "F"}
"""STATUS_ID -> STATUS_SEMANTIC_ID for the closed statuses; every other status is in progress (P)."""
_DEAL_FIELDS = ("ID", "TITLE", "CONTACT_ID", "COMPANY_ID", "ASSIGNED_BY_ID", "STAGE_ID", "CLOSED", "OPPORTUNITY")


class Crm:
    """CRM records; leads created by calls are added here and forgotten on reset."""

    def __init__(self, seed: Seed, created_at: float) -> None:
        self._seed = seed
        self._created_at = created_at
        self.entities: dict[str, dict[int, CrmEntity]] = {}
        self.deals: dict[int, Deal] = {}
        self.activity_count = 0
        self.directory: Directory | None = None
        """Set by the core: who may be made responsible."""
        self.reset()

    def reset(self) -> None:
        self.entities = {
            "CONTACT": {e.id: copy.deepcopy(e) for e in self._seed.contacts},
            "COMPANY": {e.id: copy.deepcopy(e) for e in self._seed.companies},
            "LEAD": {e.id: copy.deepcopy(e) for e in self._seed.leads},
        }
        self.deals = {d.id: copy.deepcopy(d) for d in self._seed.deals}
        self.activity_count = 0

    def get(self, kind: str, entity_id: int) -> CrmEntity | None:
        return self.entities.get(kind, {}).get(entity_id)

    def search(self, phone: str) -> list[CrmEntity]:
        """Entities with that phone, contacts first, then companies, then leads."""
        return [
            entity
            for kind in ENTITY_TYPES
            for entity in sorted(self.entities[kind].values(), key=lambda e: e.id)
            if any(same_phone(phone, own) for own in entity.phones)
        ]

    def create_lead(
        self, phone: str, assigned_by: int, call_id: str | None, incoming: bool, source_id: str = ""
    ) -> CrmEntity:
        leads = self.entities["LEAD"]
        lead_id = max(leads, default=0) + 1
        direction = "Incoming call from" if incoming else "Outgoing call to"
        lead = CrmEntity(
            kind="LEAD",
            id=lead_id,
            title=f"{direction} {normalize_phone(phone)}",
            phones=[normalize_phone(phone)],
            assigned_by=assigned_by,
            created_by_call=call_id,
            source_id=source_id or "CALL",
            user_fields={uf.name: uf.value for uf in self._seed.lead_user_fields},
        )
        leads[lead_id] = lead
        return lead

    def assign_created(self, call_id: str, user_id: int) -> None:
        """Entities auto-created during a call take the finishing user as responsible (CORE-VOX)."""
        for entity in self.entities["LEAD"].values():
            if entity.created_by_call == call_id:
                entity.assigned_by = user_id

    def new_activity(self) -> int:
        self.activity_count += 1
        return 7000 + self.activity_count

    def created_leads(self) -> list[dict[str, Any]]:
        seeded = {lead.id for lead in self._seed.leads}
        return [
            self.entity_row(lead) | {"CALL_ID": lead.created_by_call}
            for lead in self.entities["LEAD"].values()
            if lead.id not in seeded
        ]

    def entity_row(self, entity: CrmEntity) -> dict[str, Any]:
        row: dict[str, Any] = {"ID": str(entity.id)}
        if entity.kind == "COMPANY":
            row["TITLE"] = entity.title
        else:
            row.update(NAME=entity.name, SECOND_NAME="", LAST_NAME=entity.last_name)
        if entity.kind == "LEAD":
            semantic = LEAD_SEMANTICS.get(entity.status_id, "P")
            row.update(TITLE=entity.title, STATUS_ID=entity.status_id, STATUS_SEMANTIC_ID=semantic,
                       SOURCE_ID=entity.source_id)  # fmt: skip
            row.update({uf.name: [] if uf.multiple else None for uf in self._seed.lead_user_fields})
            row.update(copy.deepcopy(entity.user_fields))
        row.update(
            HAS_PHONE="Y" if entity.phones else "N",
            PHONE=[
                {"ID": str(entity.id * 10 + n), "VALUE_TYPE": "WORK", "VALUE": value, "TYPE_ID": "PHONE"}
                for n, value in enumerate(entity.phones)
            ],
            ASSIGNED_BY_ID=str(entity.assigned_by),
            CREATED_BY_ID="1",
            DATE_CREATE=iso(self._created_at),
        )
        return row

    def deal_row(self, deal: Deal) -> dict[str, Any]:
        return {
            "ID": str(deal.id),
            "TITLE": deal.title,
            "STAGE_ID": deal.stage_id,
            "CLOSED": "Y" if deal.closed else "N",
            "OPPORTUNITY": f"{deal.opportunity:.2f}",
            "CURRENCY_ID": deal.currency,
            "CONTACT_ID": str(deal.contact_id) if deal.contact_id else None,
            "COMPANY_ID": str(deal.company_id) if deal.company_id else "0",
            "ASSIGNED_BY_ID": str(deal.assigned_by),
            "DATE_CREATE": iso(self._created_at),
        }

    def methods(self) -> list[MethodSpec]:
        return [
            MethodSpec("crm.contact.get", self._getter("CONTACT")),
            MethodSpec("crm.company.get", self._getter("COMPANY")),
            MethodSpec("crm.lead.get", self._getter("LEAD")),
            MethodSpec("crm.lead.list", self._lead_list),
            MethodSpec("crm.lead.update", self._lead_update),
            MethodSpec("crm.deal.get", self._deal_get),
            MethodSpec("crm.deal.list", self._deal_list),
        ]

    def _getter(self, kind: str) -> Any:
        async def handler(caller: Caller, params: Params) -> Reply:
            entity = self.get(kind, _entity_id(params))
            if entity is None:
                raise RestError("Not found", "", 400)
            return Reply(self.entity_row(entity))

        return handler

    async def _lead_list(self, caller: Caller, params: Params) -> Reply:
        """Leads by filter, 50 a page from ``start``, with ``total`` (CORE-REST list methods)."""
        criteria = params.get("FILTER")
        rows = [self.entity_row(lead) for lead in sorted(self.entities["LEAD"].values(), key=lambda e: e.id)]
        if isinstance(criteria, dict):
            rows = [row for row in rows if filters.matches(row, criteria, _LEAD_FIELDS)]
        chunk, total, following = filters.page(rows, params.get("START"))
        return Reply(chunk, total, following)

    async def _lead_update(self, caller: Caller, params: Params) -> Reply:
        """Only ASSIGNED_BY_ID and STATUS_ID are modelled; the responsible must be an active user."""
        lead = self.get("LEAD", _entity_id(params))
        if lead is None:
            raise RestError("Not found", "", 400)
        raw = params.get("FIELDS")
        fields = {str(k).upper(): v for k, v in raw.items()} if isinstance(raw, dict) else {}
        if "ASSIGNED_BY_ID" in fields:
            user = to_int(fields["ASSIGNED_BY_ID"], 0)
            if self.directory is not None and self.directory.active_user(user) is None:
                raise RestError(f"Responsible user {user} not found", "", 400)
            lead.assigned_by = user
        if "STATUS_ID" in fields:
            lead.status_id = to_str(fields["STATUS_ID"])
        return Reply(True)

    def add_lead(self, phone: str, assigned_by: int, status_id: str = "NEW") -> CrmEntity:
        """A lead made outside the bridge's calls (a web form, a manager): for workload counts."""
        lead = self.create_lead(phone, assigned_by, None, True)
        lead.status_id = status_id
        return lead

    def fill_lead(self, lead_id: int, **fields: Any) -> None:
        """Set UF_ fields of a lead, as an employee or an automation robot does (enumerations by item ID)."""
        self.entities["LEAD"][lead_id].user_fields.update(fields)

    def merge_lead(self, lead_id: int) -> None:
        """The CRM's duplicate merge folds ``lead_id`` into an older lead: the id is gone."""
        self.entities["LEAD"].pop(lead_id, None)

    async def _deal_get(self, caller: Caller, params: Params) -> Reply:
        deal = self.deals.get(_entity_id(params))
        if deal is None:
            raise RestError("Not found", "", 400)
        return Reply(self.deal_row(deal))

    async def _deal_list(self, caller: Caller, params: Params) -> Reply:
        criteria = params.get("FILTER")
        rows = [self.deal_row(deal) for deal in sorted(self.deals.values(), key=lambda d: d.id)]
        if isinstance(criteria, dict):
            rows = [row for row in rows if filters.matches(row, criteria, _DEAL_FIELDS)]
        order = params.get("ORDER")
        if isinstance(order, dict) and order:
            field, direction = next(iter(order.items()))
            rows = filters.sort_rows(rows, str(field).upper(), to_str(direction).upper() == "DESC")
        chunk, total, following = filters.page(rows, params.get("START"))
        return Reply(chunk, total, following)


def _entity_id(params: Params) -> int:
    entity_id = to_int(params.get("ID"), 0)
    if entity_id <= 0:
        raise RestError("ID is not defined or invalid.", "", 400)
    return entity_id
