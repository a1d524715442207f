"""What a RemoteOllama may say: the field table, the model, its parsing, names and vocabulary (pure)."""
