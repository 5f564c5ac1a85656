"""VMAT plugin: knowledge-distilled dose engine for prostate VMAT."""
