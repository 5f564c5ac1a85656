"""Qt-free compute modules of the VMAT plugin."""
