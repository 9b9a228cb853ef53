"""``telephony.externalCall.attachRecord`` (base64, URL and upload modes), the upload endpoint, and
``telephony.call.attachTranscription``."""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlparse

import aiohttp
import structlog

from bridge.sim.bitrix24 import errors
from bridge.sim.bitrix24.calls import Call, CallRegistry, Upload
from bridge.sim.bitrix24.context import Caller, MethodSpec, Reply
from bridge.sim.bitrix24.errors import CALL_NOT_IN_STATISTIC, RestError
from bridge.sim.bitrix24.oauth import Identity
from bridge.sim.bitrix24.params import Params, as_list, to_int, to_str

log = structlog.get_logger(__name__)

_WHITESPACE = re.compile(r"\s+")
DOWNLOAD_TIMEOUT = 10.0


def _check_filename(name: str) -> None:
    if not name:
        raise RestError("File name is empty")
    if name.rsplit(".", 1)[-1].lower() not in ("wav", "mp3") or "." not in name:
        raise RestError("Wrong file extension. Only wav and mp3 are allowed")


def decode_content(text: str) -> bytes:
    """Strict base64 as PHP's ``base64_decode($s, true)`` (whitespace allowed)."""
    if not text:
        raise RestError("File content is empty.")
    try:
        content = base64.b64decode(_WHITESPACE.sub("", text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RestError("File content is not properly encoded. Base64 encoding is expected.") from exc
    if not content:
        raise RestError("File content is empty.")
    return content


class Records:
    def __init__(
        self,
        calls: CallRegistry,
        identity: Identity,
        session: Callable[[], Awaitable[aiohttp.ClientSession]],
        count: Callable[[str], None],
    ) -> None:
        self._calls = calls
        self._identity = identity
        self._session = session
        self._count = count
        self.uploads: dict[str, Upload] = {}

    def methods(self) -> list[MethodSpec]:
        return [
            MethodSpec("telephony.externalCall.attachRecord", self._attach_record),
            MethodSpec("telephony.call.attachTranscription", self._attach_transcription),
        ]

    def _finished(self, params: Params) -> Call:
        call = self._calls.finished(to_str(params.get("CALL_ID")).strip())
        if call is None:
            raise RestError(CALL_NOT_IN_STATISTIC, "", 400)
        return call

    async def _attach_record(self, caller: Caller, params: Params) -> Reply:
        call = self._finished(params)
        url = to_str(params.get("RECORD_URL")).strip()
        if url:  # RECORD_URL wins over FILENAME (CORE-VOX)
            name = to_str(params.get("FILENAME")).strip() or posixpath.basename(urlparse(url).path)
            _check_filename(name)
            content = await self._download(url)
            return Reply({"FILE_ID": self._store(call, name, content)})
        if "FILENAME" not in params:
            raise RestError(
                "Required parameters are not set. Request should contain either URL or FILENAME parameter", "", 400
            )
        name = to_str(params.get("FILENAME")).strip()
        _check_filename(name)
        if "FILE_CONTENT" in params:
            content = decode_content(to_str(params.get("FILE_CONTENT")))
            return Reply({"FILE_ID": self._store(call, name, content)})
        if caller.in_batch:  # file uploads are excluded from batch
            raise errors.batch_not_allowed()
        token = "telephony|" + secrets.token_urlsafe(24)
        self.uploads[token] = Upload(call.call_id, name)
        if caller.auth_kind == "webhook":
            base = f"{self._identity.base_url}/rest/{caller.user_id}/{caller.webhook_code}/upload.json?"
        else:
            base = f"{self._identity.base_url}/rest/upload.json?auth={caller.access_token}&"
        return Reply({"uploadUrl": f"{base}token={quote(token, safe='')}", "fieldName": "file"})

    def _store(self, call: Call, name: str, content: bytes) -> int:
        replaced = call.record is not None
        file_id = self._calls.attach_record(call, name, content, self._identity.base_url)
        self._count("records_attached")
        log.info("sim.record_attached", b24_call_id=call.call_id, name=name, size=len(content), replaced=replaced)
        return file_id

    async def _download(self, url: str) -> bytes:
        """Fetch RECORD_URL (certificate checks off, as CORE-VOX does); errors in Bitrix24's words."""
        try:
            session = await self._session()
            timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)
            async with session.get(url, timeout=timeout, ssl=False) as response:
                if response.status != 200:
                    raise RestError(f"Server returns HTTP error code {response.status}")
                content = await response.read()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RestError(f"Could not download record: {type(exc).__name__}", "SERVER_NOT_AVAILABLE") from exc
        if not content:
            raise RestError("File content is empty.")
        return content

    def receive_upload(self, token: str, content: bytes | None) -> dict[str, Any]:
        """The multipart POST to an ``uploadUrl``; a token works once."""
        upload = self.uploads.get(token)
        if upload is None or upload.used:
            raise RestError("Upload token is not valid", "ERROR_UPLOAD", 400)
        if not content:
            raise RestError("File content is empty.")
        call = self._calls.finished(upload.call_id)
        if call is None:
            raise RestError(CALL_NOT_IN_STATISTIC, "", 400)
        upload.used = True
        return {"FILE_ID": self._store(call, upload.filename, content)}

    async def _attach_transcription(self, caller: Caller, params: Params) -> Reply:
        call_id = to_str(params.get("CALL_ID")).strip()
        if not call_id:
            raise RestError("CALL_ID should be set")
        messages = params.get("MESSAGES")
        if not isinstance(messages, list | dict):
            raise RestError("MESSAGES should be an array")
        for index, message in enumerate(as_list(messages)):
            item = message if isinstance(message, dict) else {}
            item = {str(key).upper(): value for key, value in item.items()}
            if to_str(item.get("SIDE")) not in ("Client", "User"):
                raise RestError(f"MESSAGES[{index}][SIDE] should be either Client or User")
            if to_int(item.get("START_TIME"), -1) < 0:
                raise RestError(f"MESSAGES[{index}][START_TIME] should be greater or equal to zero")
            if to_int(item.get("STOP_TIME"), 0) <= 0:
                raise RestError(f"MESSAGES[{index}][STOP_TIME] should be greater than zero")
            if not to_str(item.get("MESSAGE")).strip():
                raise RestError(f"MESSAGES[{index}][MESSAGE] is empty")
        call = self._calls.finished(call_id)
        if call is None:
            raise RestError(f"Call {call_id} is not found. Is it finished?")
        return Reply({"TRANSCRIPT_ID": self._calls.attach_transcript(call)})
