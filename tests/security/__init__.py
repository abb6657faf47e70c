"""The adversarial suite (issue 17): each case an attacker on loopback would try, over real sockets.

- lockout: `test_lockout.py` (every surface, per address and per device),
  `test_channel_webhook_lockout.py`
- origin slots: `test_origin_slots.py`
- scope and role upgrade without the shared secret: `test_scope_upgrade.py`
- nesting bombs on every inbound boundary: `test_nesting_bombs.py`
- slowloris (headers and body), the per-address HTTP cap, bad requests: `test_slow_http.py`
- oversized run input: `test_oversized_run_input.py`
- the CLI talking to the wrong port or an impostor: `test_cli_target.py`
"""
