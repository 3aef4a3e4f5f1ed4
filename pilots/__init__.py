"""Built-in pilot plugins of secured_bio (installed as the package ``secured_bio_pilots``)."""
