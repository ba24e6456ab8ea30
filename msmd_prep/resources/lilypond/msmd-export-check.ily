%% msmd-prep's export (msmd.ily) and MIDI self-check (msmd-midi-check.ily) in
%% one LilyPond run.
%%
%% Loaded with -dinclude-settings before the user's score.  It writes what
%% the two includes write in runs of their own, the same bytes:
%% msmd-export.tsv, the pages and PDFs, and msmd-check.tsv with
%% msmd-check-N.midi.  The check keeps its independence from the export:
%%
%% - it performs each score's music as LilyPond's own music functions left
%%   it, copied before the export's (which expand \repeat unfold and tag
%%   every note) change it: the copy travels in the music's msmd-check-music
%%   property;
%% - its performer writes only while a check score is performed, not while
%%   the export interprets the music or LilyPond writes the score's own MIDI.
%%
%% Each book is checked first, then exported and printed as msmd.ily does.

\version "2.24.0"

#(define msmd-default-music-functions toplevel-music-functions)

\include "msmd.ily"

#(define msmd-export-music-functions
   (list-tail toplevel-music-functions (length msmd-default-music-functions)))
#(define msmd-export-book-handler toplevel-book-handler)

\include "msmd-midi-check.ily"

#(set! toplevel-music-functions
       (append msmd-default-music-functions
               (list (lambda (music)
                       (let ((check (ly:music-deep-copy music))
                             (out (fold (lambda (f m) (f m)) music msmd-export-music-functions)))
                         (ly:music-set-property! out 'msmd-check-music check)
                         out)))))

#(set! toplevel-book-handler
       (lambda (book)
         (msmd-check-book book)
         (msmd-export-book-handler book)))
