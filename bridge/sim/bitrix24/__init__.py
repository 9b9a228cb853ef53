"""A protocol-level Bitrix24 REST simulator (aiohttp) for the bridge's tests, demo and benchmarks.

It follows ``/work/shared/reference/bitrix24-rest.md`` and its emulator checklist: OAuth and inbound-webhook
URLs, the ``result``/``time`` and ``error``/``error_description`` envelopes, the per-portal leaky bucket
(503 ``QUERY_LIMIT_EXCEEDED``), the per-method operating budget (429 ``OPERATION_TIME_LIMIT``, off by default),
``batch`` with ``$result[...]`` references, ``telephony.externalCall.*``/``externalLine.*``, statistics,
directory and CRM reads, event delivery (online POSTs and the offline queue), and injected faults. A lead a call
creates takes the register's ``CRM_SOURCE`` as ``SOURCE_ID`` (else CALL) and the seed's ``lead_user_fields`` at
their defaults, shown by ``crm.lead.get`` as a portal does (enumerations as item IDs, multiple fields as lists).
``GET /_sim/state`` shows what happened; ``POST /_sim/reset|fault|click_to_call|callback_request|install_app|
outbound_webhook|tokens|expire_tokens`` steer it; ``GET /_sim/records/<CALL_ID>`` returns an attached record.

Auth modes as a portal has them: ``event.bind``/``unbind``/``get`` and ``event.offline.*`` answer
``WRONG_AUTH_TYPE`` (403) to an inbound webhook on every portal (rest ``lib/api/event.php``), ``app.info``
``ACCESS_DENIED`` "Application context required"; events reach a webhook user only through an outbound webhook
(``add_outbound_webhook``, made in the UI, with its own application token). ``install_app(url)`` is the local
application's install: its event bindings are dropped, ONAPPINSTALL is posted to ``url`` with the installing user's
token pair and the application token (a new one on each reinstall), as docs ``safe-event-handlers.md`` shows.

Departures from the reference (and guesses where it is silent):

* The OAuth server is the simulator itself (``/oauth/token/``), not ``oauth.bitrix.info``; ``server_endpoint``
  points at it too. ``NO_AUTH_FOUND`` ("Wrong authorization data") is used for any unknown token, where the
  cloud may say ``invalid_token``.
* Event handlers and ``RECORD_URL`` may be on 127.0.0.1 (the cloud refuses local and private addresses).
  Events are sent at once, not through a delayed queue; ``click_to_call`` waits for the deliveries.
  App-bound deliveries carry a fresh access token for the triggering user but no ``refresh_token``;
  outbound-webhook ones only domain/endpoints/member_id and that webhook's application_token. An outbound webhook
  may carry ONEXTERNALCALLSTART, which the docs promise for applications only (older bridges used it so).
* ``WRONG_AUTH_TYPE`` (HTTP 403) is returned through an inbound webhook for register/finish/externalLine.*
  only when ``webhook_allowed_for_telephony=False``; by default webhooks work there (see reference 1.0).
* ``finish`` with ``ADD_TO_CHAT`` (absent or not "0"/"") posts Bitrix24's chat text for the call to the finishing
  user (``state()["chats"]``, :mod:`bridge.sim.bitrix24.chat`); the number is shown as stored, not formatted.
* ``IS_ONLINE`` is a ``LAST_ACTIVITY_DATE`` (ISO, the portal's +03:00) within 1440 s; seed key ``IDLE_MINUTES`` or
  ``set_presence`` set how long ago a user was active. ``deny_scopes("user", "user_brief", "user_basic")`` is an
  app user without the ``user`` scope: ``user.*`` answer 403 ``insufficient_scope`` (other methods are not
  scope-checked).
* ``user.get`` without an ``ACTIVE`` filter lists dismissed users too; only the methods listed above exist
  (others give ``ERROR_METHOD_NOT_FOUND``).
* Telephony permissions are one level per user, "Call statistics — View" (seed key ``CALL_STATISTICS``:
  ``none``/``own``/``department``/``all``; ``set_rights`` or ``POST /_sim/rights`` change it): portal admins see
  every call; other users default to ``own``, the role a fresh portal gives every employee. Without it
  ``voximplant.statistic.get`` is 403 ``ACCESS_DENIED``; with ``own``/``department`` it lists only those users'
  calls. Dismissed users (ACTIVE false) are refused by register/finish ("User is not found or is not active").
* Phones are compared as digits, equal or equal in the last ten digits; ``PHONE_NUMBER`` is stored as digits.
* ``finish`` hides the card of the finishing user only (CORE-VOX). Its result shows ``CALL_START_DATE`` as
  ``{}``, as the docs' example does (a PHP DateTime json-encoded); statistics show the ISO date.
* The "call not found" finish error carries ``ERROR_CORE`` unless ``empty_error_code_fraction`` > 0, when
  that fraction of them carry an empty ``error`` (as in the field report b24-rest-docs#175).
* Unverified texts: "Handler already binded" (empty code) for a repeated ``event.bind``; the upload POST to
  an ``uploadUrl`` answers ``{"result": {"FILE_ID": n}}``; ``tasks.task.add``/``timeman.status`` error texts;
  ``EVENT_ADDITIONAL`` is ``[]`` in offline events. ``batch`` leaves an unresolvable ``$result[...]`` as written
  and prints empty ``result_error``/``result_total``/... as ``[]`` (PHP's empty array).
* Outages close the connection without an answer by default (``outage_mode="502"`` sends nginx's HTML 502).
* ``/_sim/reset`` clears calls, cards, requests, counters, tasks, notifications, created leads and the
  offline queue; it keeps seed data, lines, event bindings, outbound webhooks, installs and tokens.

Built-in seed (``default_seed.json``), a small call centre:

* user 1 Alexander Admin, portal admin, no extension; users 11..16 with UF_PHONE_INNER 1001..1006 and
  mobiles ``+7 916 000-10-0N``: 11 Anna, 12 Boris, 13 Vera, 14 Gleb (clocked out, CLOSED, on long leave),
  15 Dmitry (head of Sales, ext 1005), 16 Elena (head of Support, ext 1006); user 17 Fyodor is dismissed
  (ACTIVE false) but still has ext 1007.
* departments: 1 "Call centre" (UF_HEAD 1), 2 "Sales" (parent 1, UF_HEAD 15; users 11..15),
  3 "Support" (parent 1, UF_HEAD 16; users 16, 17).
* contact 1 Ivan Kuznetsov, ``+7 916 123-45-67`` (79161234567), responsible 12 (ext 1002);
  contact 2 Olga Smirnova, 79035550001, responsible 13, with deal 1 "Fleet contract", OPPORTUNITY 500000 RUB;
  company 1 "Romashka LLC", 74957770000, responsible 14 (clocked out).
"""

from bridge.sim.bitrix24.seed import SeedError
from bridge.sim.bitrix24.simulator import Bitrix24Simulator

__all__ = ["Bitrix24Simulator", "SeedError"]
