"""NumPy reference implementations: forward passes and hand-written backpropagation through time.

One file per cell (rnn.py, lstm.py, gru.py; lnlstm.py and peephole.py for rnnlab.variants), each a
single layer run over a batch of sequences, with the same parameter layout as rnnlab.cells and
torch.nn. They are the test oracle that the PyTorch code is checked against, and the shortest
readable account of BPTT:

    forward(x, state0, params) -> (hs, final_state, cache)
        x (B, T, I), state0 tuple of (B, H), params {weight_ih, weight_hh, bias_ih, bias_hh}
        hs (B, T, H): every step's h_t
    backward(d_hs, d_final_state, cache) -> grads
        d_hs (B, T, H) = dL/dh_t from the outputs, d_final_state = dL/d(final state)
        grads: {weight_ih, weight_hh, bias_ih, bias_hh, x, state0}, same shapes as the inputs

The backward pass walks t = T-1 ... 0, adding to dL/dh_t the gradient arriving from step t+1
(the "through time" part), and accumulating each weight's gradient over all steps: the weights
are shared across time, so their gradient is the sum of every step's contribution.
"""

from rnnlab.reference import gru, lnlstm, lstm, peephole, rnn

MODULES = {"rnn": rnn, "lstm": lstm, "gru": gru, "lnlstm": lnlstm, "peephole": peephole}

__all__ = ["MODULES", "gru", "lnlstm", "lstm", "peephole", "rnn"]
