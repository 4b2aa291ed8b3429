"""Shared helpers of the built-in components that are not components themselves: derived
rows and per-row randomness (``rows``), MinHash near-duplicate search (``minhash``),
the WordNet reader (``wordnet``), per-class loss weights (``class_weights``), what the
training methods and evaluators read from a split (``train_inputs``) and the check of a
setting with named choices (``choices``)."""
