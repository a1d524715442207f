"""What runs on the VM: its cloud-init, its PKI, the pinned Ollama release."""
