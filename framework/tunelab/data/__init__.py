"""The data engine: collect → clean → annotate → augment → balance → split, with a
per-row ledger and a content-addressed cache of the prepared splits."""
