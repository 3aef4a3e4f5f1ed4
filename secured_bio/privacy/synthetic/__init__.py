"""Synthetic data: tables, vital-sign series and images, with fidelity/utility/privacy evaluation."""
