"""De-identification of tables, images and genomic files."""
