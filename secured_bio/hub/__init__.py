"""The Innohub: data discovery, access requests and jobs across sites (docs/hub_design.md)."""
