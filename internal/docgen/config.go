// Package docgen renders the parts of the documentation that are derived
// from the code, so that they cannot drift from it: today the
// configuration reference in docs/configuration.md, made from the
// framework.Config struct (its envconfig and default tags and its field
// comments).
//
// Regenerate after changing Config:
//
//	go test ./internal/docgen -update
package docgen

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"reflect"
	"strconv"
	"strings"
)

// Markers delimit the generated part of a Markdown file; text outside
// them is written by hand.
const (
	BeginMarker = "<!-- BEGIN GENERATED: config reference (go test ./internal/docgen -update) -->"
	EndMarker   = "<!-- END GENERATED: config reference -->"
)

// ConfigVar is one environment variable of framework.Config.
type ConfigVar struct {
	Field   string // the Go field, e.g. AckWait
	Name    string // the variable without its prefix, e.g. ACK_WAIT
	Type    string // the Go type, e.g. time.Duration
	Default string // the default tag; "" when none
	Doc     string // the field's comment, one line
}

// ConfigVars parses the Go source of framework/config.go and returns the
// variables of its Config struct in declaration order. A field without a
// comment of its own shares the comment of the field just above it when
// no blank line separates them ("TLSCertFile and TLSKeyFile are ...").
func ConfigVars(src []byte) ([]ConfigVar, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "config.go", src, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("docgen: parse config.go: %w", err)
	}
	var st *ast.StructType
	ast.Inspect(f, func(n ast.Node) bool {
		if ts, ok := n.(*ast.TypeSpec); ok && ts.Name.Name == "Config" {
			st, _ = ts.Type.(*ast.StructType)
			return false
		}
		return st == nil
	})
	if st == nil {
		return nil, fmt.Errorf("docgen: no Config struct in config.go")
	}
	var (
		vars    []ConfigVar
		lastDoc string
		lastEnd int
	)
	for _, fl := range st.Fields.List {
		line := fset.Position(fl.Pos()).Line
		doc := ""
		if fl.Doc != nil {
			doc = oneLine(fl.Doc.Text())
		} else if line == lastEnd+1 {
			doc = lastDoc
		}
		lastDoc, lastEnd = doc, fset.Position(fl.End()).Line
		if fl.Tag == nil || len(fl.Names) == 0 || !fl.Names[0].IsExported() {
			continue
		}
		tag, err := strconv.Unquote(fl.Tag.Value)
		if err != nil {
			return nil, fmt.Errorf("docgen: field %s: tag: %w", fl.Names[0].Name, err)
		}
		name, ok := reflect.StructTag(tag).Lookup("envconfig")
		if !ok {
			continue
		}
		var typ bytes.Buffer
		_ = printer.Fprint(&typ, fset, fl.Type)
		def, _ := reflect.StructTag(tag).Lookup("default")
		for _, n := range fl.Names {
			vars = append(vars, ConfigVar{Field: n.Name, Name: name, Type: typ.String(), Default: def, Doc: doc})
		}
	}
	if len(vars) == 0 {
		return nil, fmt.Errorf("docgen: Config has no envconfig fields")
	}
	return vars, nil
}

// oneLine joins a comment's lines into one Markdown-safe line: table
// pipes and angle brackets (which Markdown would take for HTML) escaped.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

// ConfigTable renders vars as the Markdown table of the reference.
func ConfigTable(vars []ConfigVar) string {
	var b strings.Builder
	b.WriteString("| Variable | Field | Type | Default | Meaning |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	for _, v := range vars {
		def := "—"
		if v.Default != "" {
			def = "`" + v.Default + "`"
		}
		fmt.Fprintf(&b, "| `<PREFIX>_%s` | `%s` | `%s` | %s | %s |\n", v.Name, v.Field, v.Type, def, v.Doc)
	}
	return b.String()
}

// Splice replaces what lies between the markers in doc with generated and
// returns the new document. It fails when the markers are missing.
func Splice(doc, generated string) (string, error) {
	i := strings.Index(doc, BeginMarker)
	j := strings.Index(doc, EndMarker)
	if i < 0 || j < i {
		return "", fmt.Errorf("docgen: the markers %q and %q are missing or out of order", BeginMarker, EndMarker)
	}
	return doc[:i+len(BeginMarker)] + "\n" + generated + doc[j:], nil
}
