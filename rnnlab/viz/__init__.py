"""Seeing inside: the hidden-cell explorer page, training curves, gradient-flow and attention plots."""
