"""The WebSocket/HTTP server: connections, method dispatch, broadcasts, health."""
