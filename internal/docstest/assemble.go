package docstest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strconv"
	"strings"
)

// imports maps the package names snippets may use without importing them
// to their import paths.
var imports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "http": "net/http",
	"json": "encoding/json", "log": "log", "os": "os", "signal": "os/signal",
	"slog": "log/slog", "strings": "strings", "sync": "sync", "atomic": "sync/atomic",
	"syscall": "syscall", "testing": "testing", "time": "time",
	"nats":          "github.com/nats-io/nats.go",
	"jetstream":     "github.com/nats-io/nats.go/jetstream",
	"otel":          "go.opentelemetry.io/otel",
	"framework":     "github.com/jetkit/jetkit/framework",
	"capacity":      "github.com/jetkit/jetkit/framework/capacity",
	"dlq":           "github.com/jetkit/jetkit/framework/dlq",
	"health":        "github.com/jetkit/jetkit/framework/health",
	"middleware":    "github.com/jetkit/jetkit/framework/middleware",
	"telemetry":     "github.com/jetkit/jetkit/framework/telemetry",
	"frameworktest": "github.com/jetkit/jetkit/framework/frameworktest",
	"testenv":       "github.com/jetkit/jetkit/testenv",
}

// Assemble returns the Go file that builds s, in package pkg. Positions in
// the file map back to the Markdown through //line directives, so a
// compile error names the document and its line.
func Assemble(s Snippet, pkg string) (string, error) {
	code := elide(s.Code)
	if isWholeFile(code) {
		return fmt.Sprintf("//line %s:%d\n%s", s.File, s.Line, code), nil
	}
	prelude := "//line " + s.File + ":1\n" + s.Prelude
	var body string
	if parses("package p\n" + code) {
		body = fmt.Sprintf("//line %s:%d\n%s", s.File, s.Line, code)
	} else {
		uses, err := declaredAtTop(code)
		if err != nil {
			return "", fmt.Errorf("%s:%d: %w", s.File, s.Line, err)
		}
		body = fmt.Sprintf("func _() {\n//line %s:%d\n%s\n//line %s:1\n%s}\n", s.File, s.Line, code, s.File, uses)
	}
	src := prelude + "\n" + body
	imps, err := neededImports(src)
	if err != nil {
		return "", fmt.Errorf("%s:%d: %w", s.File, s.Line, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "package %s\n\n", pkg)
	for _, p := range imps {
		fmt.Fprintf(&b, "import %q\n", p)
	}
	b.WriteString(src)
	return b.String(), nil
}

func isWholeFile(code string) bool {
	for _, l := range strings.Split(code, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "//") {
			continue
		}
		return strings.HasPrefix(l, "package ")
	}
	return false
}

// elide turns lines that are only "..." (omitted code) into comments.
func elide(code string) string {
	lines := strings.Split(code, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == "..." {
			lines[i] = "// ..."
		}
	}
	return strings.Join(lines, "\n")
}

func parses(src string) bool {
	_, err := parser.ParseFile(token.NewFileSet(), "", src, parser.SkipObjectResolution)
	return err == nil
}

// declaredAtTop returns "_ = name" statements for the names the
// statements in code declare at their top level, so that a fragment that
// declares a value only to show it (sub, err := ...) still compiles.
func declaredAtTop(code string) (string, error) {
	src := "package p\nfunc _() {\n" + code + "\n}"
	f, err := parser.ParseFile(token.NewFileSet(), "", src, parser.SkipObjectResolution)
	if err != nil {
		return "", fmt.Errorf("neither declarations nor statements: %w", err)
	}
	var names []string
	for _, st := range f.Decls[0].(*ast.FuncDecl).Body.List {
		switch st := st.(type) {
		case *ast.AssignStmt:
			if st.Tok == token.DEFINE {
				for _, e := range st.Lhs {
					if id, ok := e.(*ast.Ident); ok && id.Name != "_" {
						names = append(names, id.Name)
					}
				}
			}
		case *ast.DeclStmt:
			if gd, ok := st.Decl.(*ast.GenDecl); ok && gd.Tok == token.VAR {
				for _, sp := range gd.Specs {
					for _, id := range sp.(*ast.ValueSpec).Names {
						if id.Name != "_" {
							names = append(names, id.Name)
						}
					}
				}
			}
		}
	}
	var b strings.Builder
	for _, n := range names {
		b.WriteString("_ = " + n + "\n")
	}
	return b.String(), nil
}

// neededImports returns the import paths of the known packages src names
// as pkg.X, except names src declares at the top level itself.
func neededImports(src string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "", "package p\n"+src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	declared := map[string]bool{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				declared[d.Name.Name] = true
			}
		case *ast.GenDecl:
			for _, sp := range d.Specs {
				switch sp := sp.(type) {
				case *ast.ValueSpec:
					for _, id := range sp.Names {
						declared[id.Name] = true
					}
				case *ast.TypeSpec:
					declared[sp.Name.Name] = true
				case *ast.ImportSpec:
					p, _ := strconv.Unquote(sp.Path.Value)
					declared[p[strings.LastIndex(p, "/")+1:]] = true
				}
			}
		}
	}
	need := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && !declared[id.Name] {
				if p, ok := imports[id.Name]; ok {
					need[p] = true
				}
			}
		}
		return true
	})
	var out []string
	for p := range need {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}
