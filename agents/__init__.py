"""Agent processes: the runtime (client side of the protocol) and the algorithms."""
