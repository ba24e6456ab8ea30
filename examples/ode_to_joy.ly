\version "2.24.0"
\header {
  title = "Ode to Joy"
  composer = "Ludwig van Beethoven (Symphony No. 9, theme)"
  copyright = "Public domain. Typeset for msmd-prep."
  tagline = ##f
}
melody = \relative c' {
  \time 4/4 \tempo 4 = 108
  \repeat volta 2 {
    e4 e f g | g f e d | c c d e |
  }
  \alternative { { e4. d8 d2 } { d4. c8 c2 } }
  d4 d e c | d e8 f e4 c | d e8 f e4 d | c d g,2 |
  e'4 e f g | g f e d | c c d e | d4. c8 c2 \bar "|."
}
bass = \relative c {
  \clef bass \time 4/4
  \repeat volta 2 { c2 g' | c, g' | a f | }
  \alternative { { g2 g, } { g'2 c, } }
  g'2 c, | g' c, | g' c, | <e g>2 g, |
  c2 g' | c, g' | a f | g c, \bar "|."
}
\score {
  \new PianoStaff << \new Staff \melody \new Staff \bass >>
  \layout { }
}
