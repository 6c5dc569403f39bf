package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// usageError is a mistake in the command line; jetkit exits 2 for it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usageErrorf is a usage error of cmd; the message ends pointing at its help.
func usageErrorf(cmd *cobra.Command, format string, a ...any) error {
	return usageError{fmt.Errorf("%s: %w (see %s --help)", cmd.CommandPath(), fmt.Errorf(format, a...), cmd.CommandPath())}
}

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// markUsageErrors makes every command's argument and flag errors usage
// errors, and makes a command that only groups others (jetkit, jetkit dlq)
// refuse an unknown or missing subcommand instead of printing its help and
// succeeding.
func markUsageErrors(cmd *cobra.Command) {
	if !cmd.HasParent() {
		cmd.InitDefaultHelpCmd()
	}
	if cmd.Name() == "help" && !cmd.HasSubCommands() {
		// jetkit help TOPIC: an unknown topic is a usage error, not help.
		cmd.Args = func(c *cobra.Command, args []string) error {
			found, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 || (found == c.Root() && len(args) > 0) {
				return usageErrorf(c, "unknown help topic %q", strings.Join(args, " "))
			}
			return nil
		}
		return
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf(c, "%w", err)
	})
	if cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				fmt.Fprint(c.ErrOrStderr(), c.UsageString())
				return usageErrorf(c, "name a command: %s", strings.Join(subcommandNames(c), ", "))
			}
			hint := ""
			if c.SuggestionsMinimumDistance <= 0 {
				c.SuggestionsMinimumDistance = 2
			}
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				hint = "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usageErrorf(c, "unknown command %q%s (commands: %s)", args[0], hint, strings.Join(subcommandNames(c), ", "))
		}
		cmd.RunE = func(c *cobra.Command, args []string) error { return nil } // Args refused already
	} else {
		check := cmd.Args
		if check == nil {
			check = noArgs
		}
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return usageErrorf(c, "%w", err)
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}

func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("takes no arguments, got %q", args)
	}
	return nil
}

func subcommandNames(c *cobra.Command) []string {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return names
}

// version is the module version jetkit was built from, with its commit
// when the build recorded one: "v0.4.0", "devel (commit 0e6c7b9, modified)".
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "version unknown (built without module support)"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (commit %.12s%s)", rev, modified)
	}
	return v + ", " + info.GoVersion
}
