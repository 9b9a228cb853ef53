"""The operators' live status page: ``model`` (pure: what is shown), ``render`` (HTML), ``sources`` (reads the
daemon), ``web`` (the aiohttp routes, live updates by Server-Sent Events); assets in ``static/``."""
