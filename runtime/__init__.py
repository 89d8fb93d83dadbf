"""pyrun: an OCI runtime-spec container runtime, command-line compatible with runc."""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"
