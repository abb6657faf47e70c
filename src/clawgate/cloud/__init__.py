"""The daemon's cloud side: desired state, the reconciliation engine and (later) the link."""
