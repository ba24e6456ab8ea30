"""The pack stage: aligned pieces into HDF5 datasets, one packing core and its tasks.

- :mod:`.core`: collecting pieces, splits, the staging folder, the shard
  writer and the per-piece loop (:func:`~.core.pack_pieces`);
- :mod:`.snippets`: sheet and spectrogram snippet pairs
  (:func:`~.snippets.pack_workdir`, ``msmd-prep pack``);
- :mod:`.score_following`: staff images, excerpts ending at the onset and
  bucket targets (:func:`~.score_following.pack_score_following`,
  ``msmd-prep pack --task score-following``).
"""
