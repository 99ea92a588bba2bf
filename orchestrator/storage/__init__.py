"""Storage: locations (paths and URIs), the artifact store and leases, result rows, staging."""
