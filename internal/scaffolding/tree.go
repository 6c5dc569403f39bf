package scaffolding

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// tree is a service directory being changed: reads see pending writes
// first, then (unless fresh) the disk; nothing is written until flush.
type tree struct {
	root    string
	fresh   bool
	pending map[string][]byte
}

// newTree changes the directory root; a fresh tree ignores what is on disk
// (a new service, or one regenerated with --force).
func newTree(root string, fresh bool) *tree {
	return &tree{root: root, fresh: fresh, pending: map[string][]byte{}}
}

// read returns a file's content; ok is false when it exists nowhere.
func (t *tree) read(rel string) (content []byte, ok bool, err error) {
	if b, ok := t.pending[rel]; ok {
		return b, true, nil
	}
	if t.fresh {
		return nil, false, nil
	}
	b, err := os.ReadFile(filepath.Join(t.root, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", rel, err)
	}
	return b, true, nil
}

func (t *tree) exists(rel string) (bool, error) {
	_, ok, err := t.read(rel)
	return ok, err
}

func (t *tree) write(rel string, content []byte) { t.pending[rel] = content }

// paths lists the pending files, sorted.
func (t *tree) paths() []string {
	ps := make([]string, 0, len(t.pending))
	for p := range t.pending {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// flush writes every pending file under root.
func (t *tree) flush() error {
	for _, rel := range t.paths() {
		p := filepath.Join(t.root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("create directory for %s: %w", rel, err)
		}
		if err := os.WriteFile(p, t.pending[rel], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", rel, err)
		}
	}
	return nil
}
