"""The Exoscale adapter: instances, catalogue, security groups, transport."""
