"""State cache and owner-token locks: in-process and Redis implementations of the ports."""
