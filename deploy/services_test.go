package deploy_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/jetkit/jetkit/framework"
)

// serviceCode is what a service's main package reads from its
// environment, found by reading its source: the prefix it passes to
// framework.LoadConfig and the envconfig tags of its own config struct.
type serviceCode struct {
	dir     string // the main package, e.g. services/order/cmd/order
	prefix  string // e.g. ORDER
	own     map[string]bool
	imports map[string]bool // import paths of the main package
}

// readServiceCode parses the main package in dir. It expects what the
// sample services do: a string constant passed to framework.LoadConfig or
// Config.FromEnv (or a literal), and envconfig.Process(prefix, &own) for
// its own struct.
func readServiceCode(dir string) (serviceCode, error) {
	sc := serviceCode{dir: dir, own: map[string]bool{}, imports: map[string]bool{}}
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		return sc, fmt.Errorf("no Go files in %s", dir)
	}
	consts := map[string]string{}
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			return sc, err
		}
		parsed = append(parsed, af)
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			sc.imports[path] = true
		}
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	stringArg := func(e ast.Expr) string {
		switch v := e.(type) {
		case *ast.BasicLit:
			s, _ := strconv.Unquote(v.Value)
			return s
		case *ast.Ident:
			return consts[v.Name]
		}
		return ""
	}
	found := false
	ownTypes := map[string]bool{} // struct types passed to envconfig.Process
	for _, af := range parsed {
		ast.Inspect(af, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, _ := sel.X.(*ast.Ident)
			switch {
			case pkg != nil && pkg.Name == "framework" && sel.Sel.Name == "LoadConfig" && len(call.Args) == 1,
				sel.Sel.Name == "FromEnv" && len(call.Args) == 1: // cfg.FromEnv(prefix) on a framework.Config
				sc.prefix, found = stringArg(call.Args[0]), true
			case pkg != nil && pkg.Name == "envconfig" && sel.Sel.Name == "Process" && len(call.Args) == 2:
				if u, ok := call.Args[1].(*ast.UnaryExpr); ok {
					if id, ok := u.X.(*ast.Ident); ok && id.Obj != nil {
						if vs, ok := id.Obj.Decl.(*ast.ValueSpec); ok {
							if tid, ok := vs.Type.(*ast.Ident); ok {
								ownTypes[tid.Name] = true
							}
						}
					}
				}
			}
			return true
		})
	}
	if !found {
		return sc, fmt.Errorf("%s: no framework.LoadConfig(<string constant>) or Config.FromEnv(<string constant>) call found", dir)
	}
	if sc.prefix == "" {
		sc.prefix = "JETKIT"
	}
	for _, af := range parsed {
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok || !ownTypes[ts.Name.Name] {
					continue
				}
				for _, f := range st.Fields.List {
					if f.Tag == nil {
						continue
					}
					tag, _ := strconv.Unquote(f.Tag.Value)
					if name := reflect.StructTag(tag).Get("envconfig"); name != "" {
						sc.own[name] = true
					}
				}
			}
		}
	}
	return sc, nil
}

// frameworkVars are the variable names framework.Config reads, without
// the prefix: its envconfig tags.
func frameworkVars() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(framework.Config{})
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("envconfig"); name != "" {
			out[name] = true
		}
	}
	return out
}

// otelVar reports whether name is a standard OpenTelemetry SDK variable
// that framework/telemetry (through the OTel SDK and autoexport) reads.
func otelVar(name string) bool {
	switch name {
	case "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED", "OTEL_PROPAGATORS",
		"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT",
		"OTEL_EXPORTER_PROMETHEUS_HOST", "OTEL_EXPORTER_PROMETHEUS_PORT":
		return true
	}
	return strings.HasPrefix(name, "OTEL_EXPORTER_OTLP_") || strings.HasPrefix(name, "OTEL_BSP_")
}

// goBuildTarget finds the package a Dockerfile builds: the ./path
// argument of its `go build` line.
var goBuildTarget = regexp.MustCompile(`go build[^\n]*?\s(\./[^\s]+)\s*$`)

// dockerfileProblems checks a service Dockerfile by construction: a
// multi-stage build of a static binary (CGO_ENABLED=0) of a main package
// that exists, run as a non-root user. It returns the built package's
// directory (relative to context) and the problems found.
func dockerfileProblems(context, dockerfile string) (pkg string, problems []string) {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		return "", []string{fmt.Sprintf("Dockerfile %s: %v", dockerfile, err)}
	}
	text := string(data)
	var froms, users []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.EqualFold(f[0], "FROM") {
			froms = append(froms, f[1])
		}
		if len(f) >= 2 && strings.EqualFold(f[0], "USER") {
			users = append(users, f[1])
		}
	}
	if len(froms) < 2 {
		problems = append(problems, fmt.Sprintf("%s: not a multi-stage build (%d FROM)", dockerfile, len(froms)))
	}
	if !strings.Contains(text, "CGO_ENABLED=0") {
		problems = append(problems, fmt.Sprintf("%s: the go build does not set CGO_ENABLED=0 (the binary must be static)", dockerfile))
	}
	if len(users) == 0 {
		problems = append(problems, fmt.Sprintf("%s: no USER: the final image would run as root", dockerfile))
	} else if u := strings.SplitN(users[len(users)-1], ":", 2)[0]; u == "root" || u == "0" {
		problems = append(problems, fmt.Sprintf("%s: final USER is %s", dockerfile, u))
	}
	var target string
	for _, line := range strings.Split(text, "\n") {
		if m := goBuildTarget.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			target = m[1]
		}
	}
	if target == "" {
		return "", append(problems, fmt.Sprintf("%s: no `go build ... ./<package>` line found", dockerfile))
	}
	pkg = filepath.Join(context, filepath.FromSlash(target))
	if mains, _ := filepath.Glob(filepath.Join(pkg, "*.go")); len(mains) == 0 {
		problems = append(problems, fmt.Sprintf("%s builds %s, which holds no Go files", dockerfile, target))
	}
	return pkg, problems
}
