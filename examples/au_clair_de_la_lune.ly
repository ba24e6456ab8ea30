\version "2.24.0"
\header {
  title = "Au clair de la lune"
  composer = "Traditional (France)"
  copyright = "Public domain. Typeset for msmd-prep."
  tagline = ##f
}
\score {
  \new Staff \relative c'' {
    \time 4/4 \tempo 4 = 96
    \repeat unfold 2 { g4 g g a | b2 a | g4 b a a | g1 | }
    a4 a a a | e2 e | a4 g fis e | d1 |
    g4 g g a | b2 a | g4 b a a | g1~ | g2. r4 \bar "|."
  }
  \layout { }
}
