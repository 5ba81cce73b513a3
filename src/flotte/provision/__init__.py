"""Turning a machine into a TLS-protected Docker host, whatever made the machine."""
