"""One reconcile round's I/O around the pure decision, shared by the operator and standalone."""
