"""Pitch spelling tables of the MIDI writer."""

#: Major key tonic -> sharps (> 0) or flats (< 0).
MAJOR_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7, "D#": 9, "G#": 8,
                "A#": 10, "F": -1,
                "Bb": -2, "Eb": -3, "Ab": -4, "Db": -5, "Gb": -6, "Cb": -7}
