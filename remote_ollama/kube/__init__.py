"""The Kubernetes side: the API client, the operator, the per-resource proxy's follower."""
