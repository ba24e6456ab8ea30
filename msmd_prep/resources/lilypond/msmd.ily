%% msmd-prep's export of note heads and performance from inside LilyPond.
%%
%% Loaded with -dinclude-settings before the user's score.  It writes one
%% tab-separated file, msmd-export.tsv, in the current folder (the piece's
%% work folder), with these records (rational moments are in whole notes):
%%
%%   H id staff voice pitch main grace file line column   a printed head
%%   S id layout:first-column                             the head's system
%%   B page link x0 y0 x1 y1   a linked box, bp from the page's top left
%%   C score printed?                                     a score in the book
%%   T score main wholes-per-minute grace                 a tempo (change)
%%   E score id pitch main grace duration context velocity tied continues performed
%%                                                       a played note
%%     (tied: 0 no tie, 1 tied, 2 tied while tieWaitForNote is set;
%%      continues: 1 when LilyPond's MIDI ties it to an earlier note, as
%%      Tie_performer does; performed: its length in LilyPond's MIDI, whole
%%      notes: articulations such as staccato shorten it)
%%   F ...as E, with volta and segno repeats folded (printed time)
%%   U ...as T, for the F records
%%   R score repeat start end count         a volta or segno repeat, printed time
%%   V score repeat start end numbers       a part of it played on some passes
%%
%% Each NoteEvent gets a unique id before layout.  `\repeat unfold` is
%% expanded into copies first, so that every printed head has its own id; the
%% performance is interpreted from the same music with all repeats unfolded,
%% so a head in a volta repeat meets its id once per pass.  Every head's
%% stencil carries a PDF link "msmd:h:ID", every staff's "msmd:l:STAFF:SYS",
%% which give their boxes on the page.

\version "2.24.0"

\include "msmd-compat.ily"

#(define msmd-port (open-output-file "msmd-export.tsv"))
#(define msmd-next-id 0)
#(define msmd-score-count 0)

#(define (msmd-write . fields)
   (display (string-join (map (lambda (f) (if (string? f) f (object->string f)))
                              fields)
                         "\t")
            msmd-port)
   (newline msmd-port)
   (force-output msmd-port))

#(define (msmd-refresh-lengths music)
   "Recompute the lengths that toplevel-music-functions cached before unfolding."
   (music-map identity music))

#(define (msmd-expand-unfolds music)
   (map-some-music
    (lambda (m)
      (and (music-is-of-type? m 'unfolded-repeated-music)
           (msmd-expand-unfolds
            (make-sequential-music (ly:music-deep-copy ((@@ (lily) make-unfolded-set) m))))))
    music))

#(define (msmd-tag-notes! music)
   (for-some-music
    (lambda (m)
      (if (music-is-of-type? m 'note-event)
          (begin
            (set! msmd-next-id (1+ msmd-next-id))
            (ly:music-set-property! m 'msmd-id msmd-next-id)))
      #f)
    music)
   music)

#(set! toplevel-music-functions
       (append toplevel-music-functions
               (list (lambda (music)
                       (msmd-tag-notes! (msmd-refresh-lengths (msmd-expand-unfolds music)))))))

%% ---------------------------------------------------------------- layout

#(define msmd-layout-count 0)

#(define (msmd-system-key layout-index grob)
   "LAYOUT-INDEX:first column of GROB's system: unique within the file."
   (let ((sys (ly:grob-system grob)))
     (format #f "~a:~a" layout-index
             (if (ly:grob? sys) (car (ly:grob-spanned-column-rank-interval sys)) -1))))

#(define (msmd-with-link grob url)
   "Wrap GROB's stencil with a PDF link URL covering its extent."
   (let ((orig (ly:grob-property-data grob 'stencil)))
     (ly:grob-set-property!
      grob 'stencil
      (lambda (g)
        (let ((st (if (procedure? orig) (orig g) orig)))
          (if (and (ly:stencil? st) (not (ly:stencil-empty? st)))
              (let ((x (ly:stencil-extent st X))
                    (y (ly:stencil-extent st Y)))
                (ly:stencil-add
                 (ly:make-stencil (list 'url-link (if (procedure? url) (url g) url) x y) x y)
                 st))
              st))))))

#(define (msmd-chain-after-line-breaking grob proc)
   (let ((orig (ly:grob-property-data grob 'after-line-breaking)))
     (ly:grob-set-property!
      grob 'after-line-breaking
      (lambda (g)
        (if (procedure? orig) (orig g))
        (proc g)))))

#(define (msmd-context-index table context)
   (or (hashq-ref table context)
       (let ((n (hash-count (const #t) table)))
         (hashq-set! table context n)
         n)))

#(define (Msmd_export_engraver context)
   (let ((staves (make-hash-table))
         (voices (make-hash-table))
         (layout-index msmd-layout-count))
     (set! msmd-layout-count (1+ msmd-layout-count))
     (make-engraver
      (acknowledgers
       ((note-head-interface engraver grob source)
        ;; Tablature repeats the staff's notes as numbers: not note heads.
        (let* ((cause (ly:grob-property grob 'cause))
               (id (and (ly:stream-event? cause)
                        (not (grob::has-interface grob 'tab-note-head-interface))
                        (ly:event-property cause 'msmd-id #f))))
          (if (and id (ly:pitch? (ly:event-property cause (quote pitch) #f)))
              (let* ((voice (ly:translator-context source))
                     (staff (ly:context-find voice 'Staff))
                     (mom (ly:context-current-moment context))
                     (origin (ly:event-property cause 'origin))
                     (loc (if (ly:input-location? origin)
                              (ly:input-file-line-char-column origin)
                              (list "" 0 0 0))))
                (msmd-write "H" id
                            (if staff (msmd-context-index staves staff) -1)
                            (msmd-context-index voices voice)
                            (+ 60 (ly:pitch-semitones (ly:event-property cause 'pitch)))
                            (ly:moment-main mom) (ly:moment-grace mom)
                            (car loc) (cadr loc) (cadddr loc))
                (msmd-with-link grob (format #f "msmd:h:~a" id))
                (msmd-chain-after-line-breaking
                 grob (lambda (g) (msmd-write "S" id (msmd-system-key layout-index g))))))))
       ((staff-symbol-interface engraver grob source)
        (let* ((staff (ly:context-find (ly:translator-context source) 'Staff))
               (n (if staff (msmd-context-index staves staff) -1)))
          (msmd-with-link
           grob (lambda (g) (format #f "msmd:l:~a:~a" n (msmd-system-key layout-index g))))))))))

\layout {
  \context {
    \Score
    \consists #Msmd_export_engraver
  }
}

%% ------------------------------------------------------------- pages

#(define msmd-page-count 0)

#(define (msmd-walk-stencil expr x y sx sy visit)
   "Call (VISIT url-link-expr x y sx sy) for every url-link in the stencil
expression EXPR placed at (X, Y) with scale (SX, SY), as the output backends
place them (lily/stencil-interpret.cc)."
   (if (pair? expr)
       (case (car expr)
         ((combine-stencil)
          (for-each (lambda (e) (msmd-walk-stencil e x y sx sy visit)) (cdr expr)))
         ((translate-stencil)
          (let ((o (cadr expr)))
            (msmd-walk-stencil (caddr expr) (+ x (* sx (car o))) (+ y (* sy (cdr o)))
                               sx sy visit)))
         ((scale-stencil)
          (let ((f (cadr expr)))
            (msmd-walk-stencil (caddr expr) x y (* sx (car f)) (* sy (cdr f)) visit)))
         ((delay-stencil-evaluation)
          (msmd-walk-stencil (force (cadr expr)) x y sx sy visit))
         ((color output-attributes with-outline rotate-stencil grob-cause)
          (msmd-walk-stencil (last expr) x y sx sy visit))
         ((url-link) (visit expr x y sx sy)))))

#(define (msmd-write-links layout pages)
   "Write every msmd link of PAGES with its box in bp from the page's top left."
   (let ((scale (ly:output-def-lookup layout 'output-scale)))
     (for-each
      (lambda (page)
        (set! msmd-page-count (1+ msmd-page-count))
        (msmd-walk-stencil
         (ly:stencil-expr ((@ (lily page) page-stencil) page)) 0 0 1 1
         (lambda (leaf x y sx sy)
           (if (string-prefix? "msmd:" (cadr leaf))
               (let* ((xe (caddr leaf)) (ye (cadddr leaf))
                      (xa (+ x (* sx (car xe)))) (xb (+ x (* sx (cdr xe))))
                      (ya (+ y (* sy (car ye)))) (yb (+ y (* sy (cdr ye)))))
                 (msmd-write "B" msmd-page-count (cadr leaf)
                             (* scale (min xa xb)) (* scale (- (max ya yb)))
                             (* scale (max xa xb)) (* scale (- (min ya yb)))))))))
      pages)))

\paper {
  page-post-process = #msmd-write-links
}

%% ---------------------------------------------------------- performance

#(define (msmd-velocity text)
   (let ((vol (and (string? text)
                   (defined? 'default-dynamic-absolute-volume)
                   (default-dynamic-absolute-volume text))))
     (inexact->exact (round (* 127 (if (number? vol) vol dynamic-default-volume))))))

#(define (msmd-tied? event chord-ties)
   (or chord-ties
       (any (lambda (a) (ly:in-event-class? a 'tie-event))
            (ly:event-property event 'articulations '()))))

#(define (msmd-performed-length note step-articulations ctx)
   "The length LilyPond's MIDI gives NOTE: its written length shortened by
the midi-length of its articulations (staccato, portato ...), as in
Note_performer; those of the time step's own articulation events included."
   (fold (lambda (a len)
           (let ((f (and (ly:in-event-class? a 'articulation-event)
                         (ly:event-property a 'midi-length #f))))
             (if (procedure? f) (f len ctx) len)))
         (ly:duration-length (ly:event-property note 'duration))
         (append (ly:event-property note 'articulations '()) step-articulations)))

#(define (msmd-before? mom end)
   "Whether moment MOM lies before END, a (main . grace) pair."
   (or (< (ly:moment-main mom) (car end))
       (and (= (ly:moment-main mom) (car end)) (< (ly:moment-grace mom) (cdr end)))))

#(define (msmd-perform kind score-index music odef)
   "Interpret MUSIC and write its note events as KIND records (E or F) and
its tempi as T (after E) or U (after F) records."
   (let* ((global (ly:make-global-context odef))
          (score-ctx #f)
          (now (ly:make-moment 0))
          (last-tempo #f)
          (dynamics (make-hash-table))
          (global-dynamic #f)
          (context-count 0))
     (define (staff-of ctx) (or (ly:context-find ctx 'Staff) ctx))
     (define (on-new-context ev)
       (let ((ctx (ly:event-property ev 'context))
             (ctx-number context-count)
             (notes '())
             (articulations '())
             ;; Tie_performer's heads_to_tie_: (semitones . end-moment), oldest first.
             (waiting '())
             (tie-now #f))
         (set! context-count (1+ context-count))
         (if (eq? (ly:context-name ctx) 'Score) (set! score-ctx ctx))
         (ly:add-listener
          (lambda (e) (set! notes (cons e notes)))
          (ly:context-event-source ctx) 'note-event)
         (ly:add-listener
          (lambda (e) (set! articulations (cons e articulations)))
          (ly:context-event-source ctx) 'articulation-event)
         (ly:add-listener
          (lambda (e) (set! tie-now #t))
          (ly:context-event-source ctx) 'tie-event)
         (ly:add-listener
          (lambda (e)
            (let ((text (ly:event-property e 'text)))
              (if (ly:context-find ctx 'Staff)
                  (hashq-set! dynamics (staff-of ctx) text)
                  (begin
                    (set! global-dynamic text)
                    (hash-clear! dynamics)))))
          (ly:context-event-source ctx) 'absolute-dynamic-event)
         (define (continues! semitones)
           "Whether a note of SEMITONES continues a waiting tie (which it takes)."
           (let ((w (find (lambda (p) (= (car p) semitones)) waiting)))
             (and w (begin (set! waiting (delq w waiting)) #t))))
         (define (flush e)
            (let ((tied-now '())
                  (wait (eq? #t (ly:context-property ctx 'tieWaitForNote #f))))
              (for-each
               (lambda (n)
                 (let ((id (ly:event-property n 'msmd-id #f))
                       (pitch (ly:event-property n (quote pitch) #f)))
                   (if (ly:pitch? pitch)
                       (let* ((semitones (ly:pitch-semitones pitch))
                              (len (msmd-performed-length n articulations ctx))
                              ;; (main . grace), as Tie_performer's end moment:
                              ;; a grace note's length counts in grace time.
                              (end (if (zero? (ly:moment-grace now))
                                       (cons (+ (ly:moment-main now) (ly:moment-main len))
                                             (ly:moment-grace now))
                                       (cons (ly:moment-main now)
                                             (+ (ly:moment-grace now) (ly:moment-main len)))))
                              (continues (continues! semitones))
                              (tied (msmd-tied? n tie-now)))
                         (if tied (set! tied-now (cons (cons semitones end) tied-now)))
                         (if id
                             (msmd-write
                              kind score-index id (+ 60 semitones)
                              (ly:moment-main now) (ly:moment-grace now)
                              (ly:moment-main (ly:duration-length (ly:event-property n 'duration)))
                              ctx-number
                              (msmd-velocity (or (hashq-ref dynamics (staff-of ctx))
                                                 global-dynamic))
                              (cond ((not tied) 0) (wait 2) (else 1))
                              (if continues 1 0)
                              (ly:moment-main len)))))))
               (reverse notes))
              ;; Tie_performer::stop_translation_timestep: a tie lapses once its
              ;; note has ended, unless tieWaitForNote is set.
              (if (not wait)
                  (set! waiting (filter (lambda (p) (msmd-before? now (cdr p))) waiting)))
              (set! waiting (append waiting (reverse tied-now))))
            (set! notes '())
            (set! articulations '())
            (set! tie-now #f))
         ;; The last time step of a piece ends with Finish, not OneTimeStep.
         (ly:add-listener flush (ly:context-event-source global) 'OneTimeStep)
         (ly:add-listener flush (ly:context-event-source global) 'Finish)))
     (ly:add-listener on-new-context (ly:context-events-below global)
                      'AnnounceNewContext)
     (ly:add-listener (lambda (e) (set! now (ly:event-property e 'moment)))
                      (ly:context-event-source global) 'Prepare)
     (ly:add-listener
      (lambda (e)
        (if score-ctx
            (let ((wpm (ly:context-property score-ctx 'tempoWholesPerMinute)))
              (if (and (ly:moment? wpm) (not (equal? wpm last-tempo)))
                  (begin
                    (set! last-tempo wpm)
                    (msmd-write (if (equal? kind "E") "T" "U") score-index
                                (ly:moment-main now) (ly:moment-main wpm)
                                (ly:moment-grace now)))))))
      (ly:context-event-source global) 'OneTimeStep)
     (ly:interpret-music-expression (make-non-relative-music music) global)))

#(define (msmd-unfolded music)
   "MUSIC with every repeat unfolded, each voice on its own (E records)."
   (msmd-refresh-lengths (unfold-repeats-fully (ly:music-deep-copy music))))

#(define (msmd-folded music)
   "MUSIC as printed: volta and segno repeats folded, so that its time is the
printed score's (F records); tremolo and percent repeats, which take their
printed time, unfolded."
   ;; One type per call: unfold-repeats walks the tree once per type it is
   ;; given at every level, which is exponential in the depth.
   (msmd-refresh-lengths
    (unfold-repeats 'tremolo (unfold-repeats 'percent (ly:music-deep-copy music)))))

#(define (msmd-write-repeats score-index music)
   "Write the volta and segno repeats of MUSIC at their printed times:
R score repeat# start end count, and V score repeat# start end numbers for
every part played only on some passes (alternatives, \\volta)."
   (let ((count 0))
     (define (specs music offset repeat)
       ;; The \\volta parts of a repeat, not those of a nested one.
       (cond
        ((music-is-of-type? music 'repeated-music) (walk music offset))
        (else
         (if (music-is-of-type? music 'volta-specification)
             (msmd-write "V" score-index repeat (ly:moment-main offset)
                         (ly:moment-main (ly:moment-add offset (ly:music-length music)))
                         (string-join (map number->string
                                           (ly:music-property music 'volta-numbers '()))
                                      ",")))
         (children music offset (lambda (m o) (specs m o repeat))))))
     (define (children music offset proc)
       (let ((e (ly:music-property music 'element #f))
             (es (ly:music-property music 'elements '())))
         (if (ly:music? e) (proc e offset))
         (if (music-is-of-type? music 'simultaneous-music)
             (for-each (lambda (m) (proc m offset)) es)
             (fold (lambda (m o) (proc m o) (ly:moment-add o (ly:music-length m)))
                   (if (ly:music? e) (ly:moment-add offset (ly:music-length e)) offset)
                   es))))
     (define (walk music offset)
       (if (or (music-is-of-type? music 'volta-repeated-music)
               (music-is-of-type? music 'segno-repeated-music))
           (let ((repeat count))
             (set! count (1+ count))
             (msmd-write "R" score-index repeat (ly:moment-main offset)
                         (ly:moment-main (ly:moment-add offset (ly:music-length music)))
                         (ly:music-property music 'repeat-count))
             (children music offset (lambda (m o) (specs m o repeat))))
           (if (not (music-is-of-type? music 'time-scaled-music))
               (children music offset walk))))
     (walk music (ly:make-moment 0))))

#(define (msmd-score-printed? score)
   (let ((defs (ly:score-output-defs score)))
     (or (null? defs)
         (any (lambda (d) (eq? (ly:output-def-lookup d 'output-def-kind) 'layout)) defs))))

#(define (msmd-midi-def score)
   (or (find (lambda (d) (eq? (ly:output-def-lookup d 'output-def-kind) 'midi))
             (ly:score-output-defs score))
       $defaultmidi))

#(define (msmd-book-scores book)
   "The scores of BOOK in print order, those of its book parts included."
   (let ((parts (ly:book-book-parts book)))
     (filter ly:score?
             (append (append-map msmd-book-scores (reverse parts))
                     (reverse (ly:book-scores book))))))

#(define (msmd-wrap-book-handler handler)
   (lambda (book)
     (for-each
      (lambda (score)
        (let ((index msmd-score-count))
          (set! msmd-score-count (1+ index))
          (msmd-write "C" index (if (msmd-score-printed? score) 1 0))
          (msmd-perform "E" index (msmd-unfolded (ly:score-music score)) (msmd-midi-def score))
          (msmd-perform "F" index (msmd-folded (ly:score-music score)) (msmd-midi-def score))
          (msmd-write-repeats index (ly:score-music score))))
      (msmd-book-scores book))
     (handler book)))

#(set! toplevel-book-handler (msmd-wrap-book-handler toplevel-book-handler))
