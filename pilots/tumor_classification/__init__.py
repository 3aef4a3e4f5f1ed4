"""Real-time brain tumour classification from fMRI / functional ultrasound connectivity (pilot ``tumor_classification``)."""
