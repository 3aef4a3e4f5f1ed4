"""Real-time brain tumour classification from fMRI / fUS connectivity (``tumor_classification``)."""
