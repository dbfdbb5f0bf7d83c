"""Everything that talks to the Hetzner API: session, catalog checks, labels, infrastructure."""
