"""Plugin SDK for clawgate plugin IPC (control-plane spec §2).

Example::

    plugin = Plugin("dir-integrations", version="1.0.0", capabilities=["integrations"])

    @plugin.handler("integration.install")
    async def install(params: dict) -> dict:
        return {"status": "installed", "version": params["version"]}

    @plugin.on_event("cloud.status")
    async def cloud(payload: dict) -> None: ...

    await plugin.run()  # until plugin.stop()
"""

from ..protocol.ipc.frames import DEFAULT_RETRYABLE
from ..protocol.ipc.framing import MAX_FRAME_BYTES
from ._connection import default_socket_path
from ._errors import NotConnectedError, PluginError
from ._handlers import EventHandler, RequestHandler
from ._plugin import Plugin, PluginState
from ._registration import PROTOCOL_VERSION

__all__ = [
    "DEFAULT_RETRYABLE",
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "EventHandler",
    "NotConnectedError",
    "Plugin",
    "PluginError",
    "PluginState",
    "RequestHandler",
    "default_socket_path",
]
