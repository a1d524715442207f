"""A simulated Exoscale API (the cloud's test world)."""
