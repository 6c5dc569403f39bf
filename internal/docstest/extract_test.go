package docstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestExtractAttachesPreludeOnlyToTheNextBlock(t *testing.T) {
	doc := "# T\n<!-- prelude\nvar x int\n-->\n```go\n_ = x\n```\ntext\n```go\ny := 1\n```\n```sh\nls\n```\n"
	got, err := Extract("t.md", doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d blocks, want the 2 go blocks: %+v", len(got), got)
	}
	if got[0].Prelude != "var x int\n" || got[0].Line != 6 || got[0].Code != "_ = x\n" {
		t.Errorf("first block %+v", got[0])
	}
	if got[1].Prelude != "" || got[1].Line != 10 {
		t.Errorf("second block %+v: the prelude belongs to the first block only", got[1])
	}
}

func TestExtractSkipsGoInsideOtherFences(t *testing.T) {
	doc := "````text\n```go\nnot go\n```\n````\n```go\nx := 1\n```\n"
	got, err := Extract("t.md", doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Code != "x := 1\n" {
		t.Fatalf("blocks %+v, want only the real go block", got)
	}
}

func TestExtractRefusesUnclosedBlocks(t *testing.T) {
	if _, err := Extract("t.md", "```go\nx := 1\n"); err == nil {
		t.Error("an unclosed ```go block was accepted")
	}
	if _, err := Extract("t.md", "<!-- prelude\nvar x int\n"); err == nil {
		t.Error("an unclosed prelude was accepted")
	}
}

// TestBrokenSnippetFailsAtItsMarkdownLine proves the docs test can fail:
// a fragment calling a function with the wrong arguments does not build,
// and the error names the Markdown file and line.
func TestBrokenSnippetFailsAtItsMarkdownLine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	s := Snippet{File: "broken.md", Line: 42, Code: "cfg, err := framework.LoadConfig(1, 2)\n"}
	src, err := Assemble(s, "broken")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(".", "gen-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "snippet.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "vet", "./"+filepath.ToSlash(dir)).CombinedOutput()
	if err == nil {
		t.Fatalf("a snippet with a wrong call built:\n%s", src)
	}
	if !strings.Contains(string(out), "broken.md:42") {
		t.Errorf("the error does not name broken.md:42:\n%s", out)
	}
}

func TestAssembleImportsWhatTheFragmentNames(t *testing.T) {
	src, err := Assemble(Snippet{File: "a.md", Line: 1, Code: "d := time.Second\nfmt.Println(d)\n"}, "p")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`import "fmt"`, `import "time"`, "_ = d"} {
		if !strings.Contains(src, want) {
			t.Errorf("assembled file lacks %q:\n%s", want, src)
		}
	}
	if strings.Contains(src, `"github.com/jetkit/jetkit/framework"`) {
		t.Errorf("imports a package the fragment does not name:\n%s", src)
	}
}
