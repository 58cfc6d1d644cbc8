"""Downstream evaluation of pre-trained backbones (labelled datasets, fine-tuning, probes)."""
