"""Real performances (human MIDI, audio recordings) aligned to their scores, note head by note head.

Modules: :mod:`features` (chroma and DLNCO features of note lists and audio),
:mod:`dtw` (MrMsDTW warping), :mod:`midi_align` (note matching),
:mod:`audio_align` (onsets in a recording), :mod:`simulate` (performances
with a known truth, for tests and benchmarks).
"""
