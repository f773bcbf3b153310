"""HTTP routes, one module per area; each handler validates, calls the core, and shapes the reply."""
