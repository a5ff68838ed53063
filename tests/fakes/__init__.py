"""Stand-ins for servers that cannot run here (each says what it imitates)."""
