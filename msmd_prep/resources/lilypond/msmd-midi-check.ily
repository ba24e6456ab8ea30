%% msmd-prep's MIDI self-check: LilyPond's own MIDI of every score, repeats unfolded.
%%
%% Loaded with -dinclude-settings before the user's score, instead of msmd.ily
%% (it shares no code with the export).  Every \score of the file becomes a
%% MIDI-only score of its music with all repeats unfolded (\unfoldRepeats),
%% under the score's own \midi block where it has one; no page is laid out.
%% Score N of the file (in print order, MIDI-only scores counted) is written
%% to msmd-check-N.midi, and msmd-check.tsv gets these records:
%%
%%   C score printed?                              a score of the file
%%   N score file line column key main grace       a note LilyPond performed
%%
%% (key: MIDI key of the pitch; main, grace: its moment, whole notes).
%%
%% msmd-export-check.ily runs this check in the export's LilyPond run: N
%% records are written only while a check score is performed
%% (msmd-check-active), and a score's music is taken from its
%% msmd-check-music property where it has one (the music as this run alone
%% would see it, before the export's own music functions).

\version "2.24.0"

\include "msmd-compat.ily"

#(define msmd-check-port (open-output-file "msmd-check.tsv"))
#(define msmd-check-score 0)
#(define msmd-check-active #f)

#(define (msmd-check-write . fields)
   (display (string-join (map (lambda (f) (if (string? f) f (object->string f))) fields) "\t")
            msmd-check-port)
   (newline msmd-check-port)
   (force-output msmd-check-port))

#(define (Msmd_check_performer context)
   (make-performer
    (listeners
     ((note-event performer event)
      (let ((pitch (ly:event-property event 'pitch #f))
            (origin (ly:event-property event 'origin #f))
            (now (ly:context-current-moment context)))
        (if (and msmd-check-active (ly:pitch? pitch))
            (let ((loc (if (ly:input-location? origin)
                           (ly:input-file-line-char-column origin)
                           (list "" 0 0 0))))
              (msmd-check-write "N" msmd-check-score (car loc) (cadr loc) (cadddr loc)
                                (+ 60 (ly:pitch-semitones pitch))
                                (ly:moment-main now) (ly:moment-grace now)))))))))

\midi {
  \context {
    \Voice
    \consists #Msmd_check_performer
  }
}

#(define (msmd-check-printed? score)
   (let ((defs (ly:score-output-defs score)))
     (or (null? defs)
         (any (lambda (d) (eq? (ly:output-def-lookup d 'output-def-kind) 'layout)) defs))))

#(define (msmd-check-midi-def score)
   (or (find (lambda (d) (eq? (ly:output-def-lookup d 'output-def-kind) 'midi))
             (ly:score-output-defs score))
       $defaultmidi))

#(define (msmd-check-scores book)
   (let ((parts (ly:book-book-parts book)))
     (filter ly:score?
             (append (append-map msmd-check-scores (reverse parts))
                     (reverse (ly:book-scores book))))))

#(define (msmd-check-music score)
   (let ((music (ly:score-music score)))
     (ly:music-property music 'msmd-check-music music)))

#(define (msmd-check-book book)
   "Write LilyPond's MIDI of every score of BOOK, repeats unfolded, and its C
and N records."
   (for-each
    (lambda (score)
      ;; music-map recomputes the lengths cached before unfolding; without
      ;; it the performance stops at the folded length.
      (let ((midi (ly:make-score
                   (music-map identity
                              (unfold-repeats-fully
                               (ly:music-deep-copy (msmd-check-music score))))))
            (one (ly:make-book $defaultpaper ly:book-header)))
        (msmd-check-write "C" msmd-check-score (if (msmd-check-printed? score) 1 0))
        (ly:score-add-output-def! midi (msmd-check-midi-def score))
        (ly:book-add-score! one midi)
        (set! msmd-check-active #t)
        (ly:book-process one $defaultpaper $defaultlayout
                         (format #f "msmd-check-~a" msmd-check-score))
        (set! msmd-check-active #f)
        (set! msmd-check-score (1+ msmd-check-score))))
    (msmd-check-scores book)))

#(set! toplevel-book-handler msmd-check-book)
