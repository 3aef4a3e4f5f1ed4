"""Logic shared by the hub's routes, pages and command line (routes stay thin)."""
