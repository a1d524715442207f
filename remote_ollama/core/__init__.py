"""The pure decisions: the lifecycle round, cost, placement, backoff."""
