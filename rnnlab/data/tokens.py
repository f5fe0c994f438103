"""Special tokens and the ignore index, owned by the data layer and shared by every model.

Word and subword vocabularies reserve the first ids::

    PAD = 0    padding (embedding rows of id 0 stay zero: ``padding_idx``)
    UNK = 1    any word outside the vocabulary
    BOS = 2    start of a target sequence (what the decoder reads first)
    EOS = 3    end of a sequence

and per-step targets use ``IGNORE`` (-100, torch's default ``ignore_index``) where a step has no
label: padding, unlabelled frames. Such steps count in neither the loss nor the scores.
"""

PAD, UNK, BOS, EOS = 0, 1, 2, 3
PAD_WORD, UNK_WORD, BOS_WORD, EOS_WORD = "<pad>", "<unk>", "<s>", "</s>"
IGNORE = -100
