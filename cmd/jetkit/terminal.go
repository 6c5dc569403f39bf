package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// clean makes untrusted text (header values, subjects, errors, payloads)
// safe to print on a terminal on one line: control characters (escape
// sequences, carriage returns, line breaks, tabs, C1 codes), other
// non-printable runes such as bidirectional overrides, and invalid UTF-8
// are shown as Go escapes (\x1b, \u202e) instead of being sent raw.
func clean(s string) string { return escapeText(s, false) }

// cleanBlock is clean for multi-line text: it keeps line breaks and tabs.
func cleanBlock(s string) string { return escapeText(s, true) }

func escapeText(s string, block bool) string {
	if safe(s, block) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case block && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r < 0x80 && (r < 0x20 || r == 0x7f):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r != ' ' && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// safe is the fast path: printable ASCII (and line breaks and tabs in a
// block) needs no escaping.
func safe(s string, block bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f || block && (c == '\n' || c == '\t') {
			continue
		}
		return false
	}
	return true
}

// jsonForTerminal escapes, inside encoded JSON, what encoding/json leaves
// raw but a terminal may obey: DEL, C1 controls, bidirectional overrides
// and other non-printable runes, as \uXXXX (surrogate pairs above U+FFFF).
// The JSON means the same; it can only occur inside strings, since JSON's
// own syntax is printable ASCII and line breaks.
func jsonForTerminal(b []byte) []byte {
	if safe(string(b), true) {
		return b
	}
	var out []byte
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == '\n' || r == ' ' || (r != utf8.RuneError && unicode.IsPrint(r)) || (r == utf8.RuneError && size > 1):
			out = append(out, b[i:i+size]...)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, hi, lo)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += size
	}
	return out
}
