package scaffolding

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Spec describes a service to generate.
type Spec struct {
	// Name is the service name (ValidateServiceName).
	Name string
	// Module is its Go module path (ValidateModulePath).
	Module string
	// Dir is the directory to write; empty means ./Name.
	Dir string
	// Consumes are the subjects the service handles, one handler each.
	Consumes []string
	// Publishes are the subjects it publishes.
	Publishes []string
	// Force allows a non-empty Dir: generated files are overwritten, other
	// files are left alone.
	Force bool
	// JetkitReplace is a local jetkit checkout to replace jetkit with (its
	// absolute path goes into go.mod). When empty, the service requires the
	// released version this binary was built from, with no replace.
	JetkitReplace string
	// Jetkit, when set, overrides JetkitReplace and the detection.
	Jetkit *Jetkit
}

// Result is what Generate wrote.
type Result struct {
	// Dir is the absolute path of the new service.
	Dir string
	// Files are the files written, relative to Dir.
	Files []string
	// Jetkit is the jetkit the service requires.
	Jetkit Jetkit
}

// Generate validates spec, reporting every invalid input at once, and
// writes the service. It refuses a non-empty directory unless spec.Force.
// It does not verify the output: call Verify.
func Generate(spec Spec) (*Result, error) {
	var errs []error
	if err := ValidateServiceName(spec.Name); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateModulePath(spec.Module); err != nil {
		errs = append(errs, err)
	}
	evs, err := validateEvents(spec.Consumes, spec.Publishes)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	dir := spec.Dir
	if dir == "" {
		dir = spec.Name
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("--dir %s: %w", spec.Dir, err)
	}
	if err := checkTargetDir(dir, spec.Force); err != nil {
		return nil, err
	}
	var jk Jetkit
	if spec.Jetkit != nil {
		jk = *spec.Jetkit
	} else if jk, err = LocateJetkit(spec.JetkitReplace, "."); err != nil {
		return nil, err
	}

	gomod, err := jk.goMod(spec.Module)
	if err != nil {
		return nil, err
	}
	vars, err := serviceEnvVars(spec.Name)
	if err != nil {
		return nil, err
	}
	d := data{
		Name:          spec.Name,
		Module:        spec.Module,
		EnvPrefix:     envPrefix(spec.Name),
		GoMinor:       goMinor(gomod),
		JetkitReplace: jk.ReplaceDir,
		EnvVars:       vars,
	}
	files, err := serviceFiles(d)
	if err != nil {
		return nil, err
	}
	// Regions are filled from the fresh rendering, never from files on disk
	// (with --force those are overwritten).
	t := newTree(dir, true)
	for p, b := range files {
		t.write(p, b)
	}
	t.write("go.mod", gomod)
	if len(jk.GoSum) > 0 {
		t.write("go.sum", jk.GoSum)
	}
	for _, ev := range evs {
		if _, err := addEvent(t, d, ev, false); err != nil {
			return nil, err
		}
	}
	if err := t.flush(); err != nil {
		return nil, err
	}
	return &Result{Dir: dir, Files: t.paths(), Jetkit: jk}, nil
}

// checkTargetDir refuses a non-empty directory unless force.
func checkTargetDir(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("target directory %s: %w", dir, err)
	case len(entries) > 0 && !force:
		return fmt.Errorf("%w: target directory %s is not empty (%d entries, e.g. %s); pick another --dir, or pass --force to overwrite the generated files there (other files are kept)",
			ErrInvalidInput, dir, len(entries), entries[0].Name())
	}
	return nil
}

// goMinor is the go directive's release without the patch (1.26.0 -> 1.26),
// for the Dockerfile's build image.
func goMinor(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			parts := strings.SplitN(v, ".", 3)
			if len(parts) >= 2 {
				return parts[0] + "." + parts[1]
			}
			return v
		}
	}
	return "1"
}
