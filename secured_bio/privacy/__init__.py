"""Shared privacy primitives that the domain modules and pilots build on.

Sub-packages (each imported on demand; importing ``secured_bio.privacy`` imports nothing
heavy):

``smpc``
    Secure multi-party computation: parties as OS processes over CrypTen/torch.distributed,
    secure aggregation (``secure_sum``...), the CrypTen compatibility layer.
``federated``
    Federated learning with Flower: thin apps, secure aggregation and differential privacy
    as mods and strategy wrappers.
``anonymize``
    De-identification of tables: generalisation and suppression to k-anonymity,
    l-diversity, t-closeness.
``synthetic``
    Synthetic data generators.
``assess``
    Privacy risk assessment of released data (singling out, linkability, inference).
"""
