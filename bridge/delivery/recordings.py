"""Where a call's recording comes from: Asterisk's recording directory on this host, or ARI.

``GET /ari/recordings/stored/{name}/file`` serves a stored recording (404 when there is none). The spool
directory is tried first so that ``b24-bridge replay`` works on the PBX host without ARI.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import aiohttp
import structlog

from bridge.config import AsteriskSettings
from bridge.delivery.loop import RecordingLoader

log = structlog.get_logger(__name__)

SPOOL = Path("/var/spool/asterisk/recording")
EXTENSIONS = ("", ".wav", ".mp3", ".WAV")


def _from_spool(directories: Sequence[Path], name: str) -> bytes | None:
    if not name or ".." in Path(name).parts:
        return None
    for base in directories:
        for ext in EXTENSIONS:
            path = base / f"{name}{ext}"
            if path.is_file():
                return path.read_bytes()
    return None


def recording_loader(
    asterisk: AsteriskSettings | None,
    *,
    directories: Sequence[Path] = (SPOOL,),
    timeout: float = 10.0,
) -> RecordingLoader:
    """A loader that reads ``directories`` first, then asks ARI (when ``asterisk`` is given).

    None means the recording does not exist; a failure to reach ARI raises ``OSError`` (try again later).
    """

    async def load(name: str) -> bytes | None:
        content = _from_spool(directories, name)
        if content is not None or asterisk is None:
            return content
        url = f"{asterisk.ari_url}/ari/recordings/stored/{quote(name, safe='')}/file"
        credentials = f"{asterisk.ari_user}:{asterisk.ari_password.reveal()}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode("ascii")}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.get(url, headers=headers) as response,
            ):
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise OSError(f"ARI answered HTTP {response.status} for recording {name!r}")
                return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OSError(f"ARI is not reachable for recording {name!r}: {type(exc).__name__}") from None

    return load
