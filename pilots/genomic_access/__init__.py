"""Federated / secure access to genomic data of very large cohorts (pilot ``genomic_access``)."""
