package docgen

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from framework/config.go")

// TestConfigReferenceIsCurrent fails when docs/configuration.md does not
// list exactly the variables framework.Config reads, with their defaults
// and comments. Fix it with: go test ./internal/docgen -update
func TestConfigReferenceIsCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	src, err := os.ReadFile(filepath.Join(root, "framework", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	vars, err := ConfigVars(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docs", "configuration.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Splice(string(doc), ConfigTable(vars))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if want == string(doc) {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with framework/config.go; run: go test ./internal/docgen -update\n--- want\n%s", path, ConfigTable(vars))
}

func TestConfigVarsReadsTagsAndSharedComments(t *testing.T) {
	src := []byte(`package framework
type Config struct {
	// Name names it.
	Name string ` + "`envconfig:\"SERVICE_NAME\"`" + `
	// A and B are a pair | piped.
	A string ` + "`envconfig:\"A\" default:\"x\"`" + `
	B int    ` + "`envconfig:\"B\"`" + `

	C string ` + "`envconfig:\"C\"`" + `
	hidden string
}`)
	vars, err := ConfigVars(src)
	if err != nil {
		t.Fatal(err)
	}
	got := ConfigTable(vars)
	for _, want := range []string{
		"| `<PREFIX>_SERVICE_NAME` | `Name` | `string` | — | Name names it. |",
		"| `<PREFIX>_A` | `A` | `string` | `x` | A and B are a pair \\| piped. |",
		"| `<PREFIX>_B` | `B` | `int` | — | A and B are a pair \\| piped. |",
		"| `<PREFIX>_C` | `C` | `string` | — |  |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "hidden") {
		t.Errorf("unexported field listed:\n%s", got)
	}
}

func TestSpliceNeedsMarkers(t *testing.T) {
	if _, err := Splice("no markers here", "x"); err == nil {
		t.Fatal("Splice without markers succeeded")
	}
}
