// Package docstest builds the Go code shown in the repository's Markdown
// files, so that a snippet with a missing import, a renamed function or a
// changed signature fails the test suite instead of misleading a reader.
//
// The rules a ```go block follows (CONTRIBUTING.md has them too):
//
//   - A block that starts with a package clause is a whole file and is
//     built as it is.
//
//   - Any other block is a fragment: top-level declarations, or statements
//     (built inside a function). Imports are added for the packages it
//     names (the standard library ones docs use and jetkit's own). A line
//     that is only "..." stands for omitted code.
//
//   - Names a fragment uses but does not show (ctx, svc, t, a handler) are
//     declared in a hidden prelude: an HTML comment just above the block,
//     invisible on a rendered page,
//
//     <!-- prelude
//     var svc *framework.Service
//     -->
//
//     holding top-level Go declarations.
//
//   - Code that is not meant to compile is not marked go: use text.
package docstest

import (
	"bufio"
	"fmt"
	"strings"
)

// Snippet is one ```go block of a Markdown file.
type Snippet struct {
	File    string // the Markdown file, relative to the repository root
	Line    int    // the line of the block's first code line
	Code    string // the block's lines
	Prelude string // the hidden prelude's declarations; "" when none
}

// Extract returns the ```go blocks of a Markdown document.
func Extract(file, doc string) ([]Snippet, error) {
	var (
		out      []Snippet
		in       bool
		cur      Snippet
		code     strings.Builder
		prelude  strings.Builder
		inPre    bool
		other    string // the fence of an open block that is not Go; "" when none
		pending  string // the prelude just seen, for the next block
		lastText int    // line of the last non-blank line outside blocks
		preEnd   int    // line the last prelude ended on
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		switch {
		case other != "":
			if isFence(trim, other) {
				other = ""
			}
		case inPre:
			if trim == "-->" {
				inPre, pending, preEnd = false, prelude.String(), n
				continue
			}
			prelude.WriteString(line + "\n")
		case in:
			if isFence(trim, "```") {
				in = false
				cur.Code = code.String()
				out = append(out, cur)
				continue
			}
			code.WriteString(line + "\n")
		case trim == "<!-- prelude":
			inPre = true
			prelude.Reset()
		case trim == "```go":
			in = true
			cur = Snippet{File: file, Line: n + 1}
			if pending != "" && lastText < preEnd { // nothing but blank lines between
				cur.Prelude = pending
			}
			pending = ""
			code.Reset()
		case strings.HasPrefix(trim, "```"):
			other = trim[:len(trim)-len(strings.TrimLeft(trim, "`"))]
		default:
			if trim != "" {
				lastText = n
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("docstest: read %s: %w", file, err)
	}
	if in {
		return nil, fmt.Errorf("docstest: %s:%d: a ```go block is not closed", file, cur.Line-1)
	}
	if inPre {
		return nil, fmt.Errorf("docstest: %s: a <!-- prelude comment is not closed", file)
	}
	return out, nil
}

// isFence reports whether line closes a block opened with fence: a run of
// at least as many backticks and nothing else.
func isFence(line, fence string) bool {
	return strings.HasPrefix(line, fence) && strings.Trim(line, "`") == ""
}
