package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newNewCmd is a placeholder until its issue lands.
func newNewCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "new",
		Short: "not available yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("jetkit new is not available yet")
		},
	}
}
