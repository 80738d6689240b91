"""Cross-checks of jaxunsup against the seeds' PyTorch models (see parity/README.md)."""
