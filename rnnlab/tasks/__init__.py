"""Tasks: each wires data, a model, the Trainer and checkpoints together for one kind of problem.

The command line calls these functions; so can any Python program.
"""
