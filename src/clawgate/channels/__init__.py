"""Messaging channels: one adapter interface, the layer behind it, one module per platform.

Read `base.py` first: it is the interface an adapter implements and the how-to for adding a
channel. The rest, in the order a message flows:

- `settings.py`   `[channels.*]` config -> one `AccountConfig` per account (secrets resolved)
- `registry.py`   channel name -> adapter class and pip extra (imported only when configured)
- `manager.py`    `AccountRunner`: one account as a supervised task (state, backoff, stalls)
- `pipeline.py`   inbound: dedupe -> access policy -> mention -> debounce -> session -> run
- `policy.py`     pure access decisions and DM pairing codes
- `routing.py`    pure session keys, reply targets, untrusted-content wrapping
- `outbound.py`   chunked, rate-limited, retried, recorded delivery
- `chunking.py`   pure text splitting at the platform's limit (code fences kept whole)
- `supervision.py` pure account states and restart backoff
- `runtime.py`    `ChannelRuntime`: all of the above for one gateway
- `telegram.py`   the Telegram adapter (python-telegram-bot; extra `clawgate[telegram]`),
                  reading updates in `telegram_protocol.py`, PTB's aiohttp backend in
                  `telegram_request.py`
- `matrix.py`     the Matrix adapter (matrix-nio; extra `clawgate[matrix]`), its event
                  rules in `matrix_protocol.py`
- `slack.py`      the Slack adapter (slack-sdk, Socket Mode; extra `clawgate[slack]`)
- `discord.py`    the Discord adapter (our aiohttp gateway + REST client; rules in
                  `discord_protocol.py`)
- `whatsapp.py`   the WhatsApp adapter (Cloud API over aiohttp: webhooks in, Graph out),
                  its wire rules in `whatsapp_protocol.py`
- `whatsapp_web.py` personal WhatsApp, a linked device (neonize; extra `clawgate[whatsapp-web]`),
                  with `whatsapp_watch.py` (pure reconnect policy), `qr_login.py`, `session_lock.py`
- `imessage.py`   the iMessage adapter (a BlueBubbles server's REST API and webhooks over
                  aiohttp), its message rules in `imessage_protocol.py`
- `signal.py`     the Signal adapter (signal-cli's HTTP daemon: JSON-RPC + SSE; `sse.py`
                  decodes the event stream), its envelope rules in `signal_protocol.py`
- `webchat.py`    the WebChat adapter: built in, no external server (its docstring says
                  what an adapter means then)

This package sits below `gateway/`: it knows the agent only as a `TurnRunner`
(`pipeline.py`), which `gateway/channel_service.py` implements on the agent service.
"""
