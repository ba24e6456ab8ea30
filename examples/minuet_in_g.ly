\version "2.24.0"
\header {
  title = "Minuet in G"
  composer = "Christian Petzold (BWV Anh. 114)"
  copyright = "Public domain. Typeset for msmd-prep."
  tagline = ##f
}
upper = \relative c'' {
  \clef treble \key g \major \time 3/4 \tempo 4 = 120
  \repeat volta 2 {
    d4 g,8 a b c | d4 g, g | e'4 c8 d e fis | g4 g, g |
    c4 d8 c b a | b4 c8 b a g | fis4 g8 a b g |
  }
  \alternative { { a2. } { a2 r4 } }
}
lower = \relative c' {
  \clef bass \key g \major \time 3/4
  \repeat volta 2 {
    <g b d>2 a4 | b2. | c2. | b2. |
    a2. | g2. | d'4 b g |
  }
  \alternative { { d'4 d, c' } { d2 r4 } }
}
\score {
  \new PianoStaff << \new Staff \upper \new Staff \lower >>
  \layout { }
  \midi { }
}
