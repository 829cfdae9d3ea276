"""Personas: LoRA fine-tuning with framing-conditioned loss attenuation, scoring, calibration."""
