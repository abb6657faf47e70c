"""The canvas host: agent-written pages served to nodes and browsers, with live reload.

`<root>/<agentId>/...` is served at `/<agentId>/...` on its own port (default
127.0.0.1:18793); pages reload when files under the root change. The pure parts decide
(`paths`: URL -> file, `content`: headers and the injected script, `access` and `live`:
the gateway's auth rules for the live-reload socket and writes, `urls`: the URLs nodes
are given); `server.CanvasHost` moves the bytes and `watcher` watches the root.

Nothing is imported here: a gateway with the canvas off loads only `settings`.
"""
