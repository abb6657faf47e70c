"""Static web assets the gateway serves (the WebChat page), shipped as package data."""

__all__: list[str] = []
