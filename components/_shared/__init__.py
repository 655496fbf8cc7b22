"""Pieces every technique shares: the Keras bootstrap, model I/O, data input, errors and atomic outputs."""
