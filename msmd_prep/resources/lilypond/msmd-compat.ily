%% Scheme that LilyPond removed and old scores still call, defined again.
%%
%% Included by msmd.ily and msmd-midi-check.ily before the user's score; a
%% name is only defined where this LilyPond lacks it, so current scores are
%% unaffected.  Each entry is the nearest current equivalent:
%%
%%   ly:make-simple-closure (removed in 2.19): a "simple closure" (f a ...)
%%     calls f on the grob when it has no arguments, else on the arguments
%%     with those that are closures evaluated on the grob first.
%%   ly:accidental-interface::width (removed in 2.17): the stencil's width.
%%   staff-space (a global of old LilyPond's Scheme): 1, the staff space in
%%     staff spaces.
%%   the markup command \text (removed in 2.25.6, "Use a text font instead of
%%     music symbol or music alphabet font"): \serif, the default text font,
%%     as convert-ly advises ("Not a markup command: text", Czerny Op. 821/19:
%%     (markup #:dynamic "p" #:text #:italic "dolce")).

#(define (msmd-define-missing! name value)
   (if (not (defined? name))
       (module-define! (current-module) name value)))

#(msmd-define-missing!
  'ly:make-simple-closure
  (lambda (expr)
    (lambda (grob . rest)
      (let ((f (car expr)) (args (cdr expr)))
        (if (null? args)
            (f grob)
            (apply f (map (lambda (a) (if (procedure? a) (a grob) a)) args)))))))

#(msmd-define-missing! 'ly:accidental-interface::width ly:grob::stencil-width)

#(msmd-define-missing! 'staff-space 1)

#(if (not (defined? 'text-markup))
     (primitive-eval
      '(define-markup-command (text layout props arg) (markup?)
         (interpret-markup layout props (make-serif-markup arg)))))
