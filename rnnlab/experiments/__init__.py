"""Experiments: classic claims about recurrent networks, measured. They train small models of their
own (through the same models and Trainer) and report tables and plots; they make no checkpoints.

    hello       the textbook toy: "hell" -> "ello"
    gradients   gradient flow through time, spectral radius, clipping
    memory      how far back each cell can remember
    exposure    teacher forcing against scheduled sampling
"""
