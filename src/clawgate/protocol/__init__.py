"""Pure wire rules of the gateway protocol: no I/O, testable without sockets."""
