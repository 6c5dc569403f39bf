package scaffolding

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// placeholderVersion is the version required of jetkit when a replace
// directive points at a local checkout: the go command ignores it.
const placeholderVersion = "v0.0.0-00010101000000-000000000000"

// Jetkit says which jetkit a generated service requires and where the
// versions of its dependencies come from.
type Jetkit struct {
	// Version is the jetkit version written in the require line.
	Version string
	// ReplaceDir, when set, is the absolute path of a local jetkit checkout
	// the generated go.mod replaces jetkit with.
	ReplaceDir string
	// GoMod is jetkit's own go.mod; its require versions are copied so that
	// the service resolves the same versions (and go mod tidy works offline
	// from the module cache).
	GoMod []byte
	// GoSum is jetkit's go.sum, copied as a seed so that no checksum has to
	// be fetched; go mod tidy drops what the service does not need.
	GoSum []byte
	// Deps are module versions taken from the running binary's build
	// information when no checkout is available.
	Deps map[string]string
}

// FindJetkitRoot walks up from dir to the directory whose go.mod declares
// module github.com/jetkit/jetkit. It returns "" when there is none.
func FindJetkitRoot(dir string) string {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modfile.ModulePath(data) == JetkitModule {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// LocateJetkit decides which jetkit the generated service requires. With
// replaceDir (the --jetkit-replace flag) it is that local checkout, through
// a replace directive holding its absolute path. Otherwise it is the
// released version this binary was built from, and go.mod has no replace:
// a path on this machine is never written unless asked for. A binary
// built from a checkout (go install ./cmd/jetkit, go run) has no released
// version, so it needs the flag; the error names the checkout found
// (above startDir, or the one the binary was compiled from).
func LocateJetkit(replaceDir, startDir string) (Jetkit, error) {
	if replaceDir != "" {
		root, err := filepath.Abs(replaceDir)
		if err != nil {
			return Jetkit{}, fmt.Errorf("--jetkit-replace %s: %w", replaceDir, err)
		}
		data, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err != nil {
			return Jetkit{}, fmt.Errorf("%w: --jetkit-replace %s: no go.mod there (%v); point it at the root of a jetkit checkout", ErrInvalidInput, replaceDir, err)
		}
		if got := modfile.ModulePath(data); got != JetkitModule {
			return Jetkit{}, fmt.Errorf("%w: --jetkit-replace %s: its go.mod declares module %q, not %s; point it at the root of a jetkit checkout", ErrInvalidInput, replaceDir, got, JetkitModule)
		}
		return checkout(root, data)
	}
	bi, ok := debug.ReadBuildInfo()
	if ok && bi.Main.Path == JetkitModule && releasedVersion(bi.Main.Version) {
		deps := map[string]string{}
		for _, d := range bi.Deps {
			if d.Replace == nil {
				deps[d.Path] = d.Version
			}
		}
		return Jetkit{Version: bi.Main.Version, Deps: deps}, nil
	}
	hint := "/path/to/jetkit (the root of a jetkit checkout)"
	if root := FindJetkitRoot(startDir); root != "" {
		hint = root
	} else if root := builtFromCheckout(); root != "" {
		hint = root
	}
	return Jetkit{}, fmt.Errorf("%w: this jetkit binary carries no released version (it was built from a checkout), so the service cannot require one: "+
		"pass --jetkit-replace %s to use a local checkout (go.mod then holds its absolute path), "+
		"or install a release: go install %s/cmd/jetkit@latest", ErrInvalidInput, hint, JetkitModule)
}

// releasedVersion reports whether v, the main module version in a
// binary's build information, can be required: not "(devel)" or empty,
// and without build metadata such as +dirty.
func releasedVersion(v string) bool {
	return semver.IsValid(v) && semver.Build(v) == ""
}

func checkout(root string, gomod []byte) (Jetkit, error) {
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Jetkit{}, fmt.Errorf("read jetkit go.sum: %w", err)
	}
	return Jetkit{Version: placeholderVersion, ReplaceDir: root, GoMod: gomod, GoSum: sum}, nil
}

// goMod builds the generated service's go.mod: its module path, jetkit's Go
// version, jetkit itself, every module jetkit requires at jetkit's version
// (marked indirect; go mod tidy keeps only what the service needs) and the
// replace to a local checkout.
func (j Jetkit) goMod(modulePath string) ([]byte, error) {
	f := &modfile.File{}
	if err := f.AddModuleStmt(modulePath); err != nil {
		return nil, fmt.Errorf("go.mod module %s: %w", modulePath, err)
	}
	goVersion := "1.26.0"
	type req struct{ path, version string }
	var reqs []req
	if len(j.GoMod) > 0 {
		jf, err := modfile.ParseLax("go.mod", j.GoMod, nil)
		if err != nil {
			return nil, fmt.Errorf("parse jetkit go.mod: %w", err)
		}
		if jf.Go != nil {
			goVersion = jf.Go.Version
		}
		for _, r := range jf.Require {
			reqs = append(reqs, req{r.Mod.Path, r.Mod.Version})
		}
	} else {
		for p, v := range j.Deps {
			reqs = append(reqs, req{p, v})
		}
	}
	sort.Slice(reqs, func(a, b int) bool { return reqs[a].path < reqs[b].path })
	if err := f.AddGoStmt(goVersion); err != nil {
		return nil, fmt.Errorf("go.mod go %s: %w", goVersion, err)
	}
	if err := f.AddRequire(JetkitModule, j.Version); err != nil {
		return nil, fmt.Errorf("go.mod require jetkit %s: %w", j.Version, err)
	}
	for _, r := range reqs {
		f.AddNewRequire(r.path, r.version, true)
	}
	f.SetRequireSeparateIndirect(f.Require)
	if j.ReplaceDir != "" {
		if err := f.AddReplace(JetkitModule, "", j.ReplaceDir, ""); err != nil {
			return nil, fmt.Errorf("go.mod replace jetkit => %s: %w", j.ReplaceDir, err)
		}
	}
	f.Cleanup()
	out, err := f.Format()
	if err != nil {
		return nil, fmt.Errorf("format go.mod: %w", err)
	}
	return out, nil
}

// builtFromCheckout returns the jetkit checkout this package was compiled
// from, when the binary records source paths and that checkout still
// exists; "" otherwise.
func builtFromCheckout() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "" // built with -trimpath, or from the module cache
	}
	root := filepath.Dir(filepath.Dir(file))
	if data, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || modfile.ModulePath(data) != JetkitModule {
		return ""
	}
	return root
}
