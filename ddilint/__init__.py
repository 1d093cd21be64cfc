"""ddilint: documented-requirement checks for Windows kernel-driver C/C++."""

__version__ = "0.1.0"
