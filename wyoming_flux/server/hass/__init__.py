"""Home Assistant over its WebSocket API: the names and aliases that become keyterms, and its intent
recogniser as the completion check of early answers."""
