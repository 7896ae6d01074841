"""Special tokens and the ignored target id: one definition for every DataModule, task and test."""

PAD = "<pad>"  # fills the short rows of a batch
UNK = "<unk>"  # stands for every word the vocabulary lacks
BOS = "<bos>"  # what a language model or a decoder reads before the first word
EOS = "<eos>"  # ends a sentence: predicted by language models and decoders, read by translation encoders

# Targets that the losses and metrics skip: padding, <bos> (never predicted), the steps of the copy task with
# nothing to predict, text read without gold labels. PyTorch's cross_entropy skips -100 by default.
IGNORE_INDEX = -100
