package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newCapacityCmd is a placeholder until its issue lands.
func newCapacityCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "capacity",
		Short: "not available yet",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("jetkit capacity is not available yet")
		},
	}
}
