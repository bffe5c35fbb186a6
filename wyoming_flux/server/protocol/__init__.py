"""The Wyoming protocol side: one client connection (its bytes, limits and fair share of the loop), the wire
format, each command's events turned into the shared command runner's calls, and the Wyoming fallback client."""
