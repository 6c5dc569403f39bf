package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDLQCmd is a placeholder until its issue lands.
func newDLQCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dlq",
		Short: "not available yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("jetkit dlq is not available yet")
		},
	}
}
