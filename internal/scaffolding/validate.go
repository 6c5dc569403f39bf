package scaffolding

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/mod/module"

	"github.com/jetkit/jetkit/internal/wire"
)

// ErrInvalidInput is wrapped by every validation error, so callers can tell
// a user mistake from a failure to write or verify.
var ErrInvalidInput = errors.New("invalid input")

// JetkitModule is the module path of jetkit itself.
const JetkitModule = "github.com/jetkit/jetkit"

var (
	serviceNameRE  = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	subjectTokenRE = regexp.MustCompile(`^[a-z0-9_-]+$`)
	versionTokenRE = regexp.MustCompile(`^v[0-9]+$`)
)

// maxServiceName keeps names usable as DNS labels, container names and
// consumer name prefixes.
const maxServiceName = 40

// ValidateServiceName checks a service name: lower-case letters and digits,
// starting with a letter, words joined by single dashes (payments,
// order-api). The name becomes the binary, the env var prefix (ORDER_API_),
// the NATS client name and the durable consumer prefix.
func ValidateServiceName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: service name is empty; give a short lower-case name such as payments", ErrInvalidInput)
	case len(name) > maxServiceName:
		return fmt.Errorf("%w: service name %q is %d characters; use at most %d", ErrInvalidInput, name, len(name), maxServiceName)
	case !serviceNameRE.MatchString(name):
		hint := strings.Trim(strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
				return r
			case r >= 'A' && r <= 'Z':
				return r + 'a' - 'A'
			}
			return '-'
		}, name), "-0123456789")
		for strings.Contains(hint, "--") {
			hint = strings.ReplaceAll(hint, "--", "-")
		}
		msg := fmt.Sprintf("%v: service name %q must be lower-case letters and digits, start with a letter, with words joined by single dashes (e.g. payments, order-api)", ErrInvalidInput, name)
		if hint != "" && serviceNameRE.MatchString(hint) {
			msg += fmt.Sprintf("; try %q", hint)
		}
		return errors.New(msg)
	}
	return nil
}

// ValidateModulePath checks a Go module path with golang.org/x/mod's
// module.CheckPath: a domain-like first element with a dot, then path
// elements (github.com/acme/payments). jetkit's own module is refused.
func ValidateModulePath(path string) error {
	if path == "" {
		return fmt.Errorf("%w: --module is required: the Go module path of the new service, e.g. github.com/acme/payments", ErrInvalidInput)
	}
	if err := module.CheckPath(path); err != nil {
		return fmt.Errorf("%w: module path %q: %v; use a path such as github.com/acme/payments", ErrInvalidInput, path, err)
	}
	if path == JetkitModule || strings.HasPrefix(path, JetkitModule+"/") {
		return fmt.Errorf("%w: module path %q is inside jetkit's own module; pick your own path such as github.com/acme/payments", ErrInvalidInput, path)
	}
	return nil
}

// ValidateEventSubject checks a subject a generated service consumes or
// publishes. It must pass wire.ValidateSubject and follow jetkit's
// convention <domain>.<event>[.<more>].v<N> (orders.created.v1): the tokens
// become Go identifiers, file names and the stream name, so each is
// lower-case ASCII letters, digits, '_' or '-' (subjects are case
// sensitive, and Orders.> is not orders.>), and the domain starts with a
// letter.
func ValidateEventSubject(subject string) error {
	if err := wire.ValidateSubject(subject); err != nil {
		return fmt.Errorf("%w: event subject: %w", ErrInvalidInput, err)
	}
	toks := strings.Split(subject, ".")
	if len(toks) < 3 {
		return fmt.Errorf("%w: event subject %q has %d token(s); expected <domain>.<event>.v<N> such as orders.created.v1", ErrInvalidInput, subject, len(toks))
	}
	for i, tok := range toks {
		if lower := strings.ToLower(tok); lower != tok && subjectTokenRE.MatchString(lower) {
			return fmt.Errorf("%w: event subject %q, token %d (%q): subjects are lower-case in jetkit (NATS subjects are case sensitive: %s.> would not store %s.>); use %q",
				ErrInvalidInput, subject, i+1, tok, toks[0], strings.ToLower(toks[0]), strings.ToLower(subject))
		}
		if !subjectTokenRE.MatchString(tok) || ident(tok) == "" {
			return fmt.Errorf("%w: event subject %q, token %d (%q): use lower-case ASCII letters, digits, '_' or '-' so it maps to Go names", ErrInvalidInput, subject, i+1, tok)
		}
	}
	if c := toks[0][0]; !(c >= 'a' && c <= 'z') {
		return fmt.Errorf("%w: event subject %q: the domain %q must start with a letter", ErrInvalidInput, subject, toks[0])
	}
	if last := toks[len(toks)-1]; !versionTokenRE.MatchString(last) {
		return fmt.Errorf("%w: event subject %q must end with a version token such as .v1 (got %q), so that a changed schema can be published as .v2 beside it", ErrInvalidInput, subject, last)
	}
	return nil
}

// keyedSuffix marks an event argument as keyed: orders.created.v1:keyed.
const keyedSuffix = ":keyed"

// parseEventArg splits an event argument SUBJECT[:keyed] (the value of
// --consumes, --publishes or jetkit new event) and validates the subject.
// :keyed declares that the event is published with a key, on
// SUBJECT.<key> (as the sample order service does): the generated topic is
// framework.Keyed(), and a consumer listens on SUBJECT.>.
func parseEventArg(arg string) (subject string, keyed bool, err error) {
	subject, opt, found := strings.Cut(arg, ":")
	if found && ":"+opt != keyedSuffix {
		return "", false, fmt.Errorf("%w: %q: unknown suffix %q; the only one is %s, for events published with a key (orders.created.v1%s: orders.created.v1.<key>)",
			ErrInvalidInput, arg, ":"+opt, keyedSuffix, keyedSuffix)
	}
	return subject, found, ValidateEventSubject(subject)
}

// validateEvents checks every subject and that no two map to the same Go
// name or appear twice. Errors name the flag and the value given.
func validateEvents(consumes, publishes []string) ([]event, error) {
	var errs []error
	seen := map[string]string{}
	var evs []event
	add := func(flag, arg string, consumed bool) {
		subject, keyed, err := parseEventArg(arg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", flag, arg, err))
			return
		}
		ev := newEvent(subject, consumed)
		ev.Keyed = keyed
		if prev, ok := seen[ev.Ident]; ok {
			if prev == subject {
				errs = append(errs, fmt.Errorf("%w: %s %s: event subject %q is given twice; a service that both consumes and publishes an event lists it under --consumes only", ErrInvalidInput, flag, arg, subject))
			} else {
				errs = append(errs, fmt.Errorf("%w: %s %s: event subjects %q and %q both map to the Go name %s; rename one", ErrInvalidInput, flag, arg, prev, subject, ev.Ident))
			}
			return
		}
		for _, o := range evs {
			if o.Domain.Stream == ev.Domain.Stream && o.Domain.Token != ev.Domain.Token {
				errs = append(errs, fmt.Errorf("%w: %s %s: event subjects %q and %q have domains %q and %q that both map to stream %s; spell the domain the same way", ErrInvalidInput, flag, arg, o.Subject, subject, o.Domain.Token, ev.Domain.Token, ev.Domain.Stream))
				return
			}
		}
		seen[ev.Ident] = subject
		evs = append(evs, ev)
	}
	for _, s := range consumes {
		add("--consumes", s, true)
	}
	for _, s := range publishes {
		add("--publishes", s, false)
	}
	// The service owns the streams of the domains it publishes into.
	owned := map[string]bool{}
	for _, ev := range evs {
		if !ev.Consumed {
			owned[ev.Domain.Token] = true
		}
	}
	for i := range evs {
		evs[i].Domain.Owned = owned[evs[i].Domain.Token]
	}
	return evs, errors.Join(errs...)
}
