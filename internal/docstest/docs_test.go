package docstest

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// markdownFiles returns the repository's Markdown files, relative to root.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "templates" || strings.HasPrefix(name, "gen-")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".md") {
			rel, _ := filepath.Rel(root, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestMarkdownSnippetsCompile builds every ```go block of every Markdown
// file in the repository (see the package doc for the rules), all in one
// go vet run.
func TestMarkdownSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the documentation's snippets with the go tool")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	gen, err := os.MkdirTemp(".", "gen-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(gen) })

	var dirs []string
	for _, md := range markdownFiles(t, root) {
		doc, err := os.ReadFile(filepath.Join(root, md))
		if err != nil {
			t.Fatal(err)
		}
		snippets, err := Extract(md, string(doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range snippets {
			pkg := fmt.Sprintf("s%03d", len(dirs))
			src, err := Assemble(s, pkg)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if strings.HasPrefix(strings.TrimSpace(elide(s.Code)), "package main") || strings.Contains(s.Code, "\npackage main") {
				pkg = "main"
			}
			dir := filepath.Join(gen, fmt.Sprintf("s%03d", len(dirs)))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "snippet.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, "./"+filepath.ToSlash(dir))
		}
	}
	if len(dirs) < 10 {
		t.Fatalf("found %d Go snippets in the Markdown files; the extraction is broken", len(dirs))
	}
	cmd := exec.Command("go", append([]string{"vet"}, dirs...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the documentation's Go snippets do not build (fix the Markdown at the file:line shown; the rules are in internal/docstest's package doc):\n%s", out)
	}
	t.Logf("built %d snippets", len(dirs))
}
