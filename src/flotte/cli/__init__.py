"""Command-line interface: parse, call the service layer, render."""
