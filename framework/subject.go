package framework

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidateToken checks one subject token built from data (an order id, a
// customer key). It rejects what would change the meaning of a subject:
// empty tokens, '.', the wildcards '*' and '>', whitespace, control
// characters and invalid UTF-8.
func ValidateToken(token string) error {
	if token == "" {
		return fmt.Errorf("%w: empty token; use a non-empty key such as an id", ErrInvalidSubject)
	}
	if !utf8.ValidString(token) {
		return fmt.Errorf("%w: token %q is not valid UTF-8", ErrInvalidSubject, token)
	}
	for i, r := range token {
		switch {
		case r == '.':
			return fmt.Errorf("%w: token %q contains '.' at byte %d; a token cannot span subject levels (replace or encode the dot)", ErrInvalidSubject, token, i)
		case r == '*' || r == '>':
			return fmt.Errorf("%w: token %q contains wildcard %q at byte %d; wildcards are not allowed in published subjects", ErrInvalidSubject, token, r, i)
		case unicode.IsSpace(r):
			return fmt.Errorf("%w: token %q contains whitespace at byte %d", ErrInvalidSubject, token, i)
		case unicode.IsControl(r) || !unicode.IsPrint(r):
			return fmt.Errorf("%w: token %q contains non-printable character %U at byte %d", ErrInvalidSubject, token, r, i)
		}
	}
	return nil
}

// ValidateSubject checks a subject to publish to: one or more valid tokens
// separated by single dots.
func ValidateSubject(subject string) error {
	if subject == "" {
		return fmt.Errorf("%w: empty subject; expected tokens such as orders.created.v1", ErrInvalidSubject)
	}
	for i, tok := range strings.Split(subject, ".") {
		if err := ValidateToken(tok); err != nil {
			return fmt.Errorf("subject %q, token %d: %w", subject, i+1, err)
		}
	}
	return nil
}

// ValidateFilter checks a subscription filter: like ValidateSubject, but a
// token may be the wildcard '*', and the last token may be '>'.
func ValidateFilter(filter string) error {
	if filter == "" {
		return fmt.Errorf("%w: empty filter subject", ErrInvalidSubject)
	}
	toks := strings.Split(filter, ".")
	for i, tok := range toks {
		if tok == "*" || (tok == ">" && i == len(toks)-1) {
			continue
		}
		if err := ValidateToken(tok); err != nil {
			return fmt.Errorf("filter %q, token %d: %w", filter, i+1, err)
		}
	}
	return nil
}
