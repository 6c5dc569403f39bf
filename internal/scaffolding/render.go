package scaffolding

import (
	"bytes"
	"embed"
	"fmt"
	"go/format"
	"io/fs"
	"path"
	"strings"
	"text/template"
)

//go:embed templates
var templateFS embed.FS

// data is what the templates see.
type data struct {
	// Name is the service name, e.g. payments.
	Name string
	// Module is the service's Go module path.
	Module string
	// EnvPrefix prefixes its environment variables, e.g. PAYMENTS.
	EnvPrefix string
	// GoMinor is the Go release for the Dockerfile's build image, e.g. 1.26.
	GoMinor string
	// JetkitReplace is the local jetkit checkout go.mod points at, if any.
	JetkitReplace string
	// EnvVars are the variables the service reads.
	EnvVars []envVar
	// Event is the event a per-event template renders.
	Event event
}

// dotNames maps template names to the dot files they produce (embed skips
// files whose names start with a dot).
var dotNames = map[string]string{
	"gitignore":    ".gitignore",
	"dockerignore": ".dockerignore",
	"env.example":  ".env.example",
}

// render executes one template from templates/ and, for Go files, formats
// the result with go/format; a template that produces invalid Go is a bug
// in jetkit and the error says so.
func render(name string, d data) ([]byte, error) {
	src, err := templateFS.ReadFile("templates/" + name)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("execute template %s: %w", name, err)
	}
	if strings.HasSuffix(name, ".go.tmpl") {
		out, err := format.Source(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("template %s produced invalid Go (a jetkit bug, please report it): %w\n%s", name, err, buf.Bytes())
		}
		return out, nil
	}
	return buf.Bytes(), nil
}

// serviceFiles renders every template under templates/service/ to its path
// in the new service.
func serviceFiles(d data) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(templateFS, "templates/service", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, "templates/service/")
		out, err := render("service/"+rel, d)
		if err != nil {
			return err
		}
		dir, base := path.Split(strings.TrimSuffix(rel, ".tmpl"))
		if dot, ok := dotNames[base]; ok {
			base = dot
		}
		files[dir+base] = out
		return nil
	})
	return files, err
}
