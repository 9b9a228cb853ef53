"""b24-bridge: an asyncio daemon that connects an Asterisk PBX to Bitrix24 CRM telephony."""

__version__ = "0.1.0"
