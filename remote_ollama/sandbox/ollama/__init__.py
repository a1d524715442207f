"""A simulated Ollama server."""
