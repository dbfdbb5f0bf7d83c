"""Everything that talks to the Hetzner API: session, lookups, capacity, labels, infrastructure."""
