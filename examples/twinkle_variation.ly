\version "2.24.0"
\header {
  title = "Ah vous dirai-je, maman"
  subtitle = "theme with a simple variation"
  composer = "Traditional (France)"
  copyright = "Public domain. Typeset for msmd-prep."
  tagline = ##f
}
upper = \relative c' {
  \time 2/4 \tempo 4 = 100
  c4 c | g' g | a a | g2 | f4 f | e e | d d | c2 |
  \grace { b'16 } c8 c, c c | g''8 g, g g | a'16 g f e d c b a | g2 |
  f'8 f f f | e e e e | d16 e f d e f g e | c2 \bar "|."
}
lower = \relative c {
  \clef bass \time 2/4
  c4 c' | e c | f c | e c | d b | c a | f g | c,2 |
  << { c'4 c } \\ { c,2 } >> | e'4 c | f c | e c |
  \change Staff = "up" f4 \change Staff = "down" b, | c a | f g | c,2 \bar "|."
}
\score {
  \new PianoStaff << \new Staff = "up" \upper \new Staff = "down" \lower >>
  \layout { }
}
