"""The headless node host (`clawgate node run`): this machine's commands, offered to a gateway.

It connects with `role: "node"` and its own Ed25519 identity, kept under
`<clawgate home>/node/`, apart from any gateway's state; see `host.NodeHost`.
"""

from .commands import COMMANDS, CommandError, NodeCommands
from .config import NodeConfig, NodeConfigError, NodePaths, load_node_config, save_gateway_target
from .host import NodeHost, NodeHostError, NodeHostOptions

__all__ = [
    "COMMANDS",
    "CommandError",
    "NodeCommands",
    "NodeConfig",
    "NodeConfigError",
    "NodeHost",
    "NodeHostError",
    "NodeHostOptions",
    "NodePaths",
    "load_node_config",
    "save_gateway_target",
]
