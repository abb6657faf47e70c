"""The Control UI page rules: the stamped index, its script hashes, its policy, lazy loading."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys

from clawgate.gateway.control_ui import control_ui_csp, inline_script_hashes, stamp_index

PAGE = (
    '<html lang="en"><head><link href="./favicon.svg"><script>boot()</script>'
    '<script type="module" src="./assets/a.js"></script></head></html>'
)


def test_stamp_index_adds_the_base_path_and_makes_relative_links_absolute() -> None:
    stamped = stamp_index(PAGE, "/control")
    assert stamped.startswith('<html data-openclaw-control-ui-base-path="/control" lang="en">')
    assert 'href="/control/favicon.svg"' in stamped
    assert 'src="/control/assets/a.js"' in stamped


def test_only_inline_scripts_are_hashed() -> None:
    digest = base64.b64encode(hashlib.sha256(b"boot()").digest()).decode()
    assert inline_script_hashes(PAGE) == [f"'sha256-{digest}'"]


def test_the_policy_names_the_pages_own_socket_and_rejects_a_forged_host() -> None:
    policy = control_ui_csp("127.0.0.1:18789", tls=True, script_hashes=["'sha256-x'"])
    assert "script-src 'self' 'sha256-x'" in policy
    assert "connect-src 'self' wss://127.0.0.1:18789 data:" in policy
    forged = control_ui_csp("evil; script-src *", tls=False, script_hashes=[])
    assert "evil" not in forged


def test_the_gateway_does_not_load_the_control_ui_module_unless_configured() -> None:
    code = (
        "import sys, clawgate.cli.main, clawgate.gateway.server, clawgate.service.runtime;"
        "print('clawgate.gateway.control_ui' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
