"""The hub's routes, one module per resource (thin: permission, service call, JSON)."""
