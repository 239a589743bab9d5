"""Metrics that OpenMMLab lacks."""
