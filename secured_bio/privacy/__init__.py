"""Shared privacy primitives that the domain modules and pilots build on.

Sub-packages (each imported on demand; importing ``secured_bio.privacy`` imports nothing
heavy):

``smpc``
    Secure multi-party computation: parties as OS processes over CrypTen/torch.distributed,
    secure aggregation (``secure_sum``...), the CrypTen compatibility layer.
``federated``
    Federated learning with Flower: thin apps, FedAvg/FedProx, SecAgg+ secure aggregation
    and differential privacy as mods and strategy wrappers; the simulation and deployment
    engines; the centralized-vs-federated evaluation harness.
``anonymize``
    De-identification of tables: generalisation and suppression to k-anonymity,
    l-diversity, t-closeness.
``synthetic``
    Synthetic data generators.
``assess``
    Assessment of models and released data: the fairness / bias audit of a model (per site
    and subgroup, equalized-odds and demographic-parity gaps); privacy risk assessment of
    released data (singling out, linkability, inference).
"""
