"""Network parts the task modules assemble: word and character embeddings, pretrained vectors, the decoder and
its searches, the language-model networks. Cells, encoders and heads have their own packages."""
