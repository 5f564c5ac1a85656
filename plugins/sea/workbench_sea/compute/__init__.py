"""Qt-free compute modules of the SEA plugin."""
