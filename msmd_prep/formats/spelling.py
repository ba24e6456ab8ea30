"""Pitch spelling tables shared by the input readers and the MIDI writer."""

#: Note letter -> pitch class (semitones above C).
STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

#: Major key tonic -> sharps (> 0) or flats (< 0).
MAJOR_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7, "D#": 9, "G#": 8,
                "A#": 10, "F": -1,
                "Bb": -2, "Eb": -3, "Ab": -4, "Db": -5, "Gb": -6, "Cb": -7}
